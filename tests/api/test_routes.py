"""Routing over the whole URL map: an id that is not an id is a JSON 404 on every route and
method that takes one, a trailing slash is a JSON 404 naming the route without it, and a
method a path does not have is a JSON 405 with Allow. Every case is generated from the app's
URL map, so a new route is covered without touching this file."""

from __future__ import annotations

import re
import tempfile
import uuid

import pytest
from flask_migrate import upgrade
from webtest import TestApp
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import Map, Rule, UUIDConverter

from app import create_app
from app.api import FallbackConverter
from app.config import TestingConfig
from app.extensions import db
from app.services.users import UserService
from tests.helpers import PASSWORD, bearer, png_bytes

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Values for the path arguments that are not ids.
PLAIN_VALUES = {"filename": "notes.txt", "token": "abc.def"}


def _app_rules() -> tuple[list[Rule], list[Rule], object]:
    """The rules of an app built with the testing config (all of them, and those of real
    resources rather than 404-only fallbacks), and a URL adapter on its map."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(TestingConfig({"DATA_DIR": folder}))
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    resources = [rule for rule in rules if not getattr(app.view_functions[rule.endpoint], "only_answers_404", False)]
    return rules, resources, app.url_map.bind("localhost")


RULES, RESOURCE_RULES, ADAPTER = _app_rules()


@pytest.fixture(scope="module")
def admin_client(tmp_path_factory) -> tuple[TestApp, dict[str, str]]:
    """One migrated app for the whole module (its cases change nothing), and an admin's headers."""
    folder = tmp_path_factory.mktemp("routes")
    app = create_app(TestingConfig({"DATA_DIR": str(folder), "DATABASE_URL": f"sqlite:///{folder}/depot.sqlite3"}))
    with app.app_context():
        upgrade()
        app.injector.get(UserService).create_account("root@example.com", PASSWORD, "Root", ["admin"])
    client = TestApp(app)
    token = client.post_json("/api/v1/auth/token", {"email": "root@example.com", "password": PASSWORD}).json
    yield client, bearer(token["access_token"])
    with app.app_context():
        db.engine.dispose()


def path_of(rule: Rule, id_value: str | None = None) -> str:
    """`rule` with an example value for each argument: `id_value` (default a fresh UUID) for ids."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if isinstance(rule._converters[name], UUIDConverter):
            return id_value or str(uuid.uuid4())
        return PLAIN_VALUES.get(name, "x")

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", value, rule.rule)


def cases(rules, condition) -> list:
    return [
        pytest.param(rule, method, id=f"{method} {rule.rule}")
        for rule in rules
        if condition(rule)
        for method in sorted(rule.methods & set(METHODS))
    ]


def takes_an_id(rule: Rule) -> bool:
    return any(isinstance(converter, UUIDConverter) for converter in rule._converters.values())


def assert_json_error(response, status: int, method: str) -> None:
    assert response.status_int == status
    assert response.content_type == "application/json"
    if method != "HEAD":
        assert response.json["status"] == status


@pytest.mark.parametrize(("rule", "method"), cases(RULES, takes_an_id))
def test_an_id_that_is_not_a_uuid_is_a_json_404_on_every_route_and_method(admin_client, rule, method):
    testapp, admin_headers = admin_client

    response = testapp.request(path_of(rule, "not-a-uuid"), method=method, headers=admin_headers, expect_errors=True)

    assert_json_error(response, 404, method)
    if method != "HEAD":
        assert response.json["error"] == "not_found"


@pytest.mark.parametrize(("rule", "method"), cases(RULES, takes_an_id))
def test_an_invalid_id_is_404_without_credentials_too(admin_client, rule, method):
    testapp, _headers = admin_client

    response = testapp.request(path_of(rule, "not-a-uuid"), method=method, expect_errors=True)

    assert_json_error(response, 404, method)


@pytest.mark.parametrize(
    ("rule", "method"), cases(RESOURCE_RULES, lambda rule: not rule.rule.endswith("/") and "<path:" not in rule.rule)
)
def test_a_trailing_slash_is_a_json_404_that_names_the_route_without_it(admin_client, rule, method):
    testapp, admin_headers = admin_client
    path = path_of(rule)

    response = testapp.request(f"{path}/", method=method, headers=admin_headers, expect_errors=True)

    assert_json_error(response, 404, method)
    if method != "HEAD":
        assert response.json["message"] == f"No such route; did you mean {path}?"


def test_a_trailing_slash_on_an_unknown_path_suggests_nothing(admin_client):
    testapp, _headers = admin_client

    response = testapp.get("/api/v1/nothing-here/", status=404)

    assert "did you mean" not in response.json["message"]


def test_a_trailing_slash_after_an_invalid_id_suggests_nothing(admin_client):
    testapp, admin_headers = admin_client

    response = testapp.get("/api/v1/uploads/not-a-uuid/", headers=admin_headers, status=404)

    assert "did you mean" not in response.json["message"]


def _allowed(path: str) -> set[str]:
    try:
        ADAPTER.match(path, method="TRACE")
    except MethodNotAllowed as error:
        return set(error.valid_methods)
    raise AssertionError(f"{path} answers TRACE")


@pytest.mark.parametrize(
    ("rule", "method"),
    [
        pytest.param(rule, method, id=f"{method} {rule.rule}")
        for rule in RULES
        for method in sorted(set(METHODS) - _allowed(path_of(rule)))
    ],
)
def test_a_method_the_path_does_not_have_is_a_json_405_with_allow(admin_client, rule, method):
    testapp, admin_headers = admin_client
    path = path_of(rule)

    response = testapp.request(path, method=method, headers=admin_headers, expect_errors=True)

    assert_json_error(response, 405, method)
    assert set(response.headers["Allow"].split(", ")) == _allowed(path)


def test_raw_uploads_keep_their_route_even_when_the_name_looks_like_an_id(testapp, uploader_headers):
    headers = {**uploader_headers, "Content-Type": "image/png"}
    for name in ("picture.png", f"{uuid.uuid4()}.png", "policy.png"):
        created = testapp.put(f"/api/v1/uploads/{name}", png_bytes(), headers=headers, status=201)

        assert created.json["filename"] == name
        testapp.get(created.headers["Location"], headers=uploader_headers, status=200)


def test_the_upload_policy_is_not_taken_for_an_id(testapp, uploader_headers):
    policy = testapp.get("/api/v1/uploads/policy", headers=uploader_headers, status=200)

    assert "max_upload_bytes" in policy.json


def test_the_fallback_converter_is_tried_after_the_others_whatever_the_order_of_the_rules():
    # Werkzeug orders the rules of one place by their converters' weight before their order.
    rules = [
        Rule("/u/<fallback:name>", endpoint="fallback", methods=["GET"]),
        Rule("/u/<uuid:upload_id>", endpoint="detail", methods=["GET"]),
    ]
    for ordered in (rules, rules[::-1]):
        adapter = Map([rule.empty() for rule in ordered], converters={"fallback": FallbackConverter}).bind("x")

        assert adapter.match(f"/u/{uuid.uuid4()}")[0] == "detail"
        assert adapter.match("/u/not-a-uuid")[0] == "fallback"
