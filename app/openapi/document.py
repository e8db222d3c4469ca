"""The OpenAPI 3.0.3 document served at /api/v1/openapi.json, with Swagger UI on it.

3.0.3 rather than 3.1: the Swagger UI flask-apispec ships (3.x) and every generator Depot is
tested with (openapi-python-client, openapi-typescript) read it, and nullable fields are
plain `nullable: true`. The document is still built from the marshmallow schemas and the
resources' annotations by flask-apispec and apispec; `app.openapi.converter` writes each
operation the OpenAPI 3 way, and here the document gets what is not per operation: `info`
with its licence, `servers`, the `http` bearer scheme (Swagger UI's Authorize then takes a
bare token), tag descriptions, the shared error responses, and response schemas whose every
field is required (`OutputSchema`: marshmallow always sends every field it declares).
"""

from __future__ import annotations

import flask
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask_apispec import FlaskApiSpec

from app.openapi.converter import InjectedResourceConverter, error_response_name
from app.openapi.describe import ERROR_CONTENT
from app.schemas.common import ErrorSchema, OutputSchema

OPENAPI_VERSION = "3.0.3"
BEARER = "bearerAuth"
TAGS = [
    ("auth", "Accounts: register, log in for a session token, log out."),
    ("users", "Your profile, and user management for admins."),
    ("api tokens", "Personal API tokens for scripts: scoped to roles, revocable, optionally expiring."),
    ("uploads", "Files with their metadata: upload (multipart or raw), list, read, change, download, share."),
    ("resumable uploads", "tus 1.0.0 resumable uploads (https://tus.io/protocols/resumable-upload)."),
    ("health", "Liveness and readiness probes for orchestrators."),
]
DESCRIPTION = """Depot keeps files and their metadata.

Authenticate with `Authorization: Bearer <token>`: a session token from `POST /api/v1/auth/token`
or a personal API token from `POST /api/v1/users/me/tokens`. Every error is JSON with the
`Error` shape and the status it names."""


class DepotOpenAPIConverter(OpenAPIConverter):
    """apispec's converter; an OutputSchema's fields are all required (always sent)."""

    def schema2jsonschema(self, schema):
        jsonschema = super().schema2jsonschema(schema)
        schema_class = schema if isinstance(schema, type) else type(schema)
        if issubclass(schema_class, OutputSchema):
            jsonschema["required"] = sorted(jsonschema["properties"])
        return jsonschema


class DepotMarshmallowPlugin(MarshmallowPlugin):
    Converter = DepotOpenAPIConverter


def build_spec(config: flask.Config) -> APISpec:
    return APISpec(
        title=config["APISPEC_TITLE"],
        version=config["APISPEC_VERSION"],
        openapi_version=OPENAPI_VERSION,
        plugins=[DepotMarshmallowPlugin()],
        info={"description": DESCRIPTION, "license": {"name": "Proprietary"}},
        servers=[{"url": "/", "description": "The server this document is served by."}],
        tags=[{"name": name, "description": description} for name, description in TAGS],
    )


class DepotApiSpec(FlaskApiSpec):
    """FlaskApiSpec writing OpenAPI 3 for resources whose constructors the injector calls."""

    def init_app(self, app: flask.Flask) -> None:
        app.config["APISPEC_SPEC"] = build_spec(app.config)
        super().init_app(app)  # runs no registrations: they are made after this, per app
        self.spec.components.schema("Error", schema=ErrorSchema)
        self.spec.components.security_scheme(
            BEARER,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A session token (POST /api/v1/auth/token) or a personal API token.",
            },
        )
        self.resource_converter = InjectedResourceConverter(
            app, self.spec, self.document_options, error_response=self._error_response
        )

    def _error_response(self, status: int) -> dict:
        """A reference to the shared response for an error status, added on first use."""
        name = error_response_name(status)
        if name not in self.spec.components.responses:
            self.spec.components.response(
                name,
                {
                    "description": f"{status} {name}: see `message`.",
                    "content": ERROR_CONTENT,
                },
            )
        return {"$ref": f"#/components/responses/{name}"}
