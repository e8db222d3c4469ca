"""What controllers say about their HTTP shape beyond their schemas, for the OpenAPI document.

An operation's name and the error statuses that depend on what it means (403, 404, 409...)
are declared on it with `operation`; the statuses that follow from its shape (401 when it
needs a token, 400/413/415/422 for a JSON body, 422 for query parameters, 404 for an id in
the path, 503 when the database is out of reach) are added by `app.openapi.converter`, so
they cannot be forgotten. Headers and bodies that marshmallow cannot express (a raw file, a
download's conditional and range headers, tus's headers) are built with the helpers here.
"""

from __future__ import annotations

from flask_apispec import doc

BINARY = {"type": "string", "format": "binary"}
# The body of every error answer (app.errors), registered by app.openapi.document.
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def operation(operation_id: str, *errors: int, database: bool = True, **extra):
    """Name an operation (the generated clients' method name) and list the error statuses it
    answers beyond those its shape implies; `database=False` where it never reaches the
    database (so no 503). Other keywords go into the operation as they are."""
    return doc(operationId=operation_id, errors=sorted(errors), database=database, **extra)


def header(description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    """A header parameter or response header: `params={"Name": header(...)}` or in `headers`."""
    described = {"description": description, "schema": schema or {"type": "string"}}
    if required:
        described["required"] = True
    return described


def request_header(description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    """A request header, for `@doc(params={"Header-Name": request_header(...)})`."""
    return {"in": "header", **header(description, schema, required=required)}


def binary_body(media_type: str, description: str) -> dict:
    """A required request body of raw bytes."""
    return {"required": True, "description": description, "content": {media_type: {"schema": BINARY}}}


def response(description: str, *, headers: dict | None = None, content: dict | None = None) -> dict:
    described: dict = {"description": description}
    if headers:
        described["headers"] = headers
    if content:
        described["content"] = content
    return described


LOCATION = header("The new resource's URL.", required=True)
