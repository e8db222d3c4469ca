"""HTTP policies applied to every response: trusted proxies, CORS and security headers.

- Behind PROXY_COUNT proxies (the compose nginx is one), X-Forwarded-For and -Proto are
  trusted for that many hops, so rate limits key on the real client and HTTPS is seen as such.
- CORS is answered only for origins listed in CORS_ORIGINS. Depot's credentials are bearer
  tokens, never cookies, so credentialed CORS is never enabled, and "*" stays safe.
- No cookie sessions: the bearer token is the only credential.
- An answer given before the request body was read to its end closes the connection
  (app.keepalive says why: a proxy would otherwise reuse a connection the server drops).
- Every response carries headers that stop sniffing, framing and referrer leaks; API answers
  are never cached, and only the Swagger UI page may run its own scripts.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SessionInterface
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from app.keepalive import CloseAfterUnreadBody

# Request headers a browser client may send beyond the CORS-safelisted ones.
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Content-Digest",
    "If-None-Match",
    "If-Range",
    "Range",
    "X-Request-ID",
    # tus (app/api/tus.py)
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "X-HTTP-Method-Override",
]
# Response headers a browser client may read beyond the CORS-safelisted ones.
CORS_EXPOSE_HEADERS = [
    "Location",
    "ETag",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
    "X-Request-ID",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    # tus (app/api/tus.py), and the finished upload it names
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Checksum",
    "Depot-Upload-Id",
    "Content-Location",
]
CORS_MAX_AGE_SECONDS = 600

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The Swagger UI page starts itself with an inline script and styles.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def _security_headers(response: Response) -> Response:
    # One pass over the headers already set (a download sets its own CSP and caching).
    present = {name.lower() for name, _value in response.headers}
    docs_page = request.blueprint == "flask-apispec"
    wanted = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Content-Security-Policy", DOCS_CSP if docs_page else API_CSP),
    ]
    if not docs_page:
        wanted.append(("Cache-Control", "no-store"))
    if request.is_secure:
        wanted.append(("Strict-Transport-Security", HSTS))
    for name, value in wanted:
        if name.lower() not in present:
            response.headers.add(name, value)
    return response


def _vary_on_origin(response: Response) -> Response:
    # The CORS headers depend on Origin even with one allowed origin (present or absent),
    # so a shared cache must not hand one origin's answer to another.
    if request.path.startswith("/api/"):
        response.vary.add("Origin")
    return response


class NoCookieSessions(SessionInterface):
    """Depot's credentials are bearer tokens: it never reads or sets a session cookie (and
    so skips Flask's per-request cookie-session setup)."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        pass


def register_http_policy(app: Flask) -> None:
    app.session_interface = NoCookieSessions()
    app.wsgi_app = CloseAfterUnreadBody(app.wsgi_app)
    hops = int(app.config["PROXY_COUNT"])
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    origins = list(app.config["CORS_ORIGINS"])
    if origins:
        any_origin = "*" in origins
        CORS(
            app,
            resources={r"/api/*": {"origins": "*" if any_origin else origins}},
            send_wildcard=any_origin,
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            supports_credentials=False,
            max_age=CORS_MAX_AGE_SECONDS,
            vary_header=True,
        )
        app.after_request(_vary_on_origin)
    app.after_request(_security_headers)
