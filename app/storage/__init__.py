"""File storage: the FileStore interface, its local-folder and S3 implementations, and the data
manager that makes the store take part in the same two-phase commit as the database."""

from __future__ import annotations

from collections.abc import Mapping

from app.storage.base import FileStore
from app.storage.metered import MeteredFileStore


def build_file_store(config: Mapping) -> FileStore:
    """The store STORAGE_BACKEND names, counting its failures for /metrics."""
    if config["STORAGE_BACKEND"] == "s3":
        from app.storage.s3 import S3FileStore  # boto3 is only imported when used

        store: FileStore = S3FileStore.from_config(config)
    else:
        from app.storage.local import LocalFileStore

        store = LocalFileStore(config["UPLOAD_DIR"])
    return MeteredFileStore(store)
