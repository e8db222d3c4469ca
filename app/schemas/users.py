"""User schemas: registration, admin create/update, self update, queries and output."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.models.user import ROLE_NAMES
from app.schemas.common import (
    InputSchema,
    OutputSchema,
    PageQuery,
    PageSchema,
    StrictBoolean,
    email_field,
    no_nul,
    password_field,
    person_name,
)


def roles_field(description: str = "", **kwargs) -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(ROLE_NAMES)),
        validate=validate.Length(min=1, max=len(ROLE_NAMES)),
        metadata={"description": f"{description} Any of: {', '.join(ROLE_NAMES)}.".strip()},
        **kwargs,
    )


class UserSchema(OutputSchema):
    """A user as the API shows it; never the password hash."""

    id = fields.String(dump_only=True, metadata={"format": "uuid"})
    email = fields.Email(dump_only=True)
    name = fields.String(dump_only=True)
    roles = fields.List(fields.String(validate=validate.OneOf(ROLE_NAMES)), dump_only=True)
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class UserPageSchema(PageSchema):
    items = fields.List(fields.Nested(UserSchema), required=True)


class RegisterSchema(InputSchema):
    email = email_field(required=True)
    password = password_field(required=True)
    name = person_name(required=True)


class UserCreateSchema(RegisterSchema):
    """What an admin sends to create a user; roles default to `user`."""

    roles = roles_field(load_default=lambda: ["user"])


class SelfUpdateSchema(InputSchema):
    """What a user may change about themselves: name and password, nothing else."""

    name = person_name()
    password = password_field()
    current_password = fields.String(load_only=True, validate=[validate.Length(max=256), no_nul])

    @validates_schema
    def password_needs_current(self, data, **_kwargs):
        if "password" in data and "current_password" not in data:
            raise ValidationError("Required to change the password.", field_name="current_password")


class AdminUserUpdateSchema(InputSchema):
    """What an admin may change about a user."""

    name = person_name()
    roles = roles_field()
    active = StrictBoolean()


class UserQuerySchema(PageQuery):
    pass
