"""Probe responses."""

from __future__ import annotations

from marshmallow import fields

from app.schemas.common import OutputSchema


class HealthSchema(OutputSchema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(HealthSchema):
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
