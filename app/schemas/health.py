"""Probe responses."""

from __future__ import annotations

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(HealthSchema):
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
