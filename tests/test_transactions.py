"""The transaction manager refuses a `with tm:` inside another in the same thread.

With the `transaction` package's own manager, the inner `with tm:` would call begin(), which
aborts the open transaction without a word: the outer block's work before it vanished, the
inner block committed on its own, and the outer block then committed an empty transaction.
These tests use the app's manager, the real session and SQLite."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.extensions import db
from app.models import User
from app.services.uploads import UploadService
from app.services.users import UserService
from app.transactions import NestedTransaction, NoOpenTransaction, manager


def name_of(app, user_id: str) -> str:
    """The user's name as committed, read in a transaction of its own."""
    with app.app_context(), manager:
        return db.session.get(User, user_id).name


def rename(user_id: str, name: str) -> None:
    db.session.get(User, user_id).name = name


def test_a_nested_with_tm_raises_and_the_outer_transaction_commits_nothing(app, make_user):
    first, second = make_user(name="first"), make_user(name="second")

    with app.app_context(), pytest.raises(NestedTransaction, match="already open"):
        with manager:
            rename(first.id, "outer")
            with manager:
                rename(second.id, "inner")  # never runs: the inner `with` is refused

    # The refusal reached the caller, the outer transaction was aborted as a whole (its
    # write before the nested `with` is gone) and the inner block never ran.
    assert name_of(app, first.id) == "first"
    assert name_of(app, second.id) == "second"


def test_a_refused_nesting_swallowed_inside_the_outer_block_still_commits_nothing(app, make_user):
    user = make_user(name="before")

    with app.app_context(), pytest.raises(NestedTransaction):
        with manager:
            rename(user.id, "outer")
            try:
                with manager:
                    pass
            except NestedTransaction:
                pass  # a careless caller: the outer block must not commit as if all went well

    assert name_of(app, user.id) == "before"


def test_begin_inside_with_tm_is_refused_too(app, make_user):
    user = make_user(name="before")

    with app.app_context(), pytest.raises(NestedTransaction):
        with manager:
            rename(user.id, "outer")
            manager.begin()

    assert name_of(app, user.id) == "before"


def test_sequential_with_tm_blocks_each_commit(app, make_user):
    user = make_user(name="before")

    with app.app_context():
        with manager:
            rename(user.id, "one")
        with manager:
            rename(user.id, "two")

    assert name_of(app, user.id) == "two"


def test_with_tm_works_again_after_a_refused_nesting(app, make_user):
    user = make_user(name="before")

    with app.app_context():
        with pytest.raises(NestedTransaction), manager, manager:
            pass
        with manager:
            rename(user.id, "after")

    assert name_of(app, user.id) == "after"


def test_an_implicit_read_then_with_tm_begins_fresh_and_commits(app, make_user):
    user = make_user(name="before")

    with app.app_context():
        assert db.session.get(User, user.id).name == "before"  # joins an implicit transaction
        with manager:  # aborts the implicit one and begins its own
            rename(user.id, "after")

    assert name_of(app, user.id) == "after"


def test_another_threads_transaction_is_unaffected(app, make_user):
    mine, theirs = make_user(name="mine"), make_user(name="theirs")
    opened, mine_committed = threading.Event(), threading.Event()

    def in_the_other_thread() -> None:
        with app.app_context(), manager:
            opened.set()  # its `with tm:` stays open while this thread opens and commits one
            assert mine_committed.wait(10)
            rename(theirs.id, "theirs, changed")

    with ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(in_the_other_thread)
        try:
            assert opened.wait(10)
            with app.app_context(), manager:
                rename(mine.id, "mine, changed")
        finally:
            mine_committed.set()
        other.result(10)  # raises what the other thread raised

    assert name_of(app, mine.id) == "mine, changed"
    assert name_of(app, theirs.id) == "theirs, changed"


def test_services_get_the_manager_that_refuses_nesting(app):
    with app.app_context():
        assert app.injector.get(UploadService).tm is manager
        assert app.injector.get(UserService).tm is manager


def test_a_within_transaction_helper_refuses_to_run_outside_with_tm(app, make_user):
    user = make_user()

    with app.app_context():
        uploads = app.injector.get(UploadService)
        with pytest.raises(NoOpenTransaction, match="purge_owner must be called inside"):
            uploads.purge_owner(user.id)
        with manager:
            uploads.purge_owner(user.id)  # the same call inside a transaction is fine
