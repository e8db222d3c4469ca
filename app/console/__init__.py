"""The web console: a static single-page app served under /console/.

Its sources are in app/console/src and its npm packages (Uppy, esbuild) in
app/console/package-lock.json; `npm ci && npm run build` in app/console writes app/console/dist,
which ./run_dev.sh, ./run_tests.sh and the Dockerfile's console stage all do. Depot serves
dist/ here, for development and for a deployment without the proxy; the compose proxy serves
the same files itself (deploy/nginx/depot.conf.template), so a replica spends nothing on them.

The console is a client of the public API like any other: it holds the bearer token in the
tab's sessionStorage, never in a cookie. Its Content-Security-Policy lets the page run only
its own script and styles and talk only to its own origin (`console_csp` names the API's
origin when the console is hosted elsewhere, next to a config.json naming the API).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, send_from_directory

from app.exceptions import NotFound

DIST = Path(__file__).resolve().parent / "dist"
PREFIX = "/console"


def console_csp(api_origin: str = "") -> str:
    """The console page's Content-Security-Policy: its own scripts and styles only; images
    from itself and the previews it makes (blob:); requests to itself and `api_origin`."""
    connect = f"'self' {api_origin}".strip()
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


CONSOLE_CSP = console_csp()


def _serve(name: str):
    if not (DIST / "index.html").is_file():
        raise NotFound("The console is not built: run `npm ci && npm run build` in app/console (./run_dev.sh does it).")
    if not (DIST / name).is_file():  # send_from_directory also refuses paths leaving DIST
        raise NotFound()
    response = send_from_directory(DIST, name, max_age=0)
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    # Revalidated on every load (ETag, 304), so a new build is picked up at once.
    response.headers["Cache-Control"] = "no-cache"
    return response


def register_console(app: Flask) -> None:
    blueprint = Blueprint("console", __name__, url_prefix=PREFIX)
    # /console itself redirects here (308): Werkzeug does it for a rule that ends with "/".
    blueprint.add_url_rule("/", "index", lambda: _serve("index.html"))
    blueprint.add_url_rule("/<path:name>", "file", _serve)
    app.register_blueprint(blueprint)
