"""Upload endpoints: store (multipart or raw), list, read, change, delete, download, share."""

from __future__ import annotations

from uuid import UUID

from flask import current_app, request, url_for
from flask_apispec import doc, marshal_with, use_kwargs
from injector import inject

from app.api.bodies_in_flight import upload_in_flight
from app.api.downloads import DOWNLOAD_PARAMS, DOWNLOAD_RESPONSES, file_response
from app.api.resources import AuthenticatedResource, PublicResource, no_content
from app.api.security import current_principal
from app.api.upload_sources import MultipartUpload, RawUpload
from app.openapi.describe import LOCATION, binary_body, operation, request_header
from app.schemas.uploads import (
    LinkCreateSchema,
    LinkSchema,
    UploadFormSchema,
    UploadMetadataSchema,
    UploadPageSchema,
    UploadPolicySchema,
    UploadQuerySchema,
    UploadSchema,
    UploadUpdateSchema,
)
from app.services.uploads import UploadService

METADATA = UploadMetadataSchema()
# What every way of storing a file documents beside its body.
CONTENT_DIGEST = {
    "Content-Digest": request_header(
        "RFC 9530 digest of the file, `sha-256=:<base64>:`; the upload fails with 422 if the file differs."
    )
}
CREATED = {201: {"headers": {"Location": LOCATION}}}
# Refusals of a file: not allowed (role), too slow (408), too large or over quota (413), not
# the type its name says (415), invalid metadata or digest (422), too many at once (429).
STORING_ERRORS = (403, 408, 413, 415, 422, 429)


class _UploadResource(AuthenticatedResource):
    @inject
    def __init__(self, uploads: UploadService) -> None:
        self.uploads = uploads


def _created(upload):
    return upload, 201, {"Location": url_for("api.upload_detail", upload_id=upload.id, _external=True)}


@doc(tags=["uploads"])
class UploadList(_UploadResource):
    @operation("listUploads", 403)
    @use_kwargs(UploadQuerySchema(), location="query")
    @marshal_with(UploadPageSchema(), code=200)
    def get(self, owner: UUID | None = None, **query):
        """List the uploads you may see, newest first, a page at a time (follow `next_cursor`)."""
        return self.uploads.list_visible(current_principal(), owner=str(owner) if owner else None, **query)

    # Documented only: the form is streamed by MultipartUpload, never parsed whole by webargs.
    @operation("createUpload", *STORING_ERRORS, params=CONTENT_DIGEST, responses=CREATED)
    @use_kwargs(UploadFormSchema(), location="form", apply=False)
    @marshal_with(UploadSchema(), code=201)
    def post(self):
        """Upload a file with metadata as multipart/form-data (role uploader or admin)."""
        # A stopping worker ends its body, as does a client that stops sending (bodies_in_flight.py).
        with upload_in_flight(request, current_app.config["BODY_IDLE_TIMEOUT_SECONDS"]):
            return _created(self.uploads.create(current_principal(), MultipartUpload(request, METADATA)))


@doc(tags=["uploads"])
class UploadRaw(_UploadResource):
    @operation(
        "createRawUpload",
        *STORING_ERRORS,
        params=CONTENT_DIGEST,
        requestBody=binary_body("application/octet-stream", "The file; send its own Content-Type if it has one."),
        # Metadata in the query can make the request line longer than the server reads: its
        # own plain-text refusal. (Long metadata goes in a multipart form instead.)
        responses={**CREATED, 414: {"description": "URI Too Long: the metadata makes the URL too long."}},
    )
    @use_kwargs(UploadMetadataSchema(), location="query")
    @marshal_with(UploadSchema(), code=201)
    def put(self, filename: str, **metadata):
        """Upload the request body as a file named `filename` (curl -T); metadata in the query."""
        with upload_in_flight(request, current_app.config["BODY_IDLE_TIMEOUT_SECONDS"]):
            return _created(self.uploads.create(current_principal(), RawUpload(request, filename, metadata)))


@doc(tags=["uploads"])
class UploadPolicy(_UploadResource):
    @operation("getUploadPolicy")
    @marshal_with(UploadPolicySchema(), code=200)
    def get(self):
        """The limits for your next upload: size, extensions and remaining quota."""
        return self.uploads.policy(current_principal())


@doc(tags=["uploads"])
class UploadDetail(_UploadResource):
    @operation("getUpload")
    @marshal_with(UploadSchema(), code=200)
    def get(self, upload_id: UUID):
        """Read an upload's metadata."""
        return self.uploads.get(current_principal(), str(upload_id))

    @operation("updateUpload", 403)
    @use_kwargs(UploadUpdateSchema(), location="json")
    @marshal_with(UploadSchema(), code=200)
    def patch(self, upload_id: UUID, **changes):
        """Change description, visibility or tags (owner or admin)."""
        return self.uploads.update(current_principal(), str(upload_id), **changes)

    @operation("deleteUpload", 403)
    @marshal_with(None, code=204)
    def delete(self, upload_id: UUID):
        """Delete an upload; its file is removed once the deletion has committed (owner or admin)."""
        self.uploads.delete(current_principal(), str(upload_id))
        return no_content()


@doc(tags=["uploads"])
class UploadContent(_UploadResource):
    @operation("downloadUpload", 412, params=DOWNLOAD_PARAMS, responses=DOWNLOAD_RESPONSES)
    def get(self, upload_id: UUID):
        """Download the file (supports Range and If-None-Match)."""
        return file_response(self.uploads.open_content(current_principal(), str(upload_id)))


@doc(tags=["uploads"])
class UploadLinks(_UploadResource):
    @operation("createShareLink", 403)
    @use_kwargs(LinkCreateSchema(), location="json")
    @marshal_with(LinkSchema(), code=201)
    def post(self, upload_id: UUID, expires_in: int | None = None):
        """Create a signed, expiring download link that needs no Authorization header (owner or admin)."""
        return self.uploads.create_link(current_principal(), str(upload_id), expires_in), 201

    @operation("revokeShareLinks", 403)
    @marshal_with(None, code=204)
    def delete(self, upload_id: UUID):
        """Revoke every link issued so far for this upload (owner or admin)."""
        self.uploads.revoke_links(current_principal(), str(upload_id))
        return no_content()


@doc(tags=["uploads"])
class SharedContent(PublicResource):
    @inject
    def __init__(self, uploads: UploadService) -> None:
        self.uploads = uploads

    @operation("downloadSharedUpload", 404, 412, params=DOWNLOAD_PARAMS, responses=DOWNLOAD_RESPONSES)
    def get(self, token: str):
        """Download a file through a signed link (no Authorization header)."""
        return file_response(self.uploads.open_shared(token))
