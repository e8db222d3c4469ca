"""What UploadService needs from an incoming upload, whatever the HTTP shape it came in.

The API layer implements `IncomingUpload` over a multipart form or a raw body. The service
decides when the body is read (after its checks) by calling `receive` with a function that
stores the file's bytes; nothing here depends on Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from app.storage.base import StagedFile


@dataclass(frozen=True)
class FilePart:
    """The file as it arrives: its client-side name, declared type and a stream of bytes."""

    filename: str | None
    content_type: str | None
    chunks: Iterator[bytes]


@dataclass
class ReceivedUpload:
    """What arrived: the staged file plus validated metadata."""

    staged: StagedFile
    filename: str | None
    content_type: str | None
    description: str | None = None
    visibility: str = "private"
    tags: list[str] = field(default_factory=list)
    # Hex SHA-256 the client says the file has (Content-Digest header or `sha256` field).
    expected_sha256: str | None = None


class IncomingUpload(Protocol):
    """An upload request whose body has not been read yet."""

    # Bytes the request body will have, if the client said (Content-Length).
    declared_length: int | None
    # How many body bytes are not file content at most (multipart boundaries and fields).
    envelope_allowance: int
    # The client's network address (behind trusted proxies, the one they report), if known.
    client_address: str | None

    def receive(self, store: Callable[[FilePart], StagedFile]) -> ReceivedUpload:
        """Read the body, passing the file to `store` as it streams; validate the rest."""
        ...
