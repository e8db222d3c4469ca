"""The OpenAPI document and the Swagger UI."""

from __future__ import annotations

import re

from app.api import API_PREFIX, API_ROUTES


def test_the_spec_lists_every_endpoint_with_bearer_security(testapp):
    spec = testapp.get("/api/v1/openapi.json").json

    assert spec["info"]["title"] == "Depot API"
    assert spec["securityDefinitions"]["bearerAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "A session or API token, sent as `Bearer <token>`.",
    }
    documented = set(spec["paths"])
    for rule, _endpoint, _resource in API_ROUTES:
        path = API_PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
        assert path in documented, path
    assert {"/healthz", "/readyz"} <= documented


def test_the_spec_documents_schemas_and_security_per_operation(testapp):
    spec = testapp.get("/api/v1/openapi.json").json

    me = spec["paths"]["/api/v1/users/me"]
    assert me["get"]["security"] == [{"bearerAuth": []}]
    assert me["get"]["responses"]["200"]["schema"] == {"$ref": "#/definitions/User"}
    register = spec["paths"]["/api/v1/auth/register"]["post"]
    assert "security" not in register
    body = next(p for p in register["parameters"] if p["in"] == "body")
    assert body["schema"] == {"$ref": "#/definitions/Register"}
    assert set(spec["definitions"]["Register"]["required"]) == {"email", "password", "name"}
    assert register["summary"].startswith("Create an account")


def test_the_swagger_ui_page_and_its_assets_load(testapp):
    page = testapp.get("/api/v1/docs/")

    assert "swagger-ui-bundle.js" in page.text
    assert "/api/v1/openapi.json" in page.text
    testapp.get("/flask-apispec/static/swagger-ui-bundle.js", status=200)
