"""The OpenAPI (2.0) document and Swagger UI served by flask-apispec, adapted to Depot.

- flask-apispec instantiates each resource class to read its annotations; ours take their
  services through `@inject` constructors and cannot be built without the injector, so the
  converter gets an instance whose constructor has not run (the annotations live on the
  class and its methods, which is all the converter reads).
- Each operation gets its summary from the view's docstring, a description for every
  response, `required` on bodies whose schema has required fields, `format: uuid` on id
  path parameters, and the shared error response as `default`.
The other trap, Flask-Injector breaking the Swagger UI template's `url_for`, is undone in
`app.register_injector`.
"""

from __future__ import annotations

from http import HTTPStatus

import flask
import werkzeug.routing
from flask_apispec import FlaskApiSpec, paths
from flask_apispec.apidoc import ResourceConverter
from flask_apispec.utils import resolve_annotations

from app.schemas.common import ErrorSchema

# flask-apispec's table of URL converters has no entry for <uuid:...>.
paths.CONVERTER_MAPPING.setdefault(werkzeug.routing.UUIDConverter, ("string", "uuid"))

ERROR_REF = {"$ref": "#/definitions/Error"}


def _has_required_fields(schema) -> bool:
    return any(field.required for field in getattr(schema, "fields", {}).values())


class InjectedResourceConverter(ResourceConverter):
    def get_parent(self, resource, **kwargs):
        return resource.__new__(resource) if isinstance(resource, type) else resource

    def get_operation(self, rule, view, parent=None):
        operation = super().get_operation(rule, view, parent=parent)
        if view.__doc__ and "summary" not in operation:
            operation["summary"] = view.__doc__.strip().splitlines()[0]
        for status, response in operation.get("responses", {}).items():
            if not response.get("description"):
                response["description"] = HTTPStatus(int(status)).phrase
            if response.get("schema") == {}:
                del response["schema"]
        operation.setdefault("responses", {})["default"] = {"description": "An error", "schema": ERROR_REF}
        bodies = [option["args"] for option in resolve_annotations(view, "args", parent).options]
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "body":
                parameter["required"] = any(_has_required_fields(schema) for schema in bodies)
        return operation


class DepotApiSpec(FlaskApiSpec):
    """FlaskApiSpec for resources whose constructors are called by the injector."""

    def init_app(self, app: flask.Flask) -> None:
        super().init_app(app)  # runs no registrations: they are made after this, per app
        self.resource_converter = InjectedResourceConverter(app, self.spec, self.document_options)
        self.spec.components.schema("Error", schema=ErrorSchema)
