#!/usr/bin/env bash
# Start Depot for local use: a virtualenv with what serving needs (requirements/production.txt,
# not the test and benchmark stack), the web console built from its npm lockfile, a migrated
# SQLite database in ./var/development, and the development server on http://127.0.0.1:5000
# (PORT to change it, VENV for another virtualenv).
#
# pip runs only when requirements/production.txt changed since it last ran in this virtualenv
# (a stamp file in the virtualenv holds the file's SHA-256), so a restart takes a few seconds.
# --no-compile: Python compiles the modules it imports when it first imports them, which is
# quicker than pip compiling every module of every package up front.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv in $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi

stamp="$VENV/.depot-production-requirements.sha256"
wanted=$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
    requirements/production.txt)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "==> installing the pinned requirements of requirements/production.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -r requirements/production.txt
    echo "$wanted" >"$stamp"
fi

# The web console at http://127.0.0.1:5000/console/, built with the machine's Node.js and npm
# (skipped, with a note, without them).
app/console/build.sh

# `flask dev` (app/cli.py): `flask db upgrade`, then the development server, in one process,
# on PORT (from the environment or .env; default 5000).
exec "$VENV/bin/flask" --app autoapp dev
