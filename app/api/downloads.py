"""Turning a Download into a safe HTTP response: streamed, conditional, ranged, inert.

Werkzeug's send_file gives streaming (sendfile through wsgi.file_wrapper for local files),
ETag/If-None-Match (304) and Range (206/416). On top of that every download is an attachment
that a browser will neither sniff nor run: nosniff, a sandboxing CSP, and a
Content-Disposition whose filename is escaped per RFC 6266/5987.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from flask import Response, request, send_file
from werkzeug.http import parse_range_header

from app.exceptions import Unavailable
from app.services.uploads import Download
from app.storage.base import StorageError


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name as filename*."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(c if c.isprintable() and c not in '"\\;' else "_" for c in fallback) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _normalize_range(environ: dict, size: int) -> None:
    """Keep only a Range header Werkzeug will answer per RFC 9110.

    Werkzeug answers 416 where the RFC says to ignore the header (another unit, bad syntax,
    several ranges, which we do not serve as multipart/byteranges) or to serve the whole
    file (a suffix longer than the file). Those are rewritten or dropped here.
    """
    header = environ.get("HTTP_RANGE")
    if header is None:
        return
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        del environ["HTTP_RANGE"]
        return
    start, stop = parsed.ranges[0]
    if start < 0 and -start > size:
        environ["HTTP_RANGE"] = "bytes=0-" if size else header


def file_response(download: Download) -> Response:
    upload = download.upload
    _normalize_range(request.environ, upload.size)
    try:
        source = download.local_path if download.local_path is not None else download.open()
        response = send_file(
            source,
            mimetype=upload.content_type,
            as_attachment=True,
            download_name=upload.filename,
            conditional=True,
            etag=upload.sha256,
            last_modified=upload.created_at,
        )
    except (StorageError, FileNotFoundError) as error:
        raise Unavailable("The file could not be read from the store.") from error
    response.headers["Content-Disposition"] = content_disposition(upload.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Always revalidated (cheap, thanks to the ETag), so a file made private, deleted or
    # unshared stops being served from any cache at once.
    response.headers["Cache-Control"] = "public, no-cache" if upload.is_public else "private, no-cache"
    return response
