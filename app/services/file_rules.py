"""What a stored file may be called and contain: filename sanitizing and type checks.

The stored object's key is always generated; the client's filename is kept only as display
metadata, cleaned here. A file is accepted when its extension is allowed and its declared
type and leading bytes agree with that extension. The content type Depot serves is derived
from the extension, never taken from the client.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

import filetype

from app.exceptions import Invalid, Unsupported

MAX_FILENAME_CHARS = 255
# A name longer than this is refused outright rather than cut (likely an attack or a bug).
MAX_RAW_FILENAME_CHARS = 1024

# Types Depot names itself, so the answer does not depend on the host's mime.types.
CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "zip": "application/zip",
    "gz": "application/gzip",
    "txt": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "md": "text/markdown",
}
# Extensions whose files must start with the signature of their type.
BINARY_SIGNATURES = {
    "png": {"image/png"},
    "jpg": {"image/jpeg"},
    "jpeg": {"image/jpeg"},
    "gif": {"image/gif"},
    "webp": {"image/webp"},
    "pdf": {"application/pdf"},
    "zip": {"application/zip"},
    "gz": {"application/gzip"},
}
TEXT_EXTENSIONS = {"txt", "csv", "json", "md"}
# Declared types any client may send for any file.
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
# Other names browsers and operating systems give the same types: a browser reports the type
# the OS associates with the extension (on Windows, from the registry, so a .csv is Excel's
# `application/vnd.ms-excel` wherever Office is installed). Each alias counts only for its
# own extensions' type; the type Depot serves is still the canonical one above.
TYPE_ALIASES = {
    "text/csv": {
        "application/vnd.ms-excel",
        "application/csv",
        "application/x-csv",
        "text/comma-separated-values",
        "text/x-comma-separated-values",
        "text/x-csv",
    },
    "application/zip": {"application/x-zip-compressed", "application/x-zip", "multipart/x-zip"},
    "application/gzip": {"application/x-gzip", "application/x-gunzip", "application/gzip-compressed"},
    "image/jpeg": {"image/pjpeg", "image/jpg"},
    "image/png": {"image/x-png", "image/apng"},
    "application/pdf": {"application/x-pdf", "application/acrobat"},
    "text/markdown": {"text/x-markdown"},
    "application/json": {"text/json", "application/x-json"},
}

_MARKUP = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<script|<svg|<\?xml|<iframe|<object)", re.IGNORECASE)


def _is_utf8_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # The head may end inside a character; only an error in its last 3 bytes is allowed.
        return error.start >= len(head) - 3 and error.reason == "unexpected end of data"
    return True


def _strip_invisible(name: str) -> str:
    # Control, format (bidi marks, zero-width), separator-line and surrogate characters.
    return "".join(c for c in name if unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp", "Cs"})


def sanitize_filename(raw: str | None) -> str:
    """A display name without path parts, control or bidi characters, at most 255 characters."""
    if raw is None or not raw.strip():
        raise Invalid("The file has no name.", fields={"file": ["A filename is required."]})
    if len(raw) > MAX_RAW_FILENAME_CHARS:
        raise Invalid("The filename is too long.", fields={"file": [f"At most {MAX_FILENAME_CHARS} characters."]})
    name = unicodedata.normalize("NFC", raw)
    name = _strip_invisible(name)
    name = re.split(r"[/\\]", name)[-1]  # drop path parts, POSIX and Windows alike
    name = name.split(":")[-1]  # and drive letters or alternate data streams
    name = name.strip().lstrip(".").strip()
    if not name:
        raise Invalid("The filename has nothing usable in it.", fields={"file": ["A filename is required."]})
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        keep = ("." + ext) if dot and len(ext) <= 16 else ""
        name = name[: MAX_FILENAME_CHARS - len(keep)] + keep
    return name


def extension_of(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def content_type_for_name(filename: str, declared_type: str | None, allowed: tuple[str, ...]) -> str:
    """The content type a file of this name must have; Unsupported if the name or declared type is refused.

    Checked as soon as the file's headers arrive, before its bytes are read.
    """
    ext = extension_of(filename)
    if not ext or ext not in allowed:
        raise Unsupported(
            f"Files of type '.{ext}' are not accepted." if ext else "Files without an extension are not accepted.",
            fields={"file": [f"Allowed extensions: {', '.join(allowed)}."]},
        )
    expected = CONTENT_TYPES.get(ext) or mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared not in GENERIC_TYPES and declared != expected and declared not in TYPE_ALIASES.get(expected, ()):
        raise Unsupported(
            f"The declared type '{declared}' does not match a '.{ext}' file ({expected}).",
            fields={"file": ["Declared type and extension disagree."]},
        )
    return expected


def check_leading_bytes(filename: str, expected: str, head: bytes) -> None:
    """Unsupported if the file's first bytes contradict its extension (PNG bytes named .pdf, HTML as .png)."""
    ext = extension_of(filename)
    sniffed = filetype.guess_mime(head) if head else None
    if ext in BINARY_SIGNATURES:
        if sniffed not in BINARY_SIGNATURES[ext]:
            raise Unsupported(
                f"The file's content is not {expected}.", fields={"file": ["Content and extension disagree."]}
            )
    elif ext in TEXT_EXTENSIONS:
        # Magic numbers mean nothing for text ("BMW,Audi" starts like a BMP): require UTF-8
        # text that is not markup instead.
        if not _is_utf8_text(head) or _MARKUP.match(head):
            raise Unsupported(
                f"The file's content is not {expected}.", fields={"file": ["Content and extension disagree."]}
            )
    elif sniffed is not None and sniffed != expected:
        raise Unsupported(f"The file's content is {sniffed}, not {expected}.")
