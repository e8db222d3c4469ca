#!/usr/bin/env bash
# Depot's benchmark: installs curl, wrk and nginx from Debian's packages when missing (as
# root), makes sure .venv has the pinned requirements, then runs `python -m bench "$@"`.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in curl wrk nginx; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "==> installing $tool from Debian's packages"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
        else
            echo "$tool is needed: apt-get install $tool" >&2
            exit 1
        fi
    fi
done

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/development.txt
exec "$VENV/bin/python" -m bench "$@"
