"""Base classes for the API's resources: documentation defaults and authentication."""

from __future__ import annotations

from flask import Response, current_app
from flask_apispec import MethodResource, doc

from app.api.security import login_required
from app.extensions import limiter


def no_content() -> Response:
    """The empty 204 answer of a successful delete or logout (no body, so no Content-Type)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def credential_rate_limit(view):
    """Rate-limit a view method that takes passwords; the limit is read from config per request."""
    return limiter.limit(lambda: current_app.config["AUTH_RATE_LIMIT"])(view)


class PublicResource(MethodResource):
    """A resource anyone may call."""

    # Resources hold nothing but their (singleton) services, so one instance per app serves
    # every request (see app.register_injector). Not Flask's `init_every_request`: Flask
    # would build that instance in as_view, before the injector exists.
    shared_instance = True


@doc(security=[{"bearerAuth": []}])
class AuthenticatedResource(MethodResource):
    """A resource that requires a valid bearer token on every method.

    The check wraps dispatch rather than using the `decorators` class attribute, because
    Flask-Injector cannot rebuild a class-based view whose `as_view` result was decorated.
    """

    shared_instance = True  # as for PublicResource

    def dispatch_request(self, *args, **kwargs):
        return login_required(super().dispatch_request)(*args, **kwargs)
