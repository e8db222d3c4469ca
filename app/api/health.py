"""Liveness and readiness probes, outside /api/v1 and without authentication."""

from __future__ import annotations

from flask_apispec import doc, marshal_with
from injector import inject

from app.api.resources import PublicResource
from app.openapi.describe import operation
from app.schemas.health import HealthSchema, ReadinessSchema
from app.services.health import HealthService


@doc(tags=["health"])
class Liveness(PublicResource):
    @operation("liveness", database=False)
    @marshal_with(HealthSchema(), code=200)
    def get(self):
        """The process is up."""
        return {"status": "ok"}


@doc(tags=["health"])
class Readiness(PublicResource):
    @inject
    def __init__(self, health: HealthService) -> None:
        self.health = health

    @operation("readiness")
    @marshal_with(ReadinessSchema(), code=200)
    @marshal_with(ReadinessSchema(), code=503, description="A dependency does not answer; `checks` names it.")
    def get(self):
        """Every dependency answers (503 naming the one that does not)."""
        return {"status": "ok", "checks": self.health.readiness()}
