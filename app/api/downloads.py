"""Turning a Download into a safe HTTP response: streamed, conditional, ranged, inert.

Preconditions are answered first, from the upload's row alone, so a 304, a 412, a HEAD or
a 416 never touches the store (and works while it is down). Then the file is opened once, at
the first byte to send (If-Range is decided beforehand), before any header goes out: a file
deleted meanwhile is a 404 then (UploadService decides), and a local file, once open, stays
readable to the end even if a delete removes it during the transfer. A whole file goes through
the server's `wsgi.file_wrapper`, so gunicorn hands a local one to the kernel with sendfile; a
Range is streamed from the seekable reader, so only the bytes sent are read. When the store
can presign and DOWNLOAD_REDIRECT=presigned, the answer is a redirect to a short-lived URL.
A client that stops reading is cut off after BODY_IDLE_TIMEOUT_SECONDS (stalled_readers).

Every download is an attachment that a browser will neither sniff nor run: nosniff, a
sandboxing CSP, and a Content-Disposition whose filename is escaped per RFC 6266/5987.
"""

from __future__ import annotations

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import PreconditionFailed, RequestedRangeNotSatisfiable
from werkzeug.http import is_resource_modified, parse_range_header
from werkzeug.wsgi import FileWrapper, wrap_file

from app.api.stalled_readers import end_when_unread_for
from app.attachments import content_disposition
from app.models import Upload
from app.openapi.describe import BINARY, ERROR_CONTENT, header, request_header, response
from app.services.uploads import Download

# Read size when streaming from a reader (not sendfile): large reads keep Python's share small.
STREAM_CHUNK_BYTES = 1024 * 1024

# The HTTP shape of a download, for the OpenAPI document: conditional and range requests
# (RFC 9110 §13 and §14) both ways.
ETAG = {"ETag": header("The file's SHA-256 as a strong entity tag.")}
FILE_HEADERS = {
    **ETAG,
    "Last-Modified": header("When the file was uploaded."),
    "Accept-Ranges": header("`bytes`: single ranges are served.", {"type": "string", "enum": ["bytes"]}),
    "Content-Disposition": header("Always an attachment, with the file's name (RFC 6266)."),
    "Cache-Control": header("`private, no-cache` (or `public, no-cache` for a public file): always revalidated."),
}
FILE_CONTENT = {"*/*": {"schema": BINARY}}
DOWNLOAD_PARAMS = {
    "Range": request_header("One range of bytes, `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (206)."),
    "If-Range": request_header("An ETag or date: serve the Range only if the file still matches, else all of it."),
    "If-None-Match": request_header("ETags of the copies you hold: 304 when one is the file."),
    "If-Modified-Since": request_header("An HTTP date: 304 unless the file is newer (ignored with If-None-Match)."),
    "If-Match": request_header("ETags: 412 unless one is the file (or `*`)."),
    "If-Unmodified-Since": request_header("An HTTP date: 412 if the file is newer (ignored with If-Match)."),
}
DOWNLOAD_RESPONSES = {
    200: response("The whole file, with its own Content-Type.", headers=FILE_HEADERS, content=FILE_CONTENT),
    206: response(
        "The requested range.",
        headers={**FILE_HEADERS, "Content-Range": header("`bytes first-last/size`.", required=True)},
        content=FILE_CONTENT,
    ),
    302: response(
        "With DOWNLOAD_REDIRECT=presigned: a short-lived URL of the file in the store.",
        headers={"Location": header("The presigned URL.", required=True)},
        content={"application/json": {"schema": {"type": "object", "properties": {"url": {"type": "string"}}}}},
    ),
    304: response("Your copy is current (If-None-Match or If-Modified-Since).", headers=ETAG),
    416: response(
        "The range starts past the end of the file.",
        headers={"Content-Range": header("`bytes */size`.", required=True)},
        content=ERROR_CONTENT,
    ),
}


def _normalize_range(environ: dict, upload: Upload) -> None:
    """Keep only a Range header Werkzeug will answer per RFC 9110, and decide If-Range.

    Werkzeug answers 416 where the RFC says to ignore the header (another unit, bad syntax,
    several ranges, which we do not serve as multipart/byteranges) or to serve the whole
    file (a suffix longer than the file). Those are rewritten or dropped here. An If-Range
    that does not match the file asks for the whole file (§13.1.5): decided here, by the test
    Werkzeug would apply later, so that the file is opened once, at the right byte.
    """
    if "HTTP_IF_RANGE" in environ:
        stale = "HTTP_RANGE" in environ and is_resource_modified(
            environ, etag=upload.sha256, last_modified=upload.created_at, ignore_if_range=False
        )
        del environ["HTTP_IF_RANGE"]
        if stale:
            del environ["HTTP_RANGE"]
    header = environ.get("HTTP_RANGE")
    if header is None:
        return
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        del environ["HTTP_RANGE"]
        return
    start, stop = parsed.ranges[0]
    if start < 0 and -start > upload.size:
        environ["HTTP_RANGE"] = "bytes=0-" if upload.size else header


def _range_start(environ: dict, size: int) -> int:
    """The first byte a (normalized) Range header asks for, or 0."""
    parsed = parse_range_header(environ.get("HTTP_RANGE"))
    window = parsed.range_for_length(size) if parsed is not None else None
    return window[0] if window else 0


def _check_preconditions(download: Download) -> Response | None:
    """RFC 9110 §13.2.2, in its order: 412 when If-Match or If-Unmodified-Since fails, a
    bodiless 304 when If-None-Match or If-Modified-Since says the client's copy is current.

    Decided here once; the headers are then removed so Werkzeug, which reads If-Match
    otherwise (a matching one would become a 304), only handles Range (If-Range is decided by
    _normalize_range).
    """
    upload = download.upload
    last_modified = upload.created_at.replace(microsecond=0)  # HTTP dates have whole seconds
    if request.if_match:
        if not (request.if_match.star_tag or request.if_match.contains(upload.sha256)):
            raise PreconditionFailed("The file does not match If-Match.")
    elif request.if_unmodified_since and last_modified > request.if_unmodified_since:
        raise PreconditionFailed("The file changed after If-Unmodified-Since.")
    if request.if_none_match:
        current = request.if_none_match.star_tag or request.if_none_match.contains_weak(upload.sha256)
    else:
        current = bool(request.if_modified_since and last_modified <= request.if_modified_since)
    for name in ("HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE"):
        request.environ.pop(name, None)
    return _headers_only(download, status=304) if current else None


def _headers_only(download: Download, status: int) -> Response:
    """A response with the file's headers and no body (HEAD, 304)."""
    upload = download.upload
    response = Response(status=status, mimetype=upload.content_type)
    response.set_etag(upload.sha256)
    response.last_modified = upload.created_at
    if status == 304:
        del response.headers["Content-Type"]
    else:
        response.content_length = upload.size
        response.accept_ranges = "bytes"
    return response


def _refuse_unsatisfiable_range(size: int) -> None:
    """416 before opening the store when the Range cannot be served."""
    parsed = parse_range_header(request.environ.get("HTTP_RANGE"))
    if parsed is not None and parsed.range_for_length(size) is None:
        raise RequestedRangeNotSatisfiable(length=size)


def _stream(download: Download) -> Response:
    upload = download.upload
    ranged = "HTTP_RANGE" in request.environ
    # Raises NotFound when a delete has just removed the file; once open, a local file stays
    # readable to the end whatever happens to it.
    stream = download.open(_range_start(request.environ, upload.size))
    end_when_unread_for(request.environ, current_app.config["BODY_IDLE_TIMEOUT_SECONDS"])
    try:
        # A whole file goes through the server's wrapper (gunicorn: sendfile for a local file).
        # A Range needs Werkzeug's, which is seekable: its range wrapper seeks, where it would
        # otherwise skip bytes from the position the file was opened at.
        body = (
            FileWrapper(stream, STREAM_CHUNK_BYTES)
            if ranged
            else wrap_file(request.environ, stream, STREAM_CHUNK_BYTES)
        )
        response = Response(body, mimetype=upload.content_type, direct_passthrough=True)
        response.content_length = upload.size
        response.last_modified = upload.created_at
        response.set_etag(upload.sha256)
        return response.make_conditional(request.environ, accept_ranges=True, complete_length=upload.size)
    except BaseException:
        stream.close()
        raise


def _redirect(download: Download) -> Response:
    response = jsonify({"url": download.redirect_url})
    response.status_code = 302
    response.headers["Location"] = download.redirect_url
    # The URL expires soon and may be for a file that is about to change visibility.
    response.headers["Cache-Control"] = "no-store"
    return response


def _body_response(download: Download) -> Response:
    upload = download.upload
    if request.method == "HEAD":
        return _headers_only(download, status=200)
    if download.redirect_url is not None:
        return _redirect(download)
    _normalize_range(request.environ, upload)
    _refuse_unsatisfiable_range(upload.size)
    return _stream(download)


def file_response(download: Download) -> Response:
    upload = download.upload
    response = _check_preconditions(download) or _body_response(download)
    if response.status_code == 302:
        return response  # the store's URL sets the file's own headers
    response.headers["Content-Disposition"] = content_disposition(upload.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Always revalidated (cheap, thanks to the ETag), so a file made private, deleted or
    # unshared stops being served from any cache at once.
    response.headers["Cache-Control"] = "public, no-cache" if upload.is_public else "private, no-cache"
    return response
