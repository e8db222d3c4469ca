"""The file-store data manager inside real `transaction` transactions."""

from __future__ import annotations

import pytest
import transaction

from app.storage.local import LocalFileStore
from app.storage.transactional import TransactionalFiles

KEY = "f" * 32


@pytest.fixture
def tm():
    """A private transaction manager, so these tests share nothing with the app's."""
    return transaction.TransactionManager()


@pytest.fixture
def store(tmp_path) -> LocalFileStore:
    """A store in a fresh temporary folder."""
    return LocalFileStore(tmp_path)


@pytest.fixture
def files(store, tm) -> TransactionalFiles:
    """The transactional view of `store` under `tm`."""
    return TransactionalFiles(store, tm, is_referenced=lambda key: key in committed_keys)


# Keys the fake "database" says are referenced by committed rows (see the abort tests).
committed_keys: set[str] = set()


def contents(store):
    return sorted(o.key for o in store.iter_objects()), sorted(s.key for s in store.iter_staged())


def test_sorts_before_the_sqlalchemy_data_manager(files, tm):
    # zope.sqlalchemy's key is "~sqlalchemy:<id>": we vote (promote) before it commits.
    with tm:
        key = files.current().sortKey()
    assert key < "~sqlalchemy:0"


def test_one_data_manager_per_transaction(files, tm):
    with tm:
        first = files.current()
        assert files.current() is first
    with tm:
        assert files.current() is not first


def test_commit_promotes_staged_files(files, store, tm):
    with tm:
        dm = files.current()
        dm.promote_on_commit(dm.stage([b"payload"]), KEY)
        assert contents(store) == ([], [contents(store)[1][0]])  # staged, not yet visible

    assert contents(store) == ([KEY], [])
    assert store.open(KEY).read() == b"payload"


def test_an_exception_in_the_transaction_discards_what_was_staged(files, store, tm):
    with pytest.raises(RuntimeError), tm:
        dm = files.current()
        dm.promote_on_commit(dm.stage([b"payload"]), KEY)
        raise RuntimeError("business rule failed")

    assert contents(store) == ([], [])


class FakeDatabase:
    """Stands for zope.sqlalchemy's data manager: sorts after ours and runs `vote` as its commit."""

    def __init__(self, tm, vote) -> None:
        self.transaction_manager = tm
        self.vote = vote

    def sortKey(self):  # noqa: N802
        return "~sqlalchemy:fake"

    def tpc_vote(self, txn):
        self.vote()

    def abort(self, txn): ...
    def tpc_begin(self, txn): ...
    def commit(self, txn): ...
    def tpc_abort(self, txn): ...
    def tpc_finish(self, txn): ...


def promote_in_transaction_with(database_vote, files, tm):
    """Stage and promote KEY in a transaction whose fake database votes with `database_vote`."""
    with tm:
        tm.get().join(FakeDatabase(tm, database_vote))
        dm = files.current()
        dm.promote_on_commit(dm.stage([b"payload"]), KEY)


def test_a_later_voter_failing_undoes_the_promotion(files, store, tm):
    def failed_commit():
        assert contents(store)[0] == [KEY], "the file must be durable and visible before the DB commits"
        raise RuntimeError("database commit failed")

    with pytest.raises(RuntimeError, match="database commit failed"):
        promote_in_transaction_with(failed_commit, files, tm)

    assert contents(store) == ([], [])


def test_a_failure_after_the_database_committed_keeps_the_file(files, store, tm, monkeypatch):
    def commit_then_fail():
        committed_keys.add(KEY)
        raise ConnectionError("lost while reading the COMMIT reply")

    monkeypatch.setattr(f"{__name__}.committed_keys", set())
    with pytest.raises(ConnectionError):
        promote_in_transaction_with(commit_then_fail, files, tm)

    assert contents(store) == ([KEY], [])


def test_deletes_happen_only_after_a_successful_commit(files, store, tm):
    with tm:
        dm = files.current()
        dm.promote_on_commit(dm.stage([b"payload"]), KEY)

    with pytest.raises(RuntimeError), tm:
        files.current().delete_on_commit(KEY)
        raise RuntimeError("the deletion is rolled back")
    assert contents(store) == ([KEY], [])

    with tm:
        files.current().delete_on_commit(KEY)
        assert contents(store) == ([KEY], [])  # still there until the commit
    assert contents(store) == ([], [])
