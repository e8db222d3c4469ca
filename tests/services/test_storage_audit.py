"""StorageAuditService.check: what the grace period leaves unjudged is counted, not hidden."""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.services.storage_audit import StorageAuditService

HOUR = 3600


def leftover(path: Path, age_seconds: int) -> str:
    """A file at `path` last modified `age_seconds` ago; returns its name (the key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left by a crash")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path.name


def test_leftovers_younger_than_the_grace_period_are_counted_apart(app):
    root = Path(app.config["UPLOAD_DIR"])
    old_object = leftover(root / "objects" / "ol" / "old-object-key", 2 * HOUR)
    young_object = leftover(root / "objects" / "yo" / "young-object-key", 60)
    old_staged = leftover(root / "staging" / "old-staged-id", 2 * HOUR)
    young_staged = leftover(root / "staging" / "young-staged-id", 60)

    with app.app_context():
        report = app.injector.get(StorageAuditService).check(grace_seconds=HOUR)

    assert (report.orphans, report.stale_staged) == ([old_object], [old_staged])
    assert sorted(report.too_young) == sorted([young_object, young_staged])
    assert not report.consistent


def test_without_a_grace_period_nothing_is_left_unjudged(app):
    root = Path(app.config["UPLOAD_DIR"])
    young_object = leftover(root / "objects" / "yo" / "young-object-key", 0)

    with app.app_context():
        report = app.injector.get(StorageAuditService).check(grace_seconds=0)

    assert (report.orphans, report.too_young) == ([young_object], [])
