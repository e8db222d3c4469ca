"""First-start tasks: create the admin named by ADMIN_EMAIL/ADMIN_PASSWORD when there are no users."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.services.users import UserService

log = logging.getLogger(__name__)


def create_initial_admin(app: Flask) -> None:
    """Create the configured admin once the schema exists; a no-op on every later start."""
    email, password = app.config.get("ADMIN_EMAIL"), app.config.get("ADMIN_PASSWORD")
    if not (email and password):
        return
    with app.app_context():
        try:
            # Before `flask db upgrade` has run there is nothing to create the admin in.
            if not inspect(db.engine).has_table("users"):
                log.info("initial admin not created yet: the database has not been migrated")
                return
            user = app.injector.get(UserService).ensure_initial_admin(email, password)
        except OperationalError:
            # The process must start (liveness, `flask db upgrade`) even while the database
            # is down; the admin is created on a later start.
            log.warning("initial admin not created: the database is not answering")
            return
        if user is not None:
            log.info("created the initial admin %s", user.email)
