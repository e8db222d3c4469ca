#!/usr/bin/env bash
# Depot's test command: sets up the virtualenv, lints, then runs the unit/functional suite
# (tests/, SQLite in temp folders) and the integration suite (integration-tests/, gunicorn
# over real HTTP against PostgreSQL). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "==> installing pinned requirements"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/development.txt

echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

echo "==> pytest"
exec "$VENV/bin/pytest" "$@"
