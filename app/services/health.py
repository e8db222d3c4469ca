"""HealthService: liveness and readiness answers for orchestrators and load balancers."""

from __future__ import annotations

import logging

from injector import inject
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app.exceptions import Unavailable
from app.storage.base import FileStore, StorageError

log = logging.getLogger(__name__)


class HealthService:
    """Checks the dependencies a request needs."""

    @inject
    def __init__(self, tm: ThreadTransactionManager, session: scoped_session, store: FileStore) -> None:
        self.tm = tm
        self.session = session
        self.store = store

    def readiness(self) -> dict[str, str]:
        """Every dependency's state; raises Unavailable naming the first that does not answer."""
        try:
            with self.tm:
                self.session.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            # The driver's message can include the host and user: log it, do not return it.
            log.warning("readiness: database check failed: %s", error.__class__.__name__)
            raise Unavailable("The database is not answering.", fields={"database": ["unavailable"]}) from None
        try:
            self.store.check()
        except StorageError as error:
            log.warning("readiness: file store check failed: %s", error)
            raise Unavailable("The file store is not writable.", fields={"storage": ["unavailable"]}) from None
        return {"database": "ok", "storage": "ok"}
