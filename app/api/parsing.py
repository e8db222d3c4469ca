"""The request parser flask-apispec uses: webargs' Flask parser, stricter about bodies.

- A body sent with a type other than JSON to a JSON endpoint is a 415, not a silent
  "field missing" 422 (webargs would otherwise ignore it).
- JSON nested deeper than Python's recursion limit is a 400, not a 500.
"""

from __future__ import annotations

from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import UnsupportedMediaType


def _has_body(req: Request) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "").lower()


class DepotParser(FlaskParser):
    def _raw_load_json(self, req: Request):
        if not is_json_request(req):
            if _has_body(req):
                raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
            return core.missing
        try:
            return core.parse_json(req.get_data(cache=True))
        except RecursionError:
            abort(400, messages={"json": ["The JSON body is nested too deeply."]})


parser = DepotParser()
