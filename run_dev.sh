#!/usr/bin/env bash
# Start Depot for local use: virtualenv, pinned requirements, migrated SQLite database in
# ./var, and the development server on http://127.0.0.1:5000 (PORT to change it).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/development.txt

export FLASK_APP=autoapp.py
"$VENV/bin/flask" db upgrade
exec "$VENV/bin/flask" run --host 127.0.0.1 --port "${PORT:-5000}"
