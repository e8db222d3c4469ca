"""Domain exceptions raised by services; `app.errors` turns each into one JSON error shape.

Services speak only in these terms and never in HTTP ones, so the same rules can run from
the API, the CLI or a test without a request.
"""

from __future__ import annotations


class DepotError(Exception):
    """Base of every domain error: a stable machine-readable code and a human message."""

    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, fields: dict | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.fields = fields


class Invalid(DepotError):
    """The input is well-formed but breaks a rule (a wrong current password, say)."""

    code = "validation_failed"
    default_message = "The request is invalid."


class Malformed(DepotError):
    """The request body cannot be parsed (broken JSON or multipart, a truncated body)."""

    code = "bad_request"
    default_message = "The request body is malformed."


class BodyTimeout(DepotError):
    """The request body stopped arriving: nothing came for `seconds` while it was read."""

    code = "body_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request body stopped arriving for {seconds:g} s; nothing was stored.")
        self.seconds = seconds


class AuthenticationFailed(DepotError):
    """Credentials or a token were missing, wrong, expired or revoked."""

    code = "unauthorized"
    default_message = "Authentication is required."


class Forbidden(DepotError):
    """The caller is known but may not do this."""

    code = "forbidden"
    default_message = "You are not allowed to do this."


class RegistrationClosed(Forbidden):
    """Self-service sign-up is switched off."""

    code = "registration_closed"
    default_message = "Registration is disabled on this server."


class NotFound(DepotError):
    """The resource does not exist, or the caller may not know that it does."""

    code = "not_found"
    default_message = "The resource was not found."


class Conflict(DepotError):
    """The request contradicts the current state (a taken email, the last admin)."""

    code = "conflict"
    default_message = "The request conflicts with the current state."


class Gone(DepotError):
    """The resource existed and has expired (a resumable upload past its Upload-Expires)."""

    code = "gone"
    default_message = "The resource has expired."


class Locked(DepotError):
    """Another request is changing the resource right now (a PATCH of the same resumable upload)."""

    code = "locked"
    default_message = "The resource is being changed by another request; try again shortly."


class ChecksumMismatch(DepotError):
    """A tus PATCH body whose Upload-Checksum did not match: its bytes were not kept."""

    code = "checksum_mismatch"
    default_message = "The body does not match its checksum."


class TusVersionUnsupported(DepotError):
    """A tus request without `Tus-Resumable: <supported>`; the answer names the version."""

    code = "tus_version_unsupported"

    def __init__(self, supported: str) -> None:
        super().__init__(f"Send Tus-Resumable: {supported}; it is the tus version this server speaks.")
        self.supported = supported


class TooLarge(DepotError):
    """A size or quota limit would be exceeded."""

    code = "payload_too_large"
    default_message = "The request is too large."


class Unsupported(DepotError):
    """The content type or format is not accepted."""

    code = "unsupported_media_type"
    default_message = "This media type is not supported."


class TooManyUploads(DepotError):
    """The caller already has as many uploads in progress as it may (per account or per
    address); `retry_after` says when to try again, in seconds."""

    code = "too_many_uploads"
    default_message = "Too many uploads are in progress; wait for one to finish, then send this again."

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DepotError):
    """A dependency (database, file store) is not answering."""

    code = "unavailable"
    default_message = "The service is temporarily unavailable."


class OutcomeUnknown(Unavailable):
    """A change whose commit failed in a way that leaves open whether it was stored."""

    code = "outcome_unknown"
    default_message = "The outcome of this request is unknown; check before repeating it."
