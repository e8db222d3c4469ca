"""Marshmallow schemas: request shapes (create, update, query) and response shapes, kept apart."""
