"""The README's "Walkthrough with curl", run as it stands against ./run_dev.sh, so the README
cannot drift from the code.

The block is found by its heading, not by line numbers, and run with `bash -euo pipefail`:
every command must succeed. The only change made to its text is the server's port. It runs
in a temporary folder that holds what a checkout gives the block (`.venv`, `autoapp.py`,
`app/`), as links to the real ones, so the files it writes (hello.txt, downloaded.txt) stay
out of the repository. The server is started the way the README says: ./run_dev.sh, here with
VENV set to this test run's virtualenv, PORT to a free port and DATA_DIR to a temporary folder.
Afterwards each step's effect is checked over HTTP and in what the block printed.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from processes import ROOT, Process, free_port, wait_for_http

README = ROOT / "README.md"
HEADING = "## Walkthrough with curl"
ADMIN = {"email": "admin@example.com", "password": "change-me-please"}
# Settings a developer's .env might hold that would take the walkthrough off its defaults:
# set empty here, they count as unset, and python-dotenv does not override them.
NEUTRAL_SETTINGS = (
    "DATABASE_URL",
    "UPLOAD_DIR",
    "STORAGE_BACKEND",
    "S3_BUCKET",
    "DOWNLOAD_REDIRECT",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "ALLOW_REGISTRATION",
    "RATELIMIT_ENABLED",
    "RATELIMIT_STORAGE_URI",
    "AUTH_RATE_LIMIT",
    "PROXY_COUNT",
    "MAX_UPLOAD_BYTES",
    "ALLOWED_EXTENSIONS",
    "USER_QUOTA_BYTES",
)


def walkthrough_block(heading: str = HEADING) -> str:
    """The first ```sh block after the heading (the walkthrough's unless told)."""
    text = README.read_text()
    assert heading in text, f"README.md has no {heading!r} section"
    section = text[text.index(heading) :]
    found = re.search(r"^```sh\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)
    assert found, f"no ```sh block after {heading!r}"
    return found.group(1)


def test_the_walkthrough_block_is_found_by_its_heading():
    block = walkthrough_block()

    assert block.startswith("# 1. Create an admin")
    assert "localhost:5000" in block


@pytest.fixture
def depot_env(tmp_path) -> dict[str, str]:
    """The environment of a developer on a fresh checkout, with the data in tmp_path."""
    return {
        **os.environ,
        **dict.fromkeys(NEUTRAL_SETTINGS, ""),
        "DEPOT_ENV": "development",
        "DATA_DIR": str(tmp_path / "data"),
        "VENV": sys.prefix,
    }


def start_run_dev(env: dict[str, str], port: int, log_path: Path) -> Process:
    """./run_dev.sh as the README says, answering /healthz on `port`."""
    server = Process("run_dev", [str(ROOT / "run_dev.sh")], {**env, "PORT": str(port)}, log_path)
    # The first start on a virtualenv may run pip (requirements unchanged: no download).
    wait_for_http(f"http://127.0.0.1:{port}/healthz", server.process, log_path, "./run_dev.sh", timeout=300)
    return server


def test_the_readme_walkthrough_runs_verbatim_against_run_dev(depot_env, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    for name in ("app", "autoapp.py"):
        (workdir / name).symlink_to(ROOT / name)
    (workdir / ".venv").symlink_to(sys.prefix)
    block = walkthrough_block().replace("localhost:5000", f"localhost:{port}")

    server = start_run_dev(depot_env, port, tmp_path / "run_dev.log")
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=workdir,
            env=depot_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"the walkthrough failed:\n{output}\n--- server:\n{server.log()[-3000:]}"
        lines = done.stdout.splitlines()

        # 1-3: the admin exists and can log in (step 11 logged out only that one session).
        assert "Created admin admin@example.com" in done.stdout
        login = requests.post(f"{base}/api/v1/auth/token", json=ADMIN, timeout=10)
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert login.json()["user"]["roles"] == ["admin"]
        # 4: the uploader exists.
        users = requests.get(f"{base}/api/v1/users", headers=admin, timeout=10).json()["items"]
        assert {(u["email"], tuple(u["roles"])) for u in users} == {
            ("admin@example.com", ("admin",)),
            ("ci@example.com", ("uploader",)),
        }
        # 5: the script's token carries the uploader role only, so it may not manage users.
        tokens = requests.get(f"{base}/api/v1/users/me/tokens", headers=admin, timeout=10).json()
        assert [(t["name"], t["roles"]) for t in tokens] == [("upload script", ["uploader"])]
        assert "the script token may not list users: 403" in lines
        # 6 and 7: both uploads were stored and listed under their tag; 10: both deleted, so
        # the listing is empty and each upload's own address answers 404.
        assert '"filename": "hello.txt"' in done.stdout and '"filename": "hello-again.txt"' in done.stdout
        assert "delete: 204" in lines and "delete the raw upload: 204" in lines
        assert requests.get(f"{base}/api/v1/uploads", headers=admin, timeout=10).json()["items"] == []
        upload_ids = set(re.findall(r'"id": "([0-9a-f-]{36})",\n\s+"owner_id"', done.stdout))
        assert len(upload_ids) == 2
        for upload_id in upload_ids:
            gone = requests.get(f"{base}/api/v1/uploads/{upload_id}", headers=admin, timeout=10)
            assert gone.status_code == 404
        # 8: the download, whole and in part.
        assert (workdir / "downloaded.txt").read_bytes() == b"hello depot\n"
        assert "HTTP 200: 12 bytes written to downloaded.txt" in lines
        assert lines[lines.index("hello depot") + 1] == "hello"
        # 9: the link served the file without a token, then was refused once revoked.
        revoked = lines.index("revoke every link: 204")
        assert lines[revoked - 1] == "hello depot"
        assert lines[revoked + 1] == "the link after revoking: 404"
        # 11: logged out, and that token no longer works.
        assert lines[-2:] == ["log out: 204", "the token after logging out: 401"]
        # ./run_dev.sh built the web console and serves it, as the README's console section says.
        console = requests.get(f"{base}/console/", timeout=10)
        assert console.status_code == 200 and "<title>Depot console</title>" in console.text
        assert requests.get(f"{base}/console/console.js", timeout=10).status_code == 200
    finally:
        server.stop()


def test_the_readme_tus_walkthrough_runs_verbatim_against_run_dev(depot_env, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    block = walkthrough_block("## Resumable uploads (tus)").replace("localhost:5000", f"localhost:{port}")
    server = start_run_dev(depot_env, port, tmp_path / "run_dev.log")
    try:
        # Step 1 of the walkthrough: the admin the block logs in as.
        created = subprocess.run(
            [
                f"{sys.prefix}/bin/flask",
                "--app",
                "autoapp",
                "users",
                "create-admin",
                ADMIN["email"],
                "--password-stdin",
            ],
            input=ADMIN["password"] + "\n",
            cwd=ROOT,
            env=depot_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stdout + created.stderr

        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=workdir,
            env=depot_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"the tus walkthrough failed:\n{output}\n--- server:\n{server.log()[-3000:]}"
        lines = done.stdout.splitlines()

        assert re.fullmatch(rf"created http://localhost:{port}/api/v1/tus/[0-9a-f]{{32}}", lines[0]), lines[0]
        assert lines[1:3] == ["first part: 204", "resume from 1000000"]
        # curl shows the 100 Continue it was sent for a large body, then the answer.
        assert [line for line in lines[3:] if line.startswith("HTTP/")][-1].startswith("HTTP/1.1 204")
        answer = dict(line.lower().split(": ", 1) for line in lines[3:] if ": " in line)
        assert answer["upload-offset"] == "3000000"
        login = requests.post(f"{base}/api/v1/auth/token", json=ADMIN, timeout=10).json()
        # Absolute, on the address curl used.
        assert answer["content-location"] == f"http://localhost:{port}/api/v1/uploads/{answer['depot-upload-id']}"
        upload = requests.get(
            answer["content-location"],
            headers={"Authorization": f"Bearer {login['access_token']}"},
            timeout=10,
        ).json()
        sent = (workdir / "notes.txt").read_bytes()
        assert (upload["id"], upload["filename"], upload["tags"]) == (answer["depot-upload-id"], "notes.txt", ["demo"])
        assert (upload["size"], upload["sha256"]) == (len(sent), hashlib.sha256(sent).hexdigest())
    finally:
        server.stop()


def test_run_dev_restarts_without_pip_when_requirements_are_unchanged(depot_env, tmp_path):
    port = free_port()
    first = start_run_dev(depot_env, port, tmp_path / "first.log")
    first.stop()

    again = start_run_dev(depot_env, port, tmp_path / "again.log")
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        again.stop()
    assert "installing" not in again.log()
    assert "Running on http://127.0.0.1" in again.log()


def test_run_dev_lists_every_configuration_problem_and_exits_2(depot_env, tmp_path):
    env = {**depot_env, "TOKEN_TTL_SECONDS": "soon", "STORAGE_BACKEND": "s3", "PORT": str(free_port())}

    done = subprocess.run([str(ROOT / "run_dev.sh")], env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines()[-3:] == [
        "Depot cannot start: 2 configuration problems:",
        "- TOKEN_TTL_SECONDS must be a whole number, got 'soon'",
        "- STORAGE_BACKEND=s3 needs S3_BUCKET",
    ]
