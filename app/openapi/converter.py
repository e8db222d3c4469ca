"""flask-apispec's resource converter, completed to write OpenAPI 3 operations for Depot.

flask-apispec writes operations the OpenAPI 2 way: a `body` parameter, path parameters with a
bare `type`, response `schema`s without a media type, and it drops `formData` and `body`
entries of `@doc(params=...)`. This converter writes what OpenAPI 3 wants instead:

- request bodies: JSON from `use_kwargs(..., location="json")`, multipart from
  `location="form"`, and raw bodies declared with `@doc(requestBody=...)`;
- parameters: path (a uuid where the route says so), query from `use_kwargs(location="query")`
  and headers from `@doc(params=...)`, each with a `schema`;
- responses: JSON content for marshalled schemas, a description for each, and the error
  responses, both those declared with `app.openapi.describe.operation` and those its shape
  implies (see `implied_errors`), each the shared `Error` body;
- `security: []` on public operations, a summary from the view's docstring, and HEAD and
  OPTIONS where a resource defines them itself (tus), not where Flask answers them.

Every operation must have an operationId: a resource without one fails at start, in tests.

Also: flask-apispec instantiates each resource class to read its annotations; ours take their
services through `@inject` constructors, so it gets an instance whose constructor has not run
(the annotations live on the class and its methods, which is all it reads).
"""

from __future__ import annotations

from http import HTTPStatus

import werkzeug.routing
from flask_apispec.apidoc import ResourceConverter
from flask_apispec.paths import rule_to_path
from flask_apispec.utils import resolve_annotations

JSON = "application/json"
BODY_LOCATIONS = {"json": JSON, "form": "multipart/form-data"}
PARAMETER_LOCATIONS = {"query": "query", "querystring": "query", "headers": "header"}
# Methods Flask answers for every route; documented only where a resource defines them.
IMPLICIT_METHODS = {"head", "options"}


# Statuses Python's HTTPStatus does not know: tus's checksum extension.
PHRASES = {460: "Checksum Mismatch"}


def phrase(status: int) -> str:
    return PHRASES.get(status) or HTTPStatus(status).phrase


def error_response_name(status: int) -> str:
    """The component name of an error response: 404 -> "NotFound"."""
    return "".join(word.capitalize() for word in phrase(status).replace("-", " ").split())


def _documents(resource: type, method: str) -> bool:
    """Whether the resource's own class defines `method` with an operationId."""
    view = vars(resource).get(method)
    return view is not None and any("operationId" in docs for docs in resolve_annotations(view, "docs").options)


def _has_required_fields(schema) -> bool:
    return any(field.required for field in schema.fields.values())


class OperationIdMissing(Exception):
    pass


class InjectedResourceConverter(ResourceConverter):
    def __init__(self, app, spec, document_options=True, *, error_response):
        super().__init__(app, spec, document_options)
        self.error_response = error_response  # status -> a {"$ref": ...} to its component

    def get_parent(self, resource, **kwargs):
        return resource.__new__(resource) if isinstance(resource, type) else resource

    def get_path(self, rule, target, **kwargs):
        parent = self.get_parent(target, **kwargs)
        operations = {
            method.lower(): self.get_operation(rule, view, parent=parent)
            for method, view in self.get_operations(rule, target).items()
            if method.lower() not in IMPLICIT_METHODS or _documents(target, method.lower())
        }
        return {"view": target, "path": rule_to_path(rule), "operations": operations}

    def _arguments(self, view, parent):
        """(schema, location) of each use_kwargs, in order."""
        for option in resolve_annotations(view, "args", parent).options:
            yield option["args"], option.get("kwargs", {}).get("location", "json")

    def get_parameters(self, rule, view, docs, parent=None):
        converter = self.marshmallow_plugin.converter
        parameters = [self._path_parameter(rule, name) for name in rule.arguments]
        for schema, location in self._arguments(view, parent):
            if location in PARAMETER_LOCATIONS:
                parameters += converter.schema2parameters(schema, location=PARAMETER_LOCATIONS[location])
        # By name: flask-apispec merges `@doc(params=...)` through a set, in an order that
        # changes from one process to the next, and a document must not (nor generated code).
        for name, parameter in sorted((docs.get("params") or {}).items()):
            parameters.append({"name": name, **parameter})
        return parameters

    @staticmethod
    def _path_parameter(rule, name: str) -> dict:
        is_uuid = isinstance(rule._converters[name], werkzeug.routing.UUIDConverter)
        schema = {"type": "string", "format": "uuid"} if is_uuid else {"type": "string"}
        return {"in": "path", "name": name, "required": True, "schema": schema}

    def _request_body(self, view, parent) -> dict | None:
        for schema, location in self._arguments(view, parent):
            if location in BODY_LOCATIONS:
                required = location == "form" or _has_required_fields(schema)
                return {"required": required, "content": {BODY_LOCATIONS[location]: {"schema": schema}}}
        return None

    def get_operation(self, rule, view, parent=None):
        operation = super().get_operation(rule, view, parent=parent)
        if "operationId" not in operation:
            raise OperationIdMissing(f"{rule.rule} {view.__qualname__} has no operationId (app.openapi.describe)")
        if view.__doc__ and "summary" not in operation:
            operation["summary"] = view.__doc__.strip().splitlines()[0]
        operation.pop("consumes", None)
        operation.pop("produces", None)
        body = operation.get("requestBody") or self._request_body(view, parent)
        if body:
            operation["requestBody"] = body
        operation.setdefault("security", [])
        responses = operation.setdefault("responses", {})
        for status, described in list(responses.items()):
            responses[str(status)] = self._response(int(status), described)
            if str(status) != status:
                del responses[status]
        implied = self.implied_errors(operation, uses_database=operation.pop("database", True))
        for status in sorted(set(operation.pop("errors", [])) | implied):
            responses.setdefault(str(status), self.error_response(status))
        return operation

    @staticmethod
    def _response(status: int, described: dict) -> dict:
        described = dict(described)
        schema = described.pop("schema", None)
        if schema:
            described.setdefault("content", {})[JSON] = {"schema": schema}
        if not described.get("description"):
            described["description"] = phrase(status)
        return described

    @staticmethod
    def implied_errors(operation: dict, *, uses_database: bool) -> set[int]:
        """The error statuses an operation answers because of its shape."""
        errors = set()
        if operation["security"]:
            errors.add(401)  # no token, a wrong one, or an expired one
        body = operation.get("requestBody", {}).get("content", {})
        if JSON in body:
            errors |= {400, 413, 415, 422}  # unreadable JSON, too large, not JSON, invalid
        if any(p["in"] == "query" for p in operation["parameters"]):
            errors.add(422)
        if any(p["in"] == "path" and p["schema"].get("format") == "uuid" for p in operation["parameters"]):
            errors.add(404)  # no such object (other path parameters declare their 404)
        if uses_database:
            errors.add(503)  # the database (or the store) out of reach within its deadline
        return errors
