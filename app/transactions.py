"""The transaction manager, and the SQLAlchemy session joined to it with zope.sqlalchemy.

Services open every transaction with `with tm:` (commit on exit, abort on an exception); they
never call `session.commit()`, which zope.sqlalchemy forbids. Later data managers (the file
store) join the same transaction, so files and rows commit or abort together.

One `with tm:` is one unit of work, and it is never nested: the `transaction` package's
manager would answer a nested `with tm:` by aborting the open transaction without a word (its
begin() aborts whatever is current), so UnitOfWorkManager refuses it instead. Helpers that
work in their caller's open transaction are marked @within_transaction.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager
from transaction.interfaces import ITransaction
from zope.sqlalchemy import register

from app.extensions import db

P = ParamSpec("P")
R = TypeVar("R")


class NestedTransaction(RuntimeError):
    """A `with tm:` (or begin()) while this thread's `with tm:` is open: a programming error."""


class NoOpenTransaction(RuntimeError):
    """A @within_transaction helper called outside `with tm:`: a programming error."""


class UnitOfWorkManager(ThreadTransactionManager):
    """The thread-local manager, refusing a `with tm:` inside another in the same thread.

    The stock manager's begin() aborts the current transaction and starts a new one. That is
    what we want after a read outside any `with tm:` (the auth check, a lazy load joins an
    implicit transaction, which the next `with tm:` discards), but inside an open `with tm:`
    it silently throws away the outer block's work, lets the inner block commit alone, and
    the outer block then commits an empty transaction. So an explicit `with tm:` (or a
    begin()) while one is open in this thread raises NestedTransaction, and the outer
    transaction can then only abort: its `with` ends in NestedTransaction even if the caller
    caught the first one, so nothing of the outer block is committed. Other threads have
    their own state (this is a threading.local), so their transactions are never involved.
    """

    def __init__(self) -> None:  # runs once per thread
        super().__init__()
        # Where this thread's open `with tm:` began (file, line, function), formatted only
        # for the error: every transaction sets it.
        self._opened_at: tuple[str, int, str] | None = None
        self._refused = False  # a nested begin was refused while it was open

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside an explicit `with tm:` (implicit reads do not count)."""
        return self._opened_at is not None

    def begin(self) -> ITransaction:
        if self._opened_at is not None:
            self._refused = True
            filename, line, function = self._opened_at
            raise NestedTransaction(
                f"A transaction is already open in this thread (its `with tm:` began at {filename}:{line} in "
                f"{function}); a nested `with tm:` would silently abort it. Do the work inside the open "
                "transaction: call a @within_transaction helper instead of a method that opens its own."
            )
        return super().begin()

    def __enter__(self) -> ITransaction:
        caller = sys._getframe(1)
        txn = self.begin()
        self._opened_at = (caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_name)
        self._refused = False
        return txn

    def __exit__(self, exc_type, exc, tb) -> None:
        refused, self._opened_at, self._refused = self._refused, None, False
        if not refused:
            return super().__exit__(exc_type, exc, tb)
        self.abort()
        if exc is None:  # the refusal was caught inside the block: it still must not commit
            raise NestedTransaction("A nested `with tm:` was refused in this block, so its transaction was aborted.")
        return None


# The process-wide, thread-local manager: each gunicorn thread gets its own transaction.
manager = UnitOfWorkManager()

_registered: set[int] = set()


def within_transaction(method: Callable[P, R]) -> Callable[P, R]:
    """Marks a service helper that works in its caller's open `with tm:` and opens none.

    Called outside one, it raises NoOpenTransaction: its reads and writes would otherwise go
    to an implicit transaction that nothing commits.
    """

    @functools.wraps(method)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        if not args[0].tm.in_transaction:  # args[0] is the service, which holds the manager
            raise NoOpenTransaction(f"{method.__qualname__} must be called inside `with tm:`.")
        return method(*args, **kwargs)

    return checked


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
