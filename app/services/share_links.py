"""Signed, expiring download links (itsdangerous), revocable per upload.

A link carries the upload id, its expiry time and the upload's link generation. Bumping the
generation (DELETE /uploads/<id>/links) invalidates every link issued before; deleting the
upload invalidates them too, because the id no longer resolves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

LINK_SALT = "depot.share-link.v1"


@dataclass(frozen=True)
class LinkClaims:
    upload_id: str
    expires_at: int
    generation: int


class LinkSigner:
    """Signs and checks share-link tokens with the app's secret key."""

    def __init__(self, secret_key: str) -> None:
        self.serializer = URLSafeSerializer(secret_key, salt=LINK_SALT)

    def sign(self, upload_id: str, generation: int, expires_at: int) -> str:
        return self.serializer.dumps([upload_id, expires_at, generation])

    def verify(self, token: str, now: float | None = None) -> LinkClaims | None:
        """The claims of a valid, unexpired token; None for anything else."""
        try:
            upload_id, expires_at, generation = self.serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            return None
        if not (isinstance(upload_id, str) and isinstance(expires_at, int) and isinstance(generation, int)):
            return None
        if expires_at <= (time.time() if now is None else now):
            return None
        return LinkClaims(upload_id=upload_id, expires_at=expires_at, generation=generation)
