"""Depot's OpenAPI 3 document: `document` builds and serves it, `converter` writes each
operation from a resource's annotations, `describe` is what controllers annotate with."""

from app.openapi.document import DepotApiSpec

__all__ = ["DepotApiSpec"]
