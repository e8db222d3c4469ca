"""SQLAlchemy entities; importing this package registers every table on the metadata."""

from app.models.api_token import ApiToken
from app.models.auth_session import AuthSession
from app.models.resumable_upload import ResumableUpload
from app.models.upload import Upload, UploadTag, Visibility
from app.models.user import Role, User, UserRole

__all__ = [
    "ApiToken",
    "AuthSession",
    "ResumableUpload",
    "Role",
    "Upload",
    "UploadTag",
    "User",
    "UserRole",
    "Visibility",
]
