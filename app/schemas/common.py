"""Building blocks shared by the schemas: strict inputs, text rules and pagination."""

from __future__ import annotations

import re

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

# Control characters and bidi overrides have no place in names and are used to spoof text.
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _require_encodable(value: str) -> None:
    # JSON may carry lone surrogates ("\ud800"), which no database or hash can encode.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode text.") from None


def no_control_characters(value: str) -> None:
    _require_encodable(value)
    if _FORBIDDEN_TEXT.search(value):
        raise ValidationError("Must not contain control or bidirectional-override characters.")


def no_nul(value: str) -> None:
    # Free text may span lines, but NUL is never text (and PostgreSQL refuses it).
    _require_encodable(value)
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


class InputSchema(Schema):
    """A request body: unknown fields are errors, so nobody sets a field they do not own."""

    class Meta:
        unknown = RAISE


def person_name(**kwargs) -> fields.String:
    return fields.String(
        validate=[validate.Length(min=1, max=100), no_control_characters],
        metadata={"description": "Display name.", "example": "Ada Lovelace"},
        **kwargs,
    )


def password_field(**kwargs) -> fields.String:
    return fields.String(
        load_only=True,
        validate=[validate.Length(min=8, max=256), no_nul],
        metadata={"description": "8 to 256 characters.", "format": "password"},
        **kwargs,
    )


def email_field(**kwargs) -> fields.Email:
    return fields.Email(
        validate=[validate.Length(max=254), no_control_characters], metadata={"example": "ada@example.com"}, **kwargs
    )


class StrictBoolean(fields.Boolean):
    """true or false only: marshmallow's Boolean also takes 0, 1, "yes", "off"... which the
    OpenAPI document (type boolean) says are invalid."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class OutputSchema(Schema):
    """A response body: every field is always sent (null where it may be empty), so the
    OpenAPI document marks them all required (app.openapi) and generated clients type them so."""


class PerPageQuery(Schema):
    """`per_page` defaults to 20 and is capped at 100."""

    MAX_PER_PAGE = 100

    per_page = fields.Integer(
        load_default=20,
        validate=validate.Range(min=1),
        metadata={"description": "Items per page; values above 100 are capped to 100."},
    )

    @post_load
    def cap_per_page(self, data, **_kwargs):
        data["per_page"] = min(data["per_page"], self.MAX_PER_PAGE)
        return data


class PageQuery(PerPageQuery):
    """Numbered pages: `page` from 1 (for short listings, such as users)."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))


class CursorQuery(PerPageQuery):
    """Keyset pages: each page gives the `cursor` of the next, so page 10,000 costs what page 1 does."""

    cursor = fields.String(
        validate=[validate.Length(min=1, max=200), no_control_characters],
        metadata={"description": "The `next_cursor` of the previous page; omit it for the first page."},
    )


class PageSchema(OutputSchema):
    """The envelope of a listing in numbered pages."""

    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class CursorPageSchema(OutputSchema):
    """The envelope of a listing in keyset pages."""

    per_page = fields.Integer(required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null at the end."}
    )


class ErrorSchema(Schema):
    """The shape of every error response."""

    status = fields.Integer(required=True)
    error = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", required=True)
    request_id = fields.String()
