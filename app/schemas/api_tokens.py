"""Personal API token schemas: create request, listing output and the one-time secret."""

from __future__ import annotations

from marshmallow import fields, validate

from app.models.user import ROLE_NAMES
from app.schemas.common import InputSchema, OutputSchema, no_control_characters
from app.schemas.users import roles_field


class ApiTokenCreateSchema(InputSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), no_control_characters])
    expires_in_days = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=3650),
        metadata={"description": "Days until the token expires; omit for a token that does not expire."},
    )
    roles = roles_field("A subset of your roles; default: all of them.")


class ApiTokenSchema(OutputSchema):
    """A token as listed: never its secret."""

    id = fields.String(dump_only=True, metadata={"format": "uuid"})
    name = fields.String(dump_only=True)
    roles = fields.List(fields.String(validate=validate.OneOf(ROLE_NAMES)), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True, allow_none=True)
    last_used_at = fields.DateTime(dump_only=True, allow_none=True)


class CreatedApiTokenSchema(ApiTokenSchema):
    """A new token with its secret, shown this once."""

    token = fields.String(
        attribute="secret", dump_only=True, metadata={"description": "The secret; it is not shown again."}
    )
