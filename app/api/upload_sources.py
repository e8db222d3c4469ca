"""HTTP adapters that turn an upload request into an `IncomingUpload` for UploadService.

The body is read only when the service calls `receive`, in chunks, and the file's bytes go
straight to the store's staging area: nothing holds the whole body in memory. Multipart is
parsed with Werkzeug's sans-IO `MultipartDecoder`, which lets us enforce our own limits
(one file part, few and small fields, bounded part headers) while the bytes stream past.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Callable, Iterator

from flask import Request
from marshmallow import Schema, ValidationError
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble

from app.api.request_body import RequestBody, read_block
from app.exceptions import Invalid, Malformed, Unsupported
from app.services.incoming import FilePart, ReceivedUpload
from app.storage.base import StagedFile

# Werkzeug's decoder is fastest fed about 128 KiB at a time (2.3 GB/s here, measured; 659 MB/s
# at 256 KiB, where its buffer handling starts to copy), while the server is fastest read
# in large blocks: read READ_BYTES, feed it in CHUNK_BYTES views.
CHUNK_BYTES = 128 * 1024
READ_BYTES = 8 * CHUNK_BYTES
MAX_FIELD_BYTES = 8 * 1024
MAX_PARTS = 24
# Form fields upload widgets send beside the file with their default options, accepted and
# ignored (any other unknown field is still a 422, so a misspelt `visibilty` is not silently
# dropped): Uppy's XHR upload sends each file's meta, `name`, `type` and `relativePath`. The
# file part's own filename and the bytes' checked type are what Depot keeps.
WIDGET_FIELDS = ("name", "type", "relativePath")
# A part's headers are small; a decoder buffer far beyond one chunk means they never end.
MAX_DECODER_BUFFER = CHUNK_BYTES + 64 * 1024
# Some clients send a full Windows path with bare backslashes, which an RFC quoted-string
# parse (Werkzeug's) reads as escapes and drops, gluing the path parts together.
_RAW_FILENAME = re.compile(r'(?:^|;)\s*filename\s*=\s*"([^"]*)"', re.IGNORECASE)
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:\\|\\\\)")
_CONTENT_DIGEST_SHA256 = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):\s*(?:,|$)", re.IGNORECASE)


def _digest_from_header(request: Request) -> str | None:
    """The hex SHA-256 from an RFC 9530 `Content-Digest: sha-256=:<base64>:` header, if sent."""
    header = request.headers.get("Content-Digest")
    if not header:
        return None
    match = _CONTENT_DIGEST_SHA256.search(header)
    if not match:
        raise Invalid(
            "Content-Digest must carry a sha-256 value: sha-256=:<base64>:",
            fields={"Content-Digest": ["Expected sha-256=:<base64>:."]},
        )
    try:
        raw = base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise Invalid(
            "Content-Digest's sha-256 value is not a base64 SHA-256.", fields={"Content-Digest": ["Bad value."]}
        )
    return raw.hex()


def _client_filename(event: File) -> str:
    """The part's filename; a Windows path is taken as sent, so its folders can be dropped."""
    match = _RAW_FILENAME.search(event.headers.get("Content-Disposition", ""))
    if match and _WINDOWS_PATH.match(match.group(1)):
        return match.group(1)
    return event.filename


def _load_metadata(schema: Schema, data: dict) -> dict:
    try:
        return schema.load(data)
    except ValidationError as error:
        raise Invalid("The upload's metadata is invalid.", fields=error.messages) from None


def _combine_digests(metadata: dict, header_digest: str | None) -> str | None:
    field_digest = (metadata.pop("sha256", None) or "").lower() or None
    if field_digest and header_digest and field_digest != header_digest:
        raise Invalid("The sha256 field and the Content-Digest header disagree.", fields={"sha256": ["Mismatch."]})
    return field_digest or header_digest


def _allow_large_body(request: Request) -> None:
    # The app-wide MAX_CONTENT_LENGTH is sized for JSON; uploads have their own limits,
    # enforced by UploadService before and while the body is read. (None would mean "use
    # the app-wide value" to Flask, so the per-request override is a number.)
    request.max_content_length = sys.maxsize


class MultipartUpload:
    """`POST /uploads` with a multipart/form-data body: one `file` part plus metadata fields."""

    envelope_allowance = MAX_PARTS * (MAX_FIELD_BYTES + 1024)

    def __init__(self, request: Request, metadata_schema: Schema) -> None:
        # Nothing is checked here: the service checks the caller's role first.
        self.request = request
        self.schema = metadata_schema
        self.declared_length = request.content_length
        self.client_address = request.remote_addr

    def receive(self, store: Callable[[FilePart], StagedFile]) -> ReceivedUpload:
        request = self.request
        if request.mimetype != "multipart/form-data":
            raise Unsupported("Send the upload as multipart/form-data with a 'file' part (or use PUT with a raw body).")
        boundary = request.mimetype_params.get("boundary", "")
        if not boundary or len(boundary) > 200:
            raise Malformed("The multipart Content-Type has no usable boundary.")
        self.boundary = boundary.encode("latin-1")
        self.header_digest = _digest_from_header(request)
        _allow_large_body(request)
        events = self._events()
        values: dict[str, list[str]] = {}
        staged = part = None
        parts = 0
        for event in events:
            parts += 1
            if parts > MAX_PARTS:
                raise Invalid(f"Too many form parts (at most {MAX_PARTS}).")
            if not event.name:
                raise Invalid("Every form part needs a name.", fields={"_schema": ["A form part has no name."]})
            if isinstance(event, File) and event.name == "file":
                if staged is not None:
                    raise Invalid("Send exactly one file part.", fields={"file": ["Only one file per upload."]})
                part = FilePart(_client_filename(event), event.headers.get("Content-Type"), self._data(events))
                staged = store(part)
            elif isinstance(event, File):
                raise Invalid(f"Unexpected file part '{event.name}'.", fields={event.name: ["Unknown field."]})
            elif isinstance(event, Field):
                values.setdefault(event.name, []).append(self._field_value(event.name, events))
        if staged is None:
            raise Invalid("The form has no 'file' part.", fields={"file": ["Missing data for required field."]})
        form = self._as_form_data(values)
        for name in WIDGET_FIELDS:
            form.pop(name, None)
        metadata = _load_metadata(self.schema, form)
        return ReceivedUpload(
            staged=staged,
            filename=part.filename,
            content_type=part.content_type,
            expected_sha256=_combine_digests(metadata, self.header_digest),
            **metadata,
        )

    def _events(self) -> Iterator[Field | File | Data]:
        decoder = MultipartDecoder(self.boundary)
        pieces = self._pieces()
        finished = False
        while True:
            try:
                event = decoder.next_event()
            except ValueError:
                raise Malformed("The multipart body is malformed or truncated.") from None
            if isinstance(event, NeedData):
                if finished:
                    raise Malformed("The multipart body is truncated (its closing boundary never came).")
                chunk = next(pieces)
                finished = not chunk
                decoder.receive_data(chunk or None)
                if len(decoder.buffer) > MAX_DECODER_BUFFER:
                    raise Malformed("A multipart part's headers are too large.")
                continue
            if isinstance(event, Epilogue):
                return
            if isinstance(event, Preamble):
                continue  # text before the first boundary carries nothing
            yield event

    def _pieces(self) -> Iterator[bytes | memoryview]:
        """The body in CHUNK_BYTES views, read READ_BYTES at a time, then b"" at its end.

        Large reads keep the per-read cost low (app/api/request_body.py); small pieces keep
        the decoder fast. The decoder copies what it keeps, so views of the block are safe.
        """
        stream = RequestBody(self.request)
        while block := read_block(stream, READ_BYTES):
            view = memoryview(block)
            for start in range(0, len(block), CHUNK_BYTES):
                yield view[start : start + CHUNK_BYTES]
        while True:
            yield b""

    @staticmethod
    def _data(events: Iterator) -> Iterator[bytes]:
        """The Data events of the current part, until its last one."""
        for event in events:
            if not isinstance(event, Data):
                raise Malformed("The multipart body is malformed.")
            if event.data:
                yield event.data
            if not event.more_data:
                return

    def _field_value(self, name: str, events: Iterator) -> str:
        value = bytearray()
        for chunk in self._data(events):
            value += chunk
            if len(value) > MAX_FIELD_BYTES:
                raise Invalid(f"The form field '{name}' is too long.", fields={name: ["Too long."]})
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid(f"The form field '{name}' is not UTF-8.", fields={name: ["Not valid UTF-8."]}) from None

    def _as_form_data(self, values: dict[str, list[str]]) -> dict:
        data: dict = {}
        for name, items in values.items():
            if name == "tags":
                data[name] = items
            elif len(items) > 1:
                raise Invalid(f"The form field '{name}' was sent more than once.", fields={name: ["Send it once."]})
            else:
                data[name] = items[0]
        return data


class RawUpload:
    """`PUT /uploads/<filename>` with the file as the body (curl -T) and metadata in the query."""

    envelope_allowance = 0

    def __init__(self, request: Request, filename: str, metadata: dict) -> None:
        self.request = request
        self.filename = filename
        self.metadata = dict(metadata)
        self.declared_length = request.content_length
        self.client_address = request.remote_addr

    def receive(self, store: Callable[[FilePart], StagedFile]) -> ReceivedUpload:
        self.header_digest = _digest_from_header(self.request)
        _allow_large_body(self.request)
        content_type = self.request.headers.get("Content-Type")
        staged = store(FilePart(self.filename, content_type, self._chunks()))
        return ReceivedUpload(
            staged=staged,
            filename=self.filename,
            content_type=content_type,
            expected_sha256=_combine_digests(self.metadata, self.header_digest),
            **self.metadata,
        )

    def _chunks(self) -> Iterator[bytes]:
        stream = RequestBody(self.request)
        received = 0
        while chunk := read_block(stream, 1024 * 1024):
            received += len(chunk)
            yield chunk
        # The server may end the stream early when the client hangs up; that is no file.
        if self.declared_length is not None and received < self.declared_length:
            raise Malformed(f"The body ended after {received} of {self.declared_length} bytes.")
