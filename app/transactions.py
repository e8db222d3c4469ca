"""The transaction manager, and the SQLAlchemy session joined to it with zope.sqlalchemy.

Services open every transaction with `with tm:` (commit on exit, abort on an exception); they
never call `session.commit()`, which zope.sqlalchemy forbids. Later data managers (the file
store) join the same transaction, so files and rows commit or abort together.
"""

from __future__ import annotations

import transaction
from flask import Flask
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager
from zope.sqlalchemy import register

from app.extensions import db

# The process-wide, thread-local manager: each gunicorn thread gets its own transaction.
manager: ThreadTransactionManager = transaction.manager

_registered: set[int] = set()


def join_session_to_transactions(session: scoped_session) -> None:
    """Make `session` take part in `manager`'s transactions (once per session factory).

    Services return models that views marshal after the transaction has ended. zope.sqlalchemy
    either closes the session at the end (the default) or, with keep_session=True, keeps it
    and expires every object in it, so each returned model would be loaded again, one query
    per object, in a new implicit transaction. We let it close the session, and the session
    is built with expire_on_commit=False (app.extensions), so what a service returns is a
    complete detached snapshot: attributes and eagerly loaded relationships (roles are
    `selectin`) read without touching the database.
    """
    if id(session) not in _registered:
        register(session, transaction_manager=manager, keep_session=False)
        _registered.add(id(session))


def _end_request_transaction(_exc: BaseException | None) -> None:
    # A read outside `with tm:` (lazy loads, the auth check) opens an implicit transaction;
    # end it so the connection goes back to the pool clean.
    manager.abort()


def init_transactions(app: Flask) -> None:
    join_session_to_transactions(db.session)
    app.teardown_appcontext(_end_request_transaction)
