"""The request parser flask-apispec uses: webargs' Flask parser, stricter about bodies.

- A body sent with a type other than JSON to a JSON endpoint is a 415, not a silent
  "field missing" 422 (webargs would otherwise ignore it).
- A JSON body must be an object; anything else (array, string, null) is a 400.
- JSON nested deeper than Python's recursion limit, or with a number too long to convert,
  is a 400, not a 500.
- A chunked body (no Content-Length) that reaches MAX_CONTENT_LENGTH is a 413: Werkzeug
  would otherwise hand over the first MAX_CONTENT_LENGTH bytes as if they were the body.
"""

from __future__ import annotations

from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType


def _has_body(req: Request) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "").lower()


class DepotParser(FlaskParser):
    def _raw_load_json(self, req: Request):
        if not is_json_request(req):
            if _has_body(req):
                raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
            return core.missing
        data = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(data) >= limit:
            raise RequestEntityTooLarge()
        try:
            parsed = core.parse_json(data)
        except RecursionError:
            abort(400, messages={"json": ["The JSON body is nested too deeply."]})
        except ValueError as error:
            if isinstance(error, core.json.JSONDecodeError | UnicodeDecodeError):
                raise  # webargs turns this into its own 400
            abort(400, messages={"json": ["The JSON body has a value that cannot be read."]})
        if not isinstance(parsed, dict):
            abort(400, messages={"json": ["The JSON body must be an object."]})
        return parsed


parser = DepotParser()
