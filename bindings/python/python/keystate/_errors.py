"""The exceptions of keystate: one base class and one class per kind of error.

The library (the ``keystate`` Rust crate, and the component inside it) reports
every error with a kind, whose stable code is e.g. ``KEY_UNUSABLE``, and a
message naming the key, group and states involved. The native module raises
the class registered here for that code (``_BY_CODE``), with the library's
message, so this table is the only mapping between the two.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Type

__all__ = [
    "KeystateError",
    "NotFound",
    "AlreadyExists",
    "InvalidTransition",
    "KeyUnusable",
    "NotDeletable",
    "WrongPassphrase",
    "IntegrityError",
    "Quiesced",
    "InvalidArgument",
    "StorageError",
    "InternalError",
]


class KeystateError(Exception):
    """Base class of every keystate error.

    ``code`` is the library's stable code of the kind (``"NOT_FOUND"``, ...);
    ``str(error)`` is the library's message. Using a closed ``Keystore`` raises
    this base class with code ``"CLOSED"``.
    """

    code: str = "ERROR"

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        if code is not None and code != type(self).code:
            self.code = code

    @property
    def message(self) -> str:
        """The library's message."""
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> Tuple[Type[KeystateError], Tuple[str, str]]:
        return (type(self), (self.message, self.code))


class NotFound(KeystateError, LookupError):
    """No group, key, key tag or keystore (file) of that name."""

    code = "NOT_FOUND"


class AlreadyExists(KeystateError):
    """A group, key name, key tag or keystore file already exists."""

    code = "ALREADY_EXISTS"


class InvalidTransition(KeystateError):
    """The lifecycle forbids the state change (or creating/recovering a key in that state)."""

    code = "INVALID_TRANSITION"


class KeyUnusable(KeystateError):
    """The key's state forbids the use, or the group has no active key to encrypt with."""

    code = "KEY_UNUSABLE"


class NotDeletable(KeystateError):
    """Only prelive and terminated keys, and only empty groups, may be deleted."""

    code = "NOT_DELETABLE"


class WrongPassphrase(KeystateError):
    """A pass phrase or key file does not match (a random key's tag never matches one)."""

    code = "WRONG_PASSPHRASE"


class IntegrityError(KeystateError):
    """Tampered, truncated or corrupt data, rows or files; or the wrong associated data."""

    code = "INTEGRITY"


class Quiesced(KeystateError):
    """The keystore is quiesced (read-only): mutations are refused until ``unquiesce()``."""

    code = "QUIESCED"


class InvalidArgument(KeystateError, ValueError):
    """A malformed argument: an unknown state or cipher name, a bad name, tag or description."""

    code = "INVALID_ARGUMENT"


class StorageError(KeystateError):
    """The storage failed: disk full, read-only file, database locked too long, I/O error."""

    code = "STORAGE"


class InternalError(KeystateError):
    """The sandboxed component trapped or hit a limit; it was rebuilt from storage."""

    code = "INTERNAL"


_BY_CODE: Dict[str, Type[KeystateError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        InvalidTransition,
        KeyUnusable,
        NotDeletable,
        WrongPassphrase,
        IntegrityError,
        Quiesced,
        InvalidArgument,
        StorageError,
        InternalError,
    )
}
