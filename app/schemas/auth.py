"""Login request and token response schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from app.schemas.common import InputSchema, OutputSchema, no_control_characters, no_nul
from app.schemas.users import UserSchema


class TokenRequestSchema(InputSchema):
    email = fields.String(required=True, validate=[validate.Length(min=1, max=254), no_control_characters])
    password = fields.String(required=True, load_only=True, validate=[validate.Length(min=1, max=256), no_nul])


class TokenSchema(OutputSchema):
    """A session token: send it as `Authorization: Bearer <access_token>`."""

    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds until the token expires."})
    user = fields.Nested(UserSchema, required=True)
