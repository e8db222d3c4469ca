"""Pages of a listing, as services return them, and the opaque cursors of keyset pages.

A keyset page continues after the last row of the previous one: `(created_at, id) < cursor`
on an index ordered the same way, so a page deep in a listing costs what the first one does
(an OFFSET would read and skip every row before it).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from app.exceptions import Invalid

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One numbered page of a listing and the size of the whole listing."""

    items: list[T]
    page: int
    per_page: int
    total: int


@dataclass(frozen=True)
class CursorPage(Generic[T]):
    """One keyset page and the cursor of the next (None when this is the last)."""

    items: list[T]
    per_page: int
    next_cursor: str | None


def encode_cursor(created_at: datetime, item_id: str) -> str:
    """An opaque, URL-safe token for the position just after (created_at, item_id)."""
    raw = json.dumps([created_at.isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; Invalid (422) for anything this API did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, item_id = json.loads(raw)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("not a cursor")
        item_id = str(uuid.UUID(item_id))
    except (binascii.Error, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise Invalid("The cursor is not one this listing gave out.", fields={"cursor": ["Invalid cursor."]}) from None
    return created_at, item_id
