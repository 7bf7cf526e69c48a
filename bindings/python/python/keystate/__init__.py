"""keystate: an embeddable key management service.

Key groups and key records with the lifecycle of an enterprise backup KMS
(prelive, active, inactive, deprecated, terminated), pass phrase keys that can
be recovered, and authenticated, chunked encryption of data at rest. Every rule
and all the crypto run inside a sandboxed WebAssembly component, hosted by the
``keystate`` Rust crate; this package is a thin layer over it.

    import keystate

    with keystate.Keystore.create("keys.db") as ks:   # random HMK/KPK in key files beside it
        ks.create_group("backups")
        ks.create_key("backups", "k1", state=keystate.KeyState.ACTIVE)
        sealed = ks.encrypt("backups", b"data", aad=b"image-17")
        assert ks.decrypt(sealed, aad=b"image-17") == b"data"
"""

from __future__ import annotations

from typing import Set, Union

from . import _errors, _native
from ._errors import (
    AlreadyExists,
    IntegrityError,
    InternalError,
    InvalidArgument,
    InvalidTransition,
    KeystateError,
    KeyUnusable,
    NotDeletable,
    NotFound,
    Quiesced,
    StorageError,
    WrongPassphrase,
)
from ._keystore import Batch, Keystore
from ._types import (
    AuditEntry,
    AuditFault,
    AuditReport,
    Cipher,
    GroupInfo,
    ImportedGroup,
    ImportedKey,
    ImportReport,
    KeyInfo,
    KeyState,
    RowFault,
    Skip,
    SkipReason,
    Stats,
)

__version__: str = _native.VERSION

__all__ = [
    "Batch",
    "Keystore",
    "KeyState",
    "Cipher",
    "KeyInfo",
    "GroupInfo",
    "Stats",
    "RowFault",
    "SkipReason",
    "Skip",
    "ImportedGroup",
    "ImportedKey",
    "ImportReport",
    "AuditEntry",
    "AuditFault",
    "AuditReport",
    "can_transition",
    "allowed_operations",
    *_errors.__all__,
]


def can_transition(from_state: Union[KeyState, str], to_state: Union[KeyState, str]) -> bool:
    """May a key move from ``from_state`` to ``to_state``? Staying put is allowed.
    The component answers; an unknown state name raises ``InvalidArgument``."""
    return bool(_native.can_transition(from_state, to_state))


def allowed_operations(state: Union[KeyState, str]) -> Set[str]:
    """The operations a key in ``state`` allows: a subset of {"encrypt", "decrypt", "delete"}."""
    return set(_native.allowed_operations(state))
