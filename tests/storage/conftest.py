"""Stores for the storage tests: a local folder, and an S3 bucket in moto's in-process S3
(the `s3_client` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest

from app.storage.local import LocalFileStore
from app.storage.s3 import MIN_PART_SIZE, S3FileStore
from tests.helpers import S3_BUCKET as BUCKET


@pytest.fixture
def s3_store(s3_client) -> S3FileStore:
    """An S3FileStore with the smallest part size S3 allows, so multipart starts at 5 MiB."""
    return S3FileStore(BUCKET, prefix="depot", part_size=MIN_PART_SIZE, client=s3_client)


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    """Each FileStore implementation in turn, for the behaviour they must share."""
    if request.param == "local":
        return LocalFileStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")
