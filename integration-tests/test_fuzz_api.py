"""Property-based fuzzing of Depot's own OpenAPI document with schemathesis, over real HTTP
against gunicorn on PostgreSQL, as an admin, an uploader and a plain user: no 5xx, and no
response that breaks the documented schema, status codes or content types.

This is the bounded run of ./run_tests.sh (a fixed seed, so a failure reproduces). A longer
run, with more cases and a random seed, is the same test with two variables (README):
`DEPOT_FUZZ_EXAMPLES=200 DEPOT_FUZZ_SEED= ./run_tests.sh integration-tests/test_fuzz_api.py`. Settings and the two
documented check adjustments are in integration-tests/schemathesis.toml. Logout routes are
left out: they would revoke the very token the run authenticates with.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, running_depot
from processes import BIN, ROOT, temporary_database

CONFIG = ROOT / "integration-tests" / "schemathesis.toml"
HOOKS_DIR = ROOT / "integration-tests"  # schemathesis_hooks.py: strategies for tus bodies
MAX_EXAMPLES = int(os.environ.get("DEPOT_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("DEPOT_FUZZ_SEED", "20261121")
pytestmark = pytest.mark.robustness("fuzzing")


def fuzz(base_url: str, token: str, objects: dict[str, str], max_examples: int = MAX_EXAMPLES, seed: str | None = SEED):
    """Run schemathesis once; (exit code, output, its summary's counts)."""
    command = [
        str(BIN / "st"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(max_examples),
        "--checks",
        "all",
        "--exclude-checks",
        "unsupported_method,allow_header_conformance,ensure_resource_availability",
        "--exclude-path-regex",
        "/auth/logout",
        "--workers",
        "2",
        "--no-shrink",
    ]
    if seed:
        command += ["--seed", seed]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={
            **os.environ,
            **objects,
            "NO_COLOR": "1",
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": str(HOOKS_DIR),
        },
    )
    return done.returncode, done.stdout, summary(done.stdout)


def summary(output: str) -> dict:
    """schemathesis' summary: operations tested; test cases generated, passed, failed; its warnings."""
    cases = re.search(r"Test cases:\s*\n\s*(.+)", output)
    counts = dict((label, int(n)) for n, label in re.findall(r"(\d+) (\w+)", cases.group(1))) if cases else {}
    tested = re.search(r"Tested: (\d+)", output)
    warnings = re.search(r"\nWarnings:\n((?:  .*\n)+)", output)
    return {
        "operations": int(tested.group(1)) if tested else 0,
        "generated": counts.get("generated", 0),
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0),
        "warnings": [line.strip().lstrip("⚠️ ").strip() for line in warnings.group(1).splitlines()] if warnings else [],
    }


def fresh_account(server: str, admin: Api, role: str) -> tuple[str, dict[str, str]]:
    """A session token of a new account with `role`, and real objects for the fuzzer's path
    parameters (schemathesis.toml): an upload it may see, a share link to it and an API token
    of its own. Without them nearly every operation on an id would only ever answer 404.

    Each run gets its own account, so an admin run that deactivates or deletes users cannot
    pull the credentials out from under the next run."""

    email = f"fuzz-{role}-{uuid.uuid4().hex[:8]}@example.com"
    account = {"email": email, "password": "fuzzing password", "name": "Fuzz", "roles": [role]}
    assert admin.post("/api/v1/users", json=account).status_code == 201
    client = Api(server).login(email, "fuzzing password")
    # A plain user cannot upload: it gets a public upload of the admin's to read.
    owner = client if role in ("admin", "uploader") else admin
    visibility = "private" if owner is client else "public"
    upload = owner.post(
        "/api/v1/uploads", files={"file": ("seed.txt", b"seed file\n")}, data={"visibility": visibility}
    )
    assert upload.status_code == 201, upload.text
    link = owner.post(f"/api/v1/uploads/{upload.json()['id']}/links", json={})
    api_token = client.post("/api/v1/users/me/tokens", json={"name": "fuzz"})
    assert link.status_code == 201 and api_token.status_code == 201, link.text + api_token.text
    return client.token, {
        "DEPOT_FUZZ_UPLOAD_ID": upload.json()["id"],
        "DEPOT_FUZZ_LINK_TOKEN": link.json()["token"],
        "DEPOT_FUZZ_TOKEN_ID": api_token.json()["id"],
    }


@pytest.fixture(scope="module")
def fuzz_server(server_env, tmp_path_factory):
    """A Depot of its own (database, files, gunicorn): an admin's fuzzing may deactivate or
    delete any account it finds, which must not touch the other tests' server."""
    with temporary_database() as database_url:
        env = {**server_env, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path_factory.mktemp("fuzz-data"))}
        with running_depot(env, "fuzz", tmp_path_factory.mktemp("fuzz-logs")) as url:
            yield url


# The admin runs last: it may deactivate or delete any account it finds, the bootstrap
# admin included, which the earlier runs need to create their accounts.
@pytest.mark.parametrize("role", ["user", "uploader", "admin"])
def test_the_api_keeps_its_documented_contract_under_fuzzing(fuzz_server, role, record_property):
    admin = Api(fuzz_server).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    code, output, counts = fuzz(fuzz_server, *fresh_account(fuzz_server, admin, role))
    record_property("figures", {"role": role, "max_examples": MAX_EXAMPLES, "seed": SEED, **counts})

    assert counts["generated"] > 0, output[-3000:]
    assert code == 0, output[-8000:]
