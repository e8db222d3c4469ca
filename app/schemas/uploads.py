"""Upload schemas: metadata sent with a file, listing queries, updates, links and output."""

from __future__ import annotations

from datetime import UTC

from flask import url_for
from marshmallow import fields, pre_load, validate

from app.models.upload import Visibility
from app.schemas.common import (
    CursorPageSchema,
    CursorQuery,
    InputSchema,
    OutputSchema,
    no_control_characters,
    no_nul,
)

MAX_TAGS = 20


class UTCDateTimeField(fields.AwareDateTime):
    """An ISO 8601 time with a zone, converted to UTC; times UTC cannot hold are invalid."""

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


TAG = fields.String(
    validate=[
        validate.Regexp(r"^[\w.-]{1,50}$", error="A tag is 1 to 50 letters, digits, '_', '.' or '-'."),
        no_control_characters,
    ]
)
VISIBILITIES = [v.value for v in Visibility]


def _tags_field(**kwargs) -> fields.List:
    return fields.List(
        TAG,
        validate=validate.Length(max=MAX_TAGS),
        metadata={"description": f"Up to {MAX_TAGS} tags of letters, digits, '_', '.', '-'."},
        **kwargs,
    )


class UploadMetadataSchema(InputSchema):
    """Metadata sent with a file: multipart form fields, or query parameters of a raw PUT."""

    description = fields.String(validate=[validate.Length(max=2000), no_nul], load_default=None)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES), load_default=Visibility.PRIVATE.value)
    tags = _tags_field(load_default=list)
    sha256 = fields.String(
        validate=validate.Regexp(r"^[0-9a-fA-F]{64}$"),
        load_default=None,
        metadata={"description": "Hex SHA-256 of the file; the upload fails with 422 if it differs."},
    )

    @pre_load
    def split_comma_separated_tags(self, data, **_kwargs):
        # Forms send tags as repeated fields or as one comma-separated field; accept both.
        tags = data.get("tags")
        if isinstance(tags, list):
            data = {**data, "tags": [t.strip() for tag in tags for t in str(tag).split(",") if t.strip()]}
        return data


class UploadFormSchema(UploadMetadataSchema):
    """The multipart form of an upload as the OpenAPI document shows it: the metadata fields
    and the file. (The form itself is streamed by app.api.upload_sources, which reads the
    metadata with UploadMetadataSchema; this schema only describes it.)"""

    file = fields.Raw(
        required=True, metadata={"type": "string", "format": "binary", "description": "The file (exactly one part)."}
    )


class UploadQuerySchema(CursorQuery):
    owner = fields.UUID(metadata={"description": "Only uploads of this user."})
    content_type = fields.String(validate=[validate.Length(max=127), no_control_characters])
    q = fields.String(
        validate=[validate.Length(min=1, max=200), no_control_characters],
        metadata={"description": "Text in the name or description."},
    )
    tag = TAG
    created_after = UTCDateTimeField(metadata={"description": "ISO 8601 with a time zone."})
    created_before = UTCDateTimeField(metadata={"description": "ISO 8601 with a time zone."})


class UploadUpdateSchema(InputSchema):
    description = fields.String(validate=[validate.Length(max=2000), no_nul], allow_none=True)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))
    tags = _tags_field()


class UploadSchema(OutputSchema):
    """An upload as the API shows it."""

    id = fields.String(dump_only=True, metadata={"format": "uuid"})
    filename = fields.String(dump_only=True)
    content_type = fields.String(dump_only=True)
    size = fields.Integer(dump_only=True)
    sha256 = fields.String(dump_only=True)
    visibility = fields.String(dump_only=True, validate=validate.OneOf(VISIBILITIES))
    description = fields.String(dump_only=True, allow_none=True)
    tags = fields.List(fields.String(), dump_only=True)
    owner_id = fields.String(dump_only=True, metadata={"format": "uuid"})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    # Absolute, like a share link's url: a browser app on another origin can use it as it is.
    download_url = fields.Function(
        lambda upload: url_for("api.upload_content", upload_id=upload.id, _external=True),
        dump_only=True,
        metadata={"type": "string", "format": "uri"},
    )


class UploadPageSchema(CursorPageSchema):
    items = fields.List(fields.Nested(UploadSchema), required=True)


class LinkCreateSchema(InputSchema):
    expires_in = fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Seconds the link stays valid (default 1 hour, capped by the server)."},
    )


class LinkSchema(OutputSchema):
    url = fields.Function(
        lambda link: url_for("api.shared_content", token=link.token, _external=True), metadata={"type": "string"}
    )
    token = fields.String()
    expires_at = fields.DateTime()


class UploadPolicySchema(OutputSchema):
    max_upload_bytes = fields.Integer()
    allowed_extensions = fields.List(fields.String())
    quota_bytes = fields.Integer(allow_none=True)
    used_bytes = fields.Integer()
    remaining_bytes = fields.Integer(allow_none=True)
