"""Resumable (tus) upload schemas: the metadata of a creation request, and an upload's status.

tus clients send metadata of their own beside ours (Uppy: `name`, `type`, `relativePath`),
so unknown keys are ignored here, unlike in Depot's other request schemas. `filename`
(or Uppy's `name`) is required; the type is `filetype` (tus-js-client, Uppy) or `type`.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.models.upload import Visibility
from app.schemas.common import OutputSchema, no_control_characters, no_nul
from app.schemas.uploads import MAX_TAGS, TAG, VISIBILITIES, UploadSchema


class ResumableMetadataSchema(Schema):
    """The keys of `Upload-Metadata` that Depot reads."""

    class Meta:
        unknown = EXCLUDE

    filename = fields.String(validate=validate.Length(min=1, max=1024), load_default=None)
    name = fields.String(validate=validate.Length(min=1, max=1024), load_default=None)
    filetype = fields.String(validate=[validate.Length(max=127), no_control_characters], load_default=None)
    type = fields.String(validate=[validate.Length(max=127), no_control_characters], load_default=None)
    description = fields.String(validate=[validate.Length(max=2000), no_nul], load_default=None)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES), load_default=Visibility.PRIVATE.value)
    tags = fields.List(TAG, validate=validate.Length(max=MAX_TAGS), load_default=list)
    sha256 = fields.String(validate=validate.Regexp(r"^[0-9a-fA-F]{64}$"), load_default=None)

    @pre_load
    def split_tags(self, data, **_kwargs):
        tags = data.get("tags")
        if isinstance(tags, str):
            data = {**data, "tags": [t.strip() for t in tags.split(",") if t.strip()]}
        return data

    @validates_schema
    def needs_a_name(self, data, **_kwargs):
        if not (data.get("filename") or data.get("name")):
            raise ValidationError("Upload-Metadata must carry the file's name: filename.", field_name="filename")


class ResumableStatusSchema(OutputSchema):
    """`GET /tus/<id>`: how far an upload has come, and the upload it became once finished."""

    id = fields.String(required=True)
    offset = fields.Integer(required=True)
    length = fields.Integer(required=True)
    expires_at = fields.DateTime(required=True)
    upload = fields.Nested(UploadSchema, allow_none=True, required=True)
