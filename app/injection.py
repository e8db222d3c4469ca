"""The dependency-injection bindings: which object each service and resource receives."""

from __future__ import annotations

from flask import Config
from injector import Binder, Module, provider, singleton
from sqlalchemy.orm import scoped_session
from transaction import ThreadTransactionManager

from app import transactions
from app.extensions import db
from app.services.api_tokens import ApiTokenService
from app.services.auth import AuthService
from app.services.health import HealthService
from app.services.passwords import PasswordHasher
from app.services.storage_audit import StorageAuditService
from app.services.upload_slots import UploadSlots
from app.services.uploads import UploadService, upload_key_committed
from app.services.users import UserService
from app.storage import build_file_store
from app.storage.base import FileStore
from app.storage.transactional import TransactionalFiles


class DepotModule(Module):
    """Binds infrastructure to its single instance and makes the stateless services singletons."""

    def configure(self, binder: Binder) -> None:
        # Services ask for the package's type; they get the manager that refuses nesting.
        binder.bind(ThreadTransactionManager, to=transactions.manager)
        binder.bind(scoped_session, to=db.session)
        for service in (AuthService, UserService, ApiTokenService, HealthService, UploadService, StorageAuditService):
            binder.bind(service, scope=singleton)

    @singleton
    @provider
    def file_store(self, config: Config) -> FileStore:
        return build_file_store(config)

    @singleton
    @provider
    def transactional_files(self, store: FileStore, tm: ThreadTransactionManager) -> TransactionalFiles:
        return TransactionalFiles(store, tm, is_referenced=upload_key_committed)

    @singleton
    @provider
    def upload_slots(self, config: Config) -> UploadSlots:
        return UploadSlots.from_config(config)

    @singleton
    @provider
    def password_hasher(self, config: Config) -> PasswordHasher:
        return PasswordHasher(config["PASSWORD_HASH_METHOD"])
