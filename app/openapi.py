"""The OpenAPI document and Swagger UI (flask-apispec), adapted to injected resources.

flask-apispec instantiates each resource class to read its annotations; ours take their
services through `@inject` constructors and cannot be built without the injector, so the
converter gets an instance whose constructor has not run (the annotations live on the class
and its methods, which is all the converter reads). The other trap, Flask-Injector breaking
the Swagger UI template's `url_for`, is undone in `app.register_injector`.
"""

from __future__ import annotations

import flask
from flask_apispec import FlaskApiSpec
from flask_apispec.apidoc import ResourceConverter


class InjectedResourceConverter(ResourceConverter):
    def get_parent(self, resource, **kwargs):
        return resource.__new__(resource) if isinstance(resource, type) else resource


class DepotApiSpec(FlaskApiSpec):
    """FlaskApiSpec for resources whose constructors are called by the injector."""

    def init_app(self, app: flask.Flask) -> None:
        super().init_app(app)  # runs no registrations: they are made after this, per app
        self.resource_converter = InjectedResourceConverter(app, self.spec, self.document_options)
