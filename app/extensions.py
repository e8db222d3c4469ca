"""Flask extension singletons, created unbound here and bound to the app in the factory."""

from flask_httpauth import HTTPTokenAuth
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints so Alembic can alter them on every database, SQLite included.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# expire_on_commit=False: services commit inside the transaction manager and return models
# that views marshal afterwards, detached (see app.transactions); expired ones could not load.
db = SQLAlchemy(
    metadata=MetaData(naming_convention=NAMING_CONVENTION),
    session_options={"expire_on_commit": False},
)
migrate = Migrate()
token_auth = HTTPTokenAuth(scheme="Bearer")


class AppScopedLimiter(Limiter):
    """Flask-Limiter's Limiter, taking every setting from the app it is initialised with.

    Limiter keeps the first app's key prefix, storage options and error handling for good,
    and carries its "storage is down" state over to the next app. Production runs one app
    per process, but the tests build many (and two "replicas" in one process): each must
    count with exactly its own settings.
    """

    def init_app(self, app) -> None:
        self._key_prefix = ""
        self._storage_options = {}
        self._swallow_errors = None
        self._headers_enabled = None
        self._retry_after = None
        self._storage_dead = False
        self._in_memory_fallback_enabled = False
        super().init_app(app)


limiter = AppScopedLimiter(key_func=get_remote_address)
