"""Schemathesis hooks for Depot's fuzzing (integration-tests/test_fuzz_api.py, which names this
module in SCHEMATHESIS_HOOKS): how to generate bodies of the media types it does not know.

tus requests carry raw bytes as `application/offset+octet-stream` (creation-with-upload and
PATCH); without a strategy schemathesis cannot send those operations at all.
"""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))
