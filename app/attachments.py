"""The Content-Disposition of a download, shared by Depot's own responses and presigned URLs."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name as filename* (RFC 6266/5987)."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(c if c.isprintable() and c not in '"\\;' else "_" for c in fallback) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
