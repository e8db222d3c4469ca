"""The OpenAPI 3 document and the Swagger UI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.api import API_PREFIX, API_ROUTES

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
def spec(testapp) -> dict:
    return testapp.get("/api/v1/openapi.json").json


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_openapi_3_with_an_http_bearer_scheme_servers_and_a_licence(spec):
    assert spec["openapi"] == "3.0.3"
    assert spec["info"]["title"] == "Depot API"
    assert spec["info"]["license"]["name"]
    assert spec["servers"] == [{"url": "/", "description": "The server this document is served by."}]
    # Swagger UI's Authorize takes a bare token for an http bearer scheme (no "Bearer " to type).
    assert spec["components"]["securitySchemes"]["bearerAuth"]["type"] == "http"
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {tag["name"] for tag in spec["tags"]} >= {op.get("tags", [None])[0] for _, _, op in operations(spec)}


def test_every_route_is_documented_and_every_operation_has_a_unique_id(spec):
    documented = set(spec["paths"])
    for rule, _endpoint, _resource in API_ROUTES:
        assert API_PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule) in documented, rule
    assert {"/healthz", "/readyz"} <= documented
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids)), ids
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids), ids


def test_the_document_is_the_same_in_every_process():
    """Header parameters come out in one order, whatever a process's string hashing: replicas
    serve one document, and clients generated twice from it are the same."""
    dump = (
        "import json; from app import create_app; from app.config import TestingConfig; "
        "app = create_app(TestingConfig({'DATABASE_URL': 'sqlite://', 'DATA_DIR': '/tmp/depot-openapi-test'})); "
        "print(json.dumps(app.test_client().get('/api/v1/openapi.json').get_json()))"
    )
    documents = {
        subprocess.run(
            [sys.executable, "-c", dump],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parents[2],
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(documents) == 1


def test_the_raw_upload_path_does_not_clash_with_an_uploads_id(spec):
    assert "/api/v1/raw-uploads/{filename}" in spec["paths"]
    assert "/api/v1/uploads/{filename}" not in spec["paths"]  # still served, documented once (README)


def test_public_operations_say_so_and_the_others_need_the_bearer_token(spec):
    public = {"register", "login", "downloadSharedUpload", "describeTusServer", "liveness", "readiness"}
    for path, method, operation in operations(spec):
        if operation["operationId"] in public:
            assert operation["security"] == [], (path, method)
        else:
            assert operation["security"] == [{"bearerAuth": []}], (path, method)
            assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}


def test_every_operation_lists_a_success_and_its_error_statuses_with_the_error_body(spec):
    for path, method, operation in operations(spec):
        statuses = set(operation["responses"])
        assert any(s.startswith("2") for s in statuses), (path, method)
        assert "default" not in statuses
        if operation["operationId"] not in {"liveness", "describeTusServer"}:  # neither reaches the database
            assert "503" in statuses, (path, method)
    responses = spec["components"]["responses"]
    assert responses["NotFound"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(spec["components"]["schemas"]["Error"]["required"]) == {"status", "error", "message", "fields"}

    def errors(path, method):
        return {s for s in spec["paths"][path][method]["responses"] if s[0] in "45"}

    assert errors("/api/v1/auth/register", "post") == {"400", "403", "409", "413", "415", "422", "429", "503"}
    assert errors("/api/v1/uploads/{upload_id}", "get") == {"401", "404", "503"}
    assert errors("/api/v1/users/{user_id}", "delete") == {"401", "403", "404", "409", "503"}
    assert {"408", "413", "415", "422", "429"} <= errors("/api/v1/uploads", "post")
    assert {"409", "410", "412", "423", "460"} <= errors("/api/v1/tus/{upload_id}", "patch")


def test_bodies_are_json_multipart_with_the_file_or_raw_bytes(spec):
    register = spec["paths"]["/api/v1/auth/register"]["post"]["requestBody"]
    assert register == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Register"}}},
    }
    assert set(spec["components"]["schemas"]["Register"]["required"]) == {"email", "password", "name"}

    multipart = spec["paths"]["/api/v1/uploads"]["post"]["requestBody"]
    form = multipart["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] is True
    fields = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
    assert fields["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "The file (exactly one part).",
    }
    assert fields["required"] == ["file"]
    assert {"description", "visibility", "tags", "sha256"} <= set(fields["properties"])

    raw = spec["paths"]["/api/v1/raw-uploads/{filename}"]["put"]
    assert raw["requestBody"]["content"] == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    for operation in (spec["paths"]["/api/v1/uploads"]["post"], raw):
        assert "Content-Digest" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Location" in operation["responses"]["201"]["headers"]


def test_response_schemas_mark_every_field_sent_as_required_and_keep_enums(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["Upload"]["required"]) == set(schemas["Upload"]["properties"])
    assert schemas["Upload"]["properties"]["visibility"]["enum"] == ["private", "public"]
    assert schemas["Upload"]["properties"]["description"]["nullable"] is True
    assert "token" in schemas["CreatedApiToken"]["required"]  # the secret, shown once
    assert schemas["User"]["properties"]["roles"]["items"]["enum"]
    me = spec["paths"]["/api/v1/users/me"]["get"]["responses"]["200"]
    assert me["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}


def test_ids_in_bodies_are_uuids_like_the_path_parameters_they_are_passed_to(spec):
    # A generated client types an id it reads (upload.id) as what it passes (upload_id: UUID).
    schemas = spec["components"]["schemas"]
    for schema, field in [("Upload", "id"), ("Upload", "owner_id"), ("User", "id"), ("ApiToken", "id")]:
        assert schemas[schema]["properties"][field] == {"type": "string", "format": "uuid", "readOnly": True}
    download = spec["paths"]["/api/v1/uploads/{upload_id}/content"]["get"]["parameters"]
    assert {"type": "string", "format": "uuid"} in [p["schema"] for p in download if p["name"] == "upload_id"]


def test_downloads_document_ranges_and_conditions_both_ways(spec):
    download = spec["paths"]["/api/v1/uploads/{upload_id}/content"]["get"]
    assert {"200", "206", "304", "412", "416"} <= set(download["responses"])
    headers = {p["name"] for p in download["parameters"] if p["in"] == "header"}
    assert {"Range", "If-Range", "If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since"} <= headers
    assert download["responses"]["200"]["content"] == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    assert {"ETag", "Content-Disposition", "Last-Modified"} <= set(download["responses"]["200"]["headers"])
    assert "Content-Range" in download["responses"]["206"]["headers"]
    assert "Content-Range" in download["responses"]["416"]["headers"]


def test_pagination_parameters_carry_their_bounds(spec):
    listing = {p["name"]: p for p in spec["paths"]["/api/v1/uploads"]["get"]["parameters"]}
    assert listing["per_page"]["schema"]["minimum"] == 1
    assert listing["cursor"]["schema"]["maxLength"] == 200
    users = {p["name"]: p for p in spec["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert users["page"]["schema"]["minimum"] == 1


def test_tus_endpoints_document_their_headers(spec):
    create = spec["paths"]["/api/v1/tus"]["post"]
    assert {"Tus-Resumable", "Upload-Length", "Upload-Metadata"} <= {p["name"] for p in create["parameters"]}
    assert create["requestBody"]["required"] is False
    assert {"Location", "Upload-Offset"} <= set(create["responses"]["201"]["headers"])
    head = spec["paths"]["/api/v1/tus/{upload_id}"]["head"]
    assert "Upload-Offset" in head["responses"]["200"]["headers"]
    assert "options" in spec["paths"]["/api/v1/tus"] and "options" not in spec["paths"]["/api/v1/tus/{upload_id}"]


def test_the_swagger_ui_page_and_its_assets_load(testapp):
    page = testapp.get("/api/v1/docs/")

    assert "swagger-ui-bundle.js" in page.text
    assert "/api/v1/openapi.json" in page.text
    testapp.get("/flask-apispec/static/swagger-ui-bundle.js", status=200)
