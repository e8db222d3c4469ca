"""Password hashing with a slow KDF (Werkzeug's scrypt), including a decoy for unknown users."""

from __future__ import annotations

import secrets

from werkzeug.security import check_password_hash, generate_password_hash


class PasswordHasher:
    """Hashes and checks passwords with the configured Werkzeug method."""

    def __init__(self, method: str) -> None:
        self.method = method
        # Checked when the email is unknown, so that answer takes as long as a wrong password.
        self._decoy_hash = generate_password_hash(secrets.token_urlsafe(16), method=method)

    def hash(self, password: str) -> str:
        return generate_password_hash(password, method=self.method)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Check `password`; with no hash, spend the same time and answer False."""
        if password_hash is None:
            check_password_hash(self._decoy_hash, password)
            return False
        return check_password_hash(password_hash, password)
