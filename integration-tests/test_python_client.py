"""The README walkthrough through a Python SDK that openapi-python-client generates, during the
run, from the live server's own document (issue 14), as a team integrating with Depot would.

The generator must print no warning (each one is an operation or a response body it left out),
and every step must come back as the generated, typed model: a document that drops a body or
types a field wrongly fails here, not in a user's code. The generated package is written to a
temporary folder and imported from there; it is never committed. Its settings are the README's:
`openapi-python-client.yaml` at the root, and ruff (pinned) for the generator's post-hooks.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import requests
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD
from processes import BIN, ROOT

GENERATOR = BIN / "openapi-python-client"
GENERATOR_CONFIG = ROOT / "openapi-python-client.yaml"
PACKAGE = "depot_api_client"  # from the document's title, "Depot API"
HELLO = b"hello depot\n"


@dataclass
class Generation:
    """What one run of the generator left: the generated project and everything it printed."""

    project: Path
    returncode: int
    output: str


@pytest.fixture(scope="module")
def generation(server, tmp_path_factory) -> Generation:
    """The client generated from `server`'s /api/v1/openapi.json into a temporary folder."""
    for tool in (GENERATOR, BIN / "ruff"):
        if not tool.exists():
            pytest.fail(
                f"{tool} is missing: run `.venv/bin/pip install -r requirements/development.txt`", pytrace=False
            )
    folder = tmp_path_factory.mktemp("python-client")
    document = requests.get(f"{server}/api/v1/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    (folder / "openapi.json").write_bytes(document.content)
    command = [GENERATOR, "generate", "--path", "openapi.json", "--output-path", "client", "--config", GENERATOR_CONFIG]
    # The post-hooks run `ruff`, found on PATH: the virtualenv's, pinned with the generator.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    return Generation(folder / "client", done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def sdk(generation) -> Iterator[ModuleType]:
    """The generated package, imported from its temporary folder for this module only."""
    assert (generation.project / PACKAGE).is_dir(), generation.output
    sys.path.insert(0, str(generation.project))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(generation.project))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_openapi_python_client_generates_the_client_without_a_warning(generation):
    assert generation.returncode == 0, generation.output
    assert "warning" not in generation.output.lower(), generation.output
    assert "Generating client" in generation.output, generation.output


def test_the_readme_walkthrough_runs_through_the_generated_python_client(sdk, server):
    from depot_api_client import AuthenticatedClient, Client
    from depot_api_client.api.api_tokens import create_api_token
    from depot_api_client.api.auth import login, logout
    from depot_api_client.api.uploads import (
        create_raw_upload,
        create_share_link,
        create_upload,
        delete_upload,
        download_shared_upload,
        download_upload,
        get_upload,
        list_uploads,
    )
    from depot_api_client.api.users import create_user, get_me, list_users
    from depot_api_client.models import (
        ApiTokenCreate,
        ApiTokenCreateRolesItem,
        CreatedApiToken,
        Error,
        Link,
        LinkCreate,
        Token,
        TokenRequest,
        Upload,
        UploadForm,
        UploadFormVisibility,
        UploadPage,
        UploadVisibility,
        User,
        UserCreate,
        UserCreateRolesItem,
        UserRolesItem,
    )
    from depot_api_client.types import UNSET, File

    # An undocumented status raises, so every answer below is one the document describes.
    options = {"base_url": server, "timeout": httpx.Timeout(30.0), "raise_on_unexpected_status": True}
    anonymous = Client(**options)

    def log_in(email: str, password: str) -> AuthenticatedClient:
        answer = login.sync_detailed(client=anonymous, body=TokenRequest(email=email, password=password))
        assert answer.status_code == 200, answer.content
        assert isinstance(answer.parsed, Token)
        assert answer.parsed.user.email == email and answer.parsed.expires_in > 0
        return AuthenticatedClient(token=answer.parsed.access_token, **options)  # a bare token: "Bearer" is added

    # 2-3. Log in and ask who I am.
    admin = log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    me = get_me.sync(client=admin)
    assert isinstance(me, User)
    assert me.email == ADMIN_EMAIL and UserRolesItem.ADMIN in me.roles and me.active is True
    assert isinstance(me.id, uuid.UUID)

    # 4. The admin creates an uploader, who logs in.
    email = f"py-sdk-{uuid.uuid4().hex[:10]}@example.com"
    created = create_user.sync_detailed(
        client=admin,
        body=UserCreate(email=email, password=USER_PASSWORD, name="CI", roles=[UserCreateRolesItem.UPLOADER]),
    )
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, User)
    assert created.parsed.email == email and created.parsed.roles == [UserRolesItem.UPLOADER]
    uploader = log_in(email, USER_PASSWORD)

    # 5. A personal API token with only the uploader role: its secret is a plain str, shown once.
    token = create_api_token.sync(
        client=uploader,
        body=ApiTokenCreate(name="upload script", expires_in_days=30, roles=[ApiTokenCreateRolesItem.UPLOADER]),
    )
    assert isinstance(token, CreatedApiToken)
    assert token.token is not UNSET and isinstance(token.token, str) and token.token.startswith("dpt_")
    assert token.name == "upload script" and token.expires_at is not None
    script = AuthenticatedClient(token=token.token, **options)
    refused = list_users.sync_detailed(client=script)
    assert refused.status_code == 403 and isinstance(refused.parsed, Error), refused.content

    # 6. A multipart upload, the file and its metadata in the generated form model...
    tag = f"py{uuid.uuid4().hex[:10]}"
    form = UploadForm(
        file=File(payload=BytesIO(HELLO), file_name="hello.txt", mime_type="text/plain"),
        description="first file",
        tags=[tag, "docs"],
        visibility=UploadFormVisibility.PRIVATE,
    )
    posted = create_upload.sync_detailed(client=uploader, body=form)
    assert posted.status_code == 201, posted.content
    first = posted.parsed
    assert isinstance(first, Upload)
    assert posted.headers["Location"].endswith(f"/api/v1/uploads/{first.id}")
    assert (first.filename, first.size, first.content_type) == ("hello.txt", len(HELLO), "text/plain")
    assert first.sha256 == hashlib.sha256(HELLO).hexdigest()
    assert first.description == "first file" and sorted(first.tags) == sorted([tag, "docs"])
    assert first.visibility == UploadVisibility.PRIVATE and first.owner_id == created.parsed.id

    # ...and a raw body, with the script's token.
    raw = create_raw_upload.sync_detailed("hello-again.txt", client=script, body=File(payload=HELLO), tags=[tag])
    assert raw.status_code == 201, raw.content
    again = raw.parsed
    assert isinstance(again, Upload)
    assert (again.filename, again.size, again.content_type) == ("hello-again.txt", len(HELLO), "text/plain")
    assert raw.headers["Location"].endswith(f"/api/v1/uploads/{again.id}")

    # 7. List, newest first, one per page, following next_cursor until it is null.
    seen: list[uuid.UUID] = []
    cursor = UNSET
    for _ in range(5):
        page = list_uploads.sync(client=uploader, tag=tag, per_page=1, cursor=cursor)
        assert isinstance(page, UploadPage) and page.per_page == 1
        assert len(page.items) <= 1 and all(isinstance(item, Upload) for item in page.items)
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    else:
        pytest.fail(f"next_cursor never became null; seen {seen}")
    assert seen == [again.id, first.id]

    # 8. Download whole, then only the first 5 bytes.
    whole = download_upload.sync_detailed(first.id, client=uploader)
    assert whole.status_code == 200 and isinstance(whole.parsed, File), whole.content
    assert whole.parsed.payload.read() == HELLO
    assert whole.headers["ETag"] and whole.headers["Content-Type"].startswith("text/plain")
    ranged = download_upload.sync_detailed(first.id, client=uploader, range_="bytes=0-4")
    assert ranged.status_code == 206 and isinstance(ranged.parsed, File), ranged.content
    assert ranged.parsed.payload.read() == HELLO[:5]
    assert ranged.headers["Content-Range"] == f"bytes 0-4/{len(HELLO)}"

    # 9. Share: a signed link that downloads with no token at all.
    link = create_share_link.sync(first.id, client=uploader, body=LinkCreate(expires_in=600))
    assert isinstance(link, Link) and link.url.endswith(f"/api/v1/links/{link.token}")
    shared = download_shared_upload.sync_detailed(link.token, client=anonymous)
    assert shared.status_code == 200 and isinstance(shared.parsed, File), shared.content
    assert shared.parsed.payload.read() == HELLO

    # 10. Delete both uploads: gone.
    for upload in (first, again):
        deleted = delete_upload.sync_detailed(upload.id, client=uploader)
        assert deleted.status_code == 204, deleted.content
        missing = get_upload.sync_detailed(upload.id, client=uploader)
        assert missing.status_code == 404 and isinstance(missing.parsed, Error), missing.content

    # 11. Log out: the token stops working at once.
    assert logout.sync_detailed(client=uploader).status_code == 204
    after = get_me.sync_detailed(client=uploader)
    assert after.status_code == 401 and isinstance(after.parsed, Error), after.content
    assert after.parsed.status == 401
