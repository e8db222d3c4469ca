#!/usr/bin/env bash
# Build the web console into app/console/dist with the machine's Node.js and npm: `npm ci`
# from the committed lockfile (skipped when node_modules was installed from this very
# lockfile: a stamp of its hash), then esbuild (`npm run build`, under a second).
# ./run_dev.sh and ./run_tests.sh run it; the Dockerfile's console stage does the same steps.
# Without npm it says so and leaves the console unbuilt: the API works, /console/ answers 404
# saying how to build it, and the console's tests fail naming what to install.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
    echo "==> npm is missing: the web console is not built (install Debian's nodejs and npm)"
    exit 0
fi
stamp=node_modules/.depot-lockfile.sha256
wanted="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "==> installing the web console's npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$wanted" >"$stamp"
fi
echo "==> building the web console"
npm run --silent build
