"""HTTP controllers: the `api` blueprint under /api/v1, the health probes, and their docs.

Each resource is registered once here, both as a route and in the OpenAPI document.

One routing trap is closed here too: `PUT /uploads/<filename>` (a raw upload) has the shape
of `/uploads/<uuid:upload_id>`, so for `GET /uploads/not-a-uuid`, which the id's converter
refuses, Werkzeug finds only the PUT route and answers 405. A fallback rule, tried after
every other one at that place, answers the upload's own methods with 404 instead.
"""

from __future__ import annotations

from flask import Blueprint, Flask
from werkzeug.routing import UnicodeConverter

from app.api import api_tokens, auth, health, tus, uploads, users
from app.exceptions import NotFound
from app.openapi import DepotApiSpec

API_PREFIX = "/api/v1"

# (url rule, endpoint name, resource class) for every route of the blueprint.
API_ROUTES = [
    ("/auth/register", "register", auth.Register),
    ("/auth/token", "token", auth.Token),
    ("/auth/logout", "logout", auth.Logout),
    ("/auth/logout-all", "logout_all", auth.LogoutAll),
    ("/users/me", "me", users.Me),
    ("/users/me/tokens", "api_token_list", api_tokens.ApiTokenList),
    ("/users/me/tokens/<uuid:token_id>", "api_token_detail", api_tokens.ApiTokenDetail),
    ("/users", "user_list", users.UserList),
    ("/users/<uuid:user_id>", "user_detail", users.UserDetail),
    ("/uploads", "upload_list", uploads.UploadList),
    ("/uploads/policy", "upload_policy", uploads.UploadPolicy),
    ("/uploads/<uuid:upload_id>", "upload_detail", uploads.UploadDetail),
    ("/uploads/<uuid:upload_id>/content", "upload_content", uploads.UploadContent),
    ("/uploads/<uuid:upload_id>/links", "upload_links", uploads.UploadLinks),
    ("/raw-uploads/<filename>", "upload_raw", uploads.UploadRaw),
    ("/links/<token>", "shared_content", uploads.SharedContent),
    ("/tus", "tus_uploads", tus.TusUploads),
    ("/tus/<upload_id>", "tus_upload", tus.TusUpload),
]


class FallbackConverter(UnicodeConverter):
    """One path segment, like the default converter, but tried after every other converter
    at the same place (Werkzeug tries the lighter ones first; the default weighs 100)."""

    weight = 1000


def no_such_upload(upload_id: str):
    """A segment under /uploads/ that is neither an upload id nor /uploads/policy."""
    raise NotFound("No such upload.")


no_such_upload.only_answers_404 = True  # app.errors suggests no route that ends here


# (url rule, endpoint name, resource): the raw upload's first path, which has the shape of
# /uploads/{upload_id}; it still works, but the document names only /raw-uploads/{filename}.
UNDOCUMENTED_ROUTES = [
    ("/uploads/<filename>", "upload_raw_at_uploads", uploads.UploadRaw),
]

# (url rule, endpoint name, view, methods): routes that only answer 404, left out of the docs.
FALLBACK_ROUTES = [
    ("/uploads/<fallback:upload_id>", "upload_not_found", no_such_upload, uploads.UploadDetail.methods),
]

PROBE_ROUTES = [
    ("/healthz", "healthz", health.Liveness),
    ("/readyz", "readyz", health.Readiness),
]


def register_api(app: Flask) -> None:
    app.url_map.converters["fallback"] = FallbackConverter  # before any rule uses it
    blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)
    for rule, endpoint, resource in API_ROUTES + UNDOCUMENTED_ROUTES:
        blueprint.add_url_rule(rule, view_func=resource.as_view(endpoint))
    for rule, endpoint, view, methods in FALLBACK_ROUTES:
        blueprint.add_url_rule(rule, endpoint, view, methods=sorted(methods))
    blueprint.after_request(tus.add_tus_headers)
    app.register_blueprint(blueprint)
    for rule, endpoint, resource in PROBE_ROUTES:
        app.add_url_rule(rule, view_func=resource.as_view(endpoint))


def register_docs(app: Flask) -> None:
    """Describe every route in the OpenAPI document served at /api/v1/openapi.json."""
    # One instance per app: flask-apispec keeps per-app state (the spec, deferred registrations).
    docs = DepotApiSpec(app, document_options=False)
    for _rule, endpoint, resource in API_ROUTES:
        docs.register(resource, endpoint=endpoint, blueprint="api")
    for _rule, endpoint, resource in PROBE_ROUTES:
        docs.register(resource, endpoint=endpoint)
