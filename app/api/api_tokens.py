"""Personal API token endpoints under /users/me/tokens."""

from __future__ import annotations

from uuid import UUID

from flask_apispec import doc, marshal_with, use_kwargs
from injector import inject

from app.api.resources import AuthenticatedResource, credential_rate_limit, no_content
from app.api.security import current_principal
from app.openapi.describe import operation
from app.schemas.api_tokens import ApiTokenCreateSchema, ApiTokenSchema, CreatedApiTokenSchema
from app.services.api_tokens import ApiTokenService


class _TokenResource(AuthenticatedResource):
    @inject
    def __init__(self, tokens: ApiTokenService) -> None:
        self.tokens = tokens


@doc(tags=["api tokens"])
class ApiTokenList(_TokenResource):
    @operation("listApiTokens")
    @marshal_with(ApiTokenSchema(many=True), code=200)
    def get(self):
        """List your API tokens (secrets are never shown again)."""
        return self.tokens.list_own(current_principal())

    @operation("createApiToken", 403, 429)
    @credential_rate_limit
    @use_kwargs(ApiTokenCreateSchema(), location="json")
    @marshal_with(CreatedApiTokenSchema(), code=201)
    def post(self, **fields):
        """Create an API token; the secret is in this response only."""
        return self.tokens.create(current_principal(), **fields), 201


@doc(tags=["api tokens"])
class ApiTokenDetail(_TokenResource):
    @operation("revokeApiToken")
    @marshal_with(None, code=204)
    def delete(self, token_id: UUID):
        """Revoke one of your API tokens."""
        self.tokens.revoke(current_principal(), str(token_id))
        return no_content()
