"""The deployment files, read without Docker: docker-compose.yml names the services, ports,
healthchecks and volumes a user relies on; the Dockerfile builds a slim, non-root gunicorn
image; the proxy template streams uploads under the same size limit as the app."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from gunicorn.config import Config as GunicornConfig

from app.api.upload_sources import MultipartUpload
from app.config import ProductionConfig

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {"proxy", "app", "db", "redis", "storage"}
ONE_SHOT = {"migrate"}
# The slack docker-compose.yml adds to MAX_UPLOAD_BYTES for nginx's body limit.
BODY_SLACK = 1048576


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_compose_has_the_deployments_services(services):
    assert set(services) == SERVERS | ONE_SHOT
    assert services["app"]["build"] == "."
    assert services["storage"]["image"].startswith("minio/minio:")
    assert services["proxy"]["image"].startswith("nginx:")
    assert services["db"]["image"].startswith("postgres:")


def test_only_the_proxy_publishes_a_port(services):
    published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
    assert published == {"proxy": ["${HTTP_PORT:-8080}:80"]}


def test_every_server_has_a_healthcheck_and_dependencies_wait_on_health(services):
    for name in SERVERS:
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready -h 127.0.0.1" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["app"]["healthcheck"]["test"])
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
    assert env["S3_ENDPOINT_URL"] == "${S3_ENDPOINT_URL-http://storage:9000}"
    assert env["RATELIMIT_STORAGE_URI"] == "${RATELIMIT_STORAGE_URI:-redis://redis:6379/0}"
    assert env["DATABASE_URL"].startswith("${DATABASE_URL:-postgresql+psycopg://depot:")
    assert env["PROXY_COUNT"] == "${PROXY_COUNT:-1}"
    assert services["migrate"]["environment"] == env


def test_every_app_setting_in_compose_can_be_changed_from_env_file(services):
    # A literal value under `environment` would silently win over the same key in .env.
    for name, value in services["app"]["environment"].items():
        if name != "DEPOT_ENV":
            assert re.fullmatch(rf"\$\{{{name}:?-.*\}}", value), name


def test_the_proxy_restarts_with_the_replicas_it_resolved(services):
    assert services["proxy"]["depends_on"]["app"] == {"condition": "service_healthy", "restart": True}


def test_data_lives_in_named_volumes(compose, services):
    assert set(compose["volumes"]) == {"db-data", "storage-data"}
    assert "db-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "storage-data:/data" in services["storage"]["volumes"]


def test_no_secret_is_written_in_the_compose_file(services):
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:?[?-](\$\{[A-Z0-9_]+(:[?-][^}]*)?\}|[^}$]*)\}", value), (name, key)
        assert "SECRET_KEY" not in (svc.get("environment") or {}), name


def test_every_required_compose_variable_is_in_env_example():
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    example = (ROOT / ".env.example").read_text()
    assert required == {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"}
    for name in required | {"SECRET_KEY"}:
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name


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
    assert used == {name for name in proxy["environment"] if name.startswith("DEPOT_")} | {"DEPOT_MAX_BODY_BYTES"}
    assert proxy["volumes"] == ["./deploy/nginx/depot.conf.template:/etc/nginx/templates/default.conf.template:ro"]


def test_the_dockerfile_builds_wheels_then_a_slim_non_root_runtime(dockerfile):
    stages = re.findall(r"^FROM (\S+) AS (\w+)", dockerfile, re.MULTILINE)
    assert [name for _image, name in stages] == ["build", "runtime"]
    assert all(image.endswith("-slim") for image, _ in stages)
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
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    settings: dict = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), settings)  # noqa: S102

    config = GunicornConfig()
    for name in ("bind", "workers", "threads", "worker_class", "timeout", "forwarded_allow_ips", "logger_class"):
        config.set(name, settings[name])
    assert config.bind == ["0.0.0.0:9000"]
    assert (config.workers, config.threads, config.worker_class_str) == (5, 3, "gthread")
    assert settings["accesslog"] == "-" and settings["control_socket_disable"] is True


def test_production_logs_are_json_by_default():
    assert ProductionConfig({}).LOG_FORMAT == "json"
