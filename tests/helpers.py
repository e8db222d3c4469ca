"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def without_request_id(body: dict) -> dict:
    """An error body minus its per-request id, for comparing two errors."""
    return {key: value for key, value in body.items() if key != "request_id"}
