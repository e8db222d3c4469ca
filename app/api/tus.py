"""tus 1.0.0 endpoints (https://tus.io/protocols/resumable-upload): resumable uploads.

`POST /tus` creates an upload (extensions creation, creation-with-upload, expiration),
`HEAD /tus/<id>` tells its offset, `PATCH /tus/<id>` appends (checksum extension),
`DELETE /tus/<id>` ends it (termination), `OPTIONS` describes the server, and
`GET /tus/<id>` answers its status as JSON. Only the protocol lives here: headers in,
one ResumableUploadService call, headers out. When the last byte has arrived the upload is an
ordinary one: that answer, and every later HEAD, names it in `Depot-Upload-Id` and
`Content-Location`, which tus-js-client and Uppy can read (CORS exposes them).

OPTIONS needs no token (browsers send it without one); every other method does, and the
tus ones must say `Tus-Resumable: 1.0.0` (412 otherwise).
"""

from __future__ import annotations

import base64
import binascii

from flask import Response, current_app, request, url_for
from flask_apispec import doc, marshal_with
from injector import inject
from marshmallow import ValidationError
from werkzeug.http import http_date

from app.api.bodies_in_flight import upload_in_flight
from app.api.request_body import body_blocks
from app.api.resources import PublicResource
from app.api.security import current_principal, login_required
from app.exceptions import Invalid, Malformed, TusVersionUnsupported, Unsupported
from app.models.resumable_upload import ResumableUpload
from app.openapi.describe import binary_body, header, operation, request_header, response
from app.schemas.resumable import ResumableMetadataSchema, ResumableStatusSchema
from app.services.resumable_uploads import CHECKSUM_ALGORITHMS, Checksum, ResumableRequest, ResumableUploadService

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
TUS_ENDPOINTS = {"api.tus_uploads", "api.tus_upload"}
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
METADATA = ResumableMetadataSchema()
BLOCK_BYTES = 1024 * 1024
# The protocol's headers, for the OpenAPI document.
TUS_RESUMABLE = {
    "Tus-Resumable": request_header("The protocol version.", {"type": "string", "enum": [TUS_VERSION]}, required=True)
}
UPLOAD_OFFSET = {
    "Upload-Offset": request_header(
        "Where the body goes: the offset the server last gave.", {"type": "integer", "minimum": 0}, required=True
    )
}
CREATION = {
    **TUS_RESUMABLE,
    "Upload-Length": request_header("The file's size in bytes.", {"type": "integer", "minimum": 1}, required=True),
    "Upload-Metadata": request_header(
        "tus metadata: `key base64value` pairs, comma-separated. `filename` (or `name`) is required; also read: "
        "`filetype` (or `type`), `description`, `visibility`, `tags` (comma-separated), `sha256`.",
        required=True,
    ),
}
UPLOAD_CHECKSUM = {
    "Upload-Checksum": request_header(
        "`<algorithm> <base64 digest>` of this request's body (md5, sha1, sha256): 460 if it differs."
    )
}
OFFSET_BODY = binary_body(OFFSET_CONTENT_TYPE, "The upload's next bytes, from Upload-Offset.")
OFFSET_HEADERS = {
    "Upload-Offset": header("The offset the server has made durable.", {"type": "integer"}, required=True),
    "Upload-Length": header("The file's size.", {"type": "integer"}),
    "Upload-Expires": header("When an unfinished upload is removed (an HTTP date)."),
    "Depot-Upload-Id": header("Once complete: the id of the upload it became.", {"type": "string", "format": "uuid"}),
    "Content-Location": header("Once complete: the URL of the upload it became."),
    "Tus-Resumable": header("The protocol version.", required=True),
}
SERVER_HEADERS = {
    "Tus-Version": header("The protocol versions the server speaks.", required=True),
    "Tus-Extension": header(f"`{TUS_EXTENSIONS}`.", required=True),
    "Tus-Max-Size": header("The largest upload the server takes, in bytes.", {"type": "integer"}),
    "Tus-Checksum-Algorithm": header("The algorithms Upload-Checksum may name."),
}
# Refusals a tus request can meet besides its shape's: 412 (no or other Tus-Resumable), and on
# an upload: gone after its expiry (410) or busy with another request (423).
TUS_ERRORS = (403, 412)
UPLOAD_ERRORS = (403, 404, 410, 412, 423)


def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    return response


def add_tus_headers(response: Response) -> Response:
    """After every answer of these endpoints, errors included: `Tus-Resumable`."""
    if request.endpoint in TUS_ENDPOINTS:
        _tus_headers(response)
    return response


def _empty(status: int, headers: dict | None = None) -> Response:
    response = Response(status=status, headers=headers or {})
    del response.headers["Content-Type"]
    return _tus_headers(response)


def _upload_headers(row: ResumableUpload) -> dict[str, str]:
    headers = {
        "Upload-Offset": str(row.offset),
        "Upload-Length": str(row.length),
        "Upload-Expires": http_date(row.expires_at),
        "Cache-Control": "no-store",
    }
    if row.metadata_header:
        headers["Upload-Metadata"] = row.metadata_header
    if row.upload_id:
        headers["Depot-Upload-Id"] = row.upload_id
        headers["Content-Location"] = url_for("api.upload_detail", upload_id=row.upload_id, _external=True)
    return headers


def _require_tus_version() -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise TusVersionUnsupported(TUS_VERSION)


def _integer_header(name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or len(value) > 19:
        raise Invalid(f"{name} must be a non-negative integer.", fields={name: ["Expected an integer."]})
    return int(value)


def parse_metadata(header: str) -> dict[str, str]:
    """tus `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent)."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        key, _, encoded = item.partition(" ")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Malformed(f"Upload-Metadata value of '{key}' is not base64 of UTF-8 text.") from None
    return pairs


def _body_follows() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _offset_body() -> None:
    if request.mimetype != OFFSET_CONTENT_TYPE:
        raise Unsupported(f"A tus body must be sent as {OFFSET_CONTENT_TYPE}.")


class _TusResource(PublicResource):
    @inject
    def __init__(self, resumable: ResumableUploadService) -> None:
        self.resumable = resumable

    def dispatch_request(self, *args, **kwargs):
        if request.method == "OPTIONS":
            return super().dispatch_request(*args, **kwargs)
        return login_required(self._dispatch_tus)(*args, **kwargs)

    def _dispatch_tus(self, *args, **kwargs):
        # After authentication (401 first); the JSON status (GET) is Depot's, not tus's.
        if request.method != "GET":
            _require_tus_version()
        return super().dispatch_request(*args, **kwargs)

    def options(self, **_kwargs):
        """Describe the tus server: version, extensions, size limit, checksum algorithms."""
        return _empty(
            204,
            {
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(current_app.config["MAX_UPLOAD_BYTES"]),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            },
        )


@doc(tags=["resumable uploads"], security=[{"bearerAuth": []}])
class TusUploads(_TusResource):
    # Documented here, at the creation URL, where tus clients ask; an upload's URL answers too.
    @operation(
        "describeTusServer",
        database=False,
        security=[],
        responses={204: response("The server's tus capabilities.", headers=SERVER_HEADERS)},
    )
    def options(self, **kwargs):
        """Describe the tus server: version, extensions, size limit, checksum algorithms."""
        return super().options(**kwargs)

    @operation(
        "createResumableUpload",
        *TUS_ERRORS,
        400,  # an Upload-Metadata value that is not base64 of UTF-8 text
        408,
        409,
        413,
        415,
        422,
        423,
        429,
        460,
        params={**CREATION, **UPLOAD_CHECKSUM},
        requestBody={
            **binary_body(OFFSET_CONTENT_TYPE, "Optionally, the first bytes (creation-with-upload)."),
            "required": False,
        },
        responses={
            201: response(
                "Created; Location is the upload's URL.",
                headers={"Location": header("The upload's URL.", required=True), **OFFSET_HEADERS},
            )
        },
    )
    def post(self):
        """Create a resumable upload (tus creation; the body may carry its first bytes)."""
        if "Upload-Defer-Length" in request.headers:
            raise Invalid("Deferred lengths are not supported: send Upload-Length.")
        header = request.headers.get("Upload-Metadata", "")
        try:
            metadata = METADATA.load(parse_metadata(header))
        except ValidationError as error:
            raise Invalid("Upload-Metadata is invalid.", fields=error.messages) from None
        wanted = ResumableRequest(
            length=_integer_header("Upload-Length"),
            filename=metadata["filename"] or metadata["name"],
            content_type=metadata["filetype"] or metadata["type"],
            description=metadata["description"],
            visibility=metadata["visibility"],
            tags=metadata["tags"],
            sha256=(metadata["sha256"] or "").lower() or None,
            metadata_header=header,
        )
        if _body_follows():
            _offset_body()
        principal = current_principal()
        row = self.resumable.create(principal, wanted)
        headers = {"Location": url_for("api.tus_upload", upload_id=row.id, _external=True)}
        if _body_follows():
            with upload_in_flight(request, current_app.config["BODY_IDLE_TIMEOUT_SECONDS"]):
                row = self.resumable.append(
                    principal, row.id, 0, body_blocks(request, BLOCK_BYTES), client_address=request.remote_addr
                )
            headers.update(_upload_headers(row))
        else:
            headers["Upload-Expires"] = http_date(row.expires_at)
        return _empty(201, headers)


@doc(tags=["resumable uploads"], security=[{"bearerAuth": []}])
class TusUpload(_TusResource):
    @operation(
        "getResumableUploadOffset",
        *UPLOAD_ERRORS,
        params=TUS_RESUMABLE,
        responses={200: response("Its offset.", headers=OFFSET_HEADERS)},
    )
    def head(self, upload_id: str):
        """How far the upload has come (Upload-Offset); names the finished upload once complete."""
        return _empty(200, _upload_headers(self.resumable.status(current_principal(), upload_id)))

    @operation("getResumableUpload", 403, 404, 410)
    @marshal_with(ResumableStatusSchema(), code=200)
    def get(self, upload_id: str):
        """The upload's progress as JSON, with the finished upload once complete."""
        return self.resumable.describe(current_principal(), upload_id)

    @operation(
        "appendToResumableUpload",
        *UPLOAD_ERRORS,
        408,
        409,
        413,
        415,
        422,
        429,
        460,
        params={**TUS_RESUMABLE, **UPLOAD_OFFSET, **UPLOAD_CHECKSUM},
        requestBody=OFFSET_BODY,
        responses={204: response("Appended; Upload-Offset is the new offset.", headers=OFFSET_HEADERS)},
    )
    def patch(self, upload_id: str):
        """Append the body at Upload-Offset (tus core; Upload-Checksum optional)."""
        _offset_body()
        offset = _integer_header("Upload-Offset")
        checksum = Checksum.parse(request.headers["Upload-Checksum"]) if "Upload-Checksum" in request.headers else None
        with upload_in_flight(request, current_app.config["BODY_IDLE_TIMEOUT_SECONDS"]):
            row = self.resumable.append(
                current_principal(),
                upload_id,
                offset,
                body_blocks(request, BLOCK_BYTES),
                checksum,
                client_address=request.remote_addr,
            )
        return _empty(204, _upload_headers(row))

    @operation("terminateResumableUpload", *UPLOAD_ERRORS, params=TUS_RESUMABLE)
    @marshal_with(None, code=204)
    def delete(self, upload_id: str):
        """End the upload and remove its bytes (tus termination)."""
        self.resumable.terminate(current_principal(), upload_id)
        return _empty(204)
