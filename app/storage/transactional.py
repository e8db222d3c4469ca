"""The file store as a participant in the `transaction` package's two-phase commit.

Invariant (tested in tests/storage/test_transactional.py and tests/services/test_upload_faults.py):
after any failure at any point, every upload row has its file, with the size and SHA-256
recorded in the row. A file without a row can only be the leftover of a crash (a process
killed between the two commits below); `flask storage check --repair` finds and removes it.

How the commit is ordered. `transaction` calls, on every joined data manager sorted by
`sortKey()`: tpc_begin, commit, tpc_vote, then tpc_finish (or tpc_abort on any failure).
zope.sqlalchemy's data manager sorts last ("~sqlalchemy:...") and commits the database in its
tpc_vote. Ours sorts first ("depot.filestore:..."), so:

1. while the request runs, bytes go to the staging area and are fsynced there (`stage`);
2. our tpc_vote renames each staged file to its final key and fsyncs the directory, so the
   file is durable and visible *before* the database commit (an upload promotes its file
   earlier still, `promote_now`, before it locks its owner's row: the same order, with no
   lock held during a slow promotion);
3. the database commits in its own tpc_vote;
4. our tpc_finish deletes the files whose rows were deleted, only now that the deletion is
   committed (a crash before this leaves an orphan file, never a row without its file).

If anything fails before the database has committed, tpc_abort removes the files promoted in
step 2 and everything staged, and the database rolls back: nothing is left behind. abort()
(an exception inside `with tm:`, before any commit) discards the staged files.

One failure needs care: the database commit may have gone through and the error come after
it (a connection lost while reading the COMMIT reply). So tpc_abort asks the database, on a
connection of its own, whether a row now refers to each promoted file, and keeps the file if
one does, or if the question cannot be answered. Keeping a file is always safe: at worst it
is an orphan that `storage check --repair` removes. (Left open: a COMMIT still being applied
by the server at the very moment of that question would be missed; we judge this negligible.)
UploadService then asks again, to answer 201 if the row is there, or "outcome_unknown" if
the database cannot say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import transaction
from transaction.interfaces import IDataManager
from zope.interface import implementer

from app.storage.base import FileStore, StagedFile, StorageError

log = logging.getLogger(__name__)


@implementer(IDataManager)
class FileStoreDataManager:
    """The file-store work of one transaction: what was staged, what to promote and delete."""

    def __init__(self, store: FileStore, transaction_manager, is_referenced: Callable[[str], bool]) -> None:
        self.store = store
        self.transaction_manager = transaction_manager
        self.is_referenced = is_referenced
        self._staged: list[StagedFile] = []
        self._to_promote: list[tuple[StagedFile, str]] = []
        self._promoted: list[str] = []
        self._promoted_staging: set[str] = set()  # staged files that became final ones
        self._to_delete: list[str] = []

    # --- used by services during the transaction --------------------------------------------

    def stage(self, chunks, limit: int | None = None) -> StagedFile:
        staged = self.store.stage(chunks, limit)
        self._staged.append(staged)
        return staged

    def promote_on_commit(self, staged: StagedFile, key: str) -> None:
        self._to_promote.append((staged, key))

    def promote_now(self, staged: StagedFile, key: str) -> None:
        """Promote at once rather than in the vote: the same step, done before the database
        work that follows it (and before locks that work takes, so a slow promotion, an S3
        copy, holds none). Any abort removes the file again, as it removes a promotion of the
        vote; a crash leaves a file without a row, which `storage check --repair` removes."""
        # Recorded first, so a promotion that fails halfway is still undone.
        self._promoted.append(key)
        self.store.promote(staged, key)
        self._promoted_staging.add(staged.staging_id)

    def delete_on_commit(self, key: str) -> None:
        self._to_delete.append(key)

    # --- IDataManager -----------------------------------------------------------------------

    def sortKey(self) -> str:  # noqa: N802 (the interface's name)
        # Sorts before zope.sqlalchemy's "~sqlalchemy:..." so our vote runs before its commit.
        return f"depot.filestore:{id(self)}"

    def abort(self, txn) -> None:
        # Also called, before tpc_abort, on a manager whose own tpc_vote failed halfway (so
        # the database has not voted yet): undo promotions too, not just what was staged.
        self._undo(check_database=False)

    def tpc_begin(self, txn) -> None:
        pass

    def commit(self, txn) -> None:
        # The bytes were fsynced while staging; nothing is visible yet.
        pass

    def tpc_vote(self, txn) -> None:
        for staged, key in self._to_promote:
            self.promote_now(staged, key)

    def tpc_finish(self, txn) -> None:
        for key in self._to_delete:
            try:
                self.store.delete(key)
            except StorageError:
                # The row is gone for good; the orphan file is reported by `flask storage check`.
                log.exception("could not delete a file after its row was deleted")
        self._discard_staged()  # the staged files that were never promoted
        self._reset()

    def tpc_abort(self, txn) -> None:
        self._undo(check_database=True)

    # --- helpers ----------------------------------------------------------------------------

    def _undo(self, check_database: bool) -> None:
        for key in self._promoted:
            if check_database and self._maybe_committed(key):
                log.warning("kept a promoted file: its row may have committed before the failure")
                continue
            try:
                self.store.delete(key)
            except StorageError:
                log.exception("could not remove a promoted file while aborting")
        self._discard_staged()
        self._reset()

    def _maybe_committed(self, key: str) -> bool:
        try:
            return self.is_referenced(key)
        except Exception:  # noqa: BLE001 (cannot tell, so keep the file: an orphan is safe)
            log.exception("could not ask the database whether a file is referenced")
            return True

    def _discard_staged(self) -> None:
        for staged in self._staged:
            if staged.staging_id in self._promoted_staging:
                continue  # promotion moved it: nothing is left to discard
            try:
                self.store.discard(staged)
            except StorageError:
                log.exception("could not discard a staged file")

    def _reset(self) -> None:
        self._staged, self._to_promote, self._promoted, self._to_delete = [], [], [], []
        self._promoted_staging = set()


class TransactionalFiles:
    """Hands out the file-store data manager of the current transaction, joining it once."""

    def __init__(
        self,
        store: FileStore,
        transaction_manager: transaction.ThreadTransactionManager,
        is_referenced: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.transaction_manager = transaction_manager
        # Answers, outside the current transaction, whether a committed row uses a key.
        self.is_referenced = is_referenced

    def current(self) -> FileStoreDataManager:
        txn = self.transaction_manager.get()
        try:
            return txn.data(self)
        except KeyError:
            manager = FileStoreDataManager(self.store, self.transaction_manager, self.is_referenced)
            txn.join(manager)
            txn.set_data(self, manager)
            return manager
