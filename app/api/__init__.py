"""HTTP controllers: the `api` blueprint under /api/v1, the health probes, and their docs.

Each resource is registered once here, both as a route and in the OpenAPI document.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from app.api import api_tokens, auth, health, uploads, users
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
    ("/uploads/<filename>", "upload_raw", uploads.UploadRaw),
    ("/links/<token>", "shared_content", uploads.SharedContent),
]

PROBE_ROUTES = [
    ("/healthz", "healthz", health.Liveness),
    ("/readyz", "readyz", health.Readiness),
]


def register_api(app: Flask) -> None:
    blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)
    for rule, endpoint, resource in API_ROUTES:
        blueprint.add_url_rule(rule, view_func=resource.as_view(endpoint))
    app.register_blueprint(blueprint)
    for rule, endpoint, resource in PROBE_ROUTES:
        app.add_url_rule(rule, view_func=resource.as_view(endpoint))


def register_docs(app: Flask) -> None:
    """Describe every route in the OpenAPI document served at /api/v1/openapi.json."""
    # One instance per app: flask-apispec keeps per-app state (the spec, deferred registrations).
    docs = DepotApiSpec(app, document_options=False)
    docs.spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A session or API token, sent as `Bearer <token>`.",
        },
    )
    for _rule, endpoint, resource in API_ROUTES:
        docs.register(resource, endpoint=endpoint, blueprint="api")
    for _rule, endpoint, resource in PROBE_ROUTES:
        docs.register(resource, endpoint=endpoint)
