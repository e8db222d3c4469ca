"""Schemathesis hooks for Depot's fuzzing (integration-tests/test_fuzz_api.py, which names this
module in SCHEMATHESIS_HOOKS): how to generate bodies of the media types it does not know, and
one guard around a CPython bug that the run's two worker threads can hit.

tus requests carry raw bytes as `application/offset+octet-stream` (creation-with-upload and
PATCH); without a strategy schemathesis cannot send those operations at all.

CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state, so two
threads inside `ast.parse` at once (one can yield the GIL mid-parse, when the garbage collector
runs a finalizer) corrupt it: `SystemError: AST constructor recursion depth mismatch`
(python/cpython#106905). Hypothesis parses a lambda's source to name a filtered strategy, and
schemathesis' coverage phase filters strategies in both workers, so a CI run failed on it once.
Parsing one at a time is the fix; it costs nothing measurable (a parse is microseconds).
"""

import ast
import threading

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))

_parse = ast.parse
_parsing = threading.Lock()


def _parse_one_at_a_time(*args, **kwargs):
    with _parsing:
        return _parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time
