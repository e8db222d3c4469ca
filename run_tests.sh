#!/usr/bin/env bash
# Depot's test command: sets up the virtualenv, lints, then runs the unit/functional suite
# (tests/, SQLite in temp folders) and the integration suite (integration-tests/: gunicorn
# over real HTTP against PostgreSQL, and the scale-out topology of nginx, two replicas,
# Redis and an S3 server). Extra arguments go to pytest.
#
# Needs no server running: PostgreSQL and Redis are started for the run, on free loopback
# ports, unless DEPOT_TEST_PG / DEPOT_TEST_REDIS name servers to use (see README). Their
# server programs, nginx, wrk (the benchmark's smoke run), Node.js and Chromium (the
# JavaScript tus clients' tests; Node.js also runs Redocly's lint of the OpenAPI document and
# the TypeScript client) come from Debian's packages and are installed here when missing and
# the script runs as root; otherwise the tests that need them fail and say what to install.
# The JavaScript clients and tools themselves come from integration-tests/js's lockfile, and
# the web console is built from app/console's (app/console/build.sh).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# install_debian_package PROGRAM PACKAGE: make PROGRAM (a command, or a path pattern)
# available from Debian's PACKAGE.
install_debian_package() {
    if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || compgen -G "$1" >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "==> $1 is missing: install Debian's $2 (apt-get install $2); the tests needing it will fail"
        return
    fi
    echo "==> installing $2 from Debian's packages"
    # The package must not start a system-wide service: the tests start their own.
    local policy=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    if [ -n "$added" ]; then rm -f "$policy"; fi
}
install_debian_package nginx nginx
install_debian_package wrk wrk
# PostgreSQL's and Redis's servers: without DEPOT_TEST_PG / DEPOT_TEST_REDIS the run starts
# its own (integration-tests/local_services.py); the fault test also crashes one of its own.
install_debian_package '/usr/lib/postgresql/*/bin/initdb' postgresql
install_debian_package redis-server redis-server
# The compose storage healthcheck (busybox wget in the image) is run against a real weed.
install_debian_package wget wget
# The README walkthroughs' tests run its curl commands.
install_debian_package curl curl
# The real JavaScript tus clients: tus-js-client runs under Node; Uppy runs in Debian's
# Chromium, which Playwright drives (it never downloads a browser of its own).
install_debian_package node nodejs
install_debian_package npm npm
install_debian_package chromium chromium

# install_js_clients DIR: the npm packages of DIR's committed package-lock.json (`npm ci`),
# skipped when node_modules was installed from this very lockfile (a stamp of its hash).
install_js_clients() {
    local stamp="$1/node_modules/.depot-lockfile.sha256" wanted
    if ! command -v npm >/dev/null 2>&1; then
        echo "==> npm is missing: install Debian's nodejs and npm; the tests needing them will fail"
        return
    fi
    wanted="$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return
    fi
    echo "==> installing the npm packages of $1 (npm ci)"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$wanted" >"$stamp"
}
install_js_clients integration-tests/js
# The web console (app/console/dist), which the tests' nginx and Depot serve under /console/.
app/console/build.sh

echo "==> installing pinned requirements"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/development.txt

echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

echo "==> pytest"
exec "$VENV/bin/python" integration-tests/local_services.py "$VENV/bin/pytest" "$@"
