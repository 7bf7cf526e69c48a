"""Type stubs for keystate (the whole public surface)."""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import TracebackType
from contextlib import AbstractContextManager
from typing import Iterable, Mapping, Optional, Protocol, Union

from _typeshed import ReadableBuffer, StrOrBytesPath

__version__: str
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

# ---- values ---------------------------------------------------------------------------

class KeyState(str, Enum):
    """The state of a key record: ``KeyState.ACTIVE == "active"``."""

    PRELIVE = "prelive"
    ACTIVE = "active"
    INACTIVE = "inactive"
    DEPRECATED = "deprecated"
    TERMINATED = "terminated"

class Cipher(str, Enum):
    """The cipher of a key group."""

    AES_256_GCM = "AES_256_GCM"
    AES_128_GCM = "AES_128_GCM"
    CHACHA20_POLY1305 = "CHACHA20_POLY1305"

@dataclass(frozen=True, repr=False)
class KeyInfo:
    """A key record (never its key material)."""

    tag: str
    name: str
    group: str
    state: KeyState
    description: str
    created: datetime
    modified: datetime
    recoverable: bool

@dataclass(frozen=True, repr=False)
class GroupInfo:
    """A key group."""

    tag: str
    name: str
    cipher: Cipher
    description: str
    created: datetime
    modified: datetime
    active_key: Optional[str]

@dataclass(frozen=True, repr=False)
class RowFault:
    """A stored row that failed to load, and why."""

    id: str
    message: str

@dataclass(frozen=True, repr=False)
class Stats:
    """Counts over a keystore."""

    groups: int
    keys: int
    states: Mapping[str, int]
    corrupt_rows: int
    quiesced: bool
    hmk_id: str
    kpk_id: str
    audit_entries: int
    format_version: int
    path: str

class SkipReason(str, Enum):
    """Why an import leaves a group or key out."""

    TAG_EXISTS = "tag-exists"
    MATERIAL_EXISTS = "material-exists"
    GROUP_EXISTS = "group-exists"
    NO_NEW_KEYS = "no-new-keys"

@dataclass(frozen=True, repr=False)
class Skip:
    """A skip and a sentence naming what is already there."""

    reason: SkipReason
    detail: str

@dataclass(frozen=True, repr=False)
class ImportedGroup:
    """What an import does (or would do) with one group of the container."""

    source_name: str
    name: str
    cipher: Cipher
    created: bool
    skipped: Optional[Skip]

@dataclass(frozen=True, repr=False)
class ImportedKey:
    """What an import does (or would do) with one key of the container."""

    source_group: str
    group: str
    name: str
    tag: str
    state: KeyState
    recoverable: bool
    imported: bool
    skipped: Optional[Skip]

@dataclass(frozen=True, repr=False)
class ImportReport:
    """Everything an import decided, in container order."""

    preview: bool
    groups: tuple[ImportedGroup, ...]
    keys: tuple[ImportedKey, ...]
    @property
    def groups_created(self) -> tuple[ImportedGroup, ...]: ...
    @property
    def keys_imported(self) -> tuple[ImportedKey, ...]: ...
    @property
    def keys_skipped(self) -> tuple[ImportedKey, ...]: ...

@dataclass(frozen=True, repr=False)
class AuditEntry:
    """One entry of the audit trail: who changed what, when."""

    seq: int
    time: datetime
    action: str
    actor: str
    group: Optional[str]
    key: Optional[str]
    key_tag: Optional[str]
    old_state: Optional[KeyState]
    new_state: Optional[KeyState]
    detail: str
    hash: str

@dataclass(frozen=True, repr=False)
class AuditFault:
    """The first audit entry that cannot be trusted."""

    problem: str
    seq: int
    row_id: str
    message: str

@dataclass(frozen=True, repr=False)
class AuditReport:
    """What ``Keystore.verify_audit()`` found."""

    verified: int
    head_seq: int
    head_hash: str
    fault: Optional[AuditFault]
    @property
    def intact(self) -> bool: ...

# ---- errors ---------------------------------------------------------------------------

class KeystateError(Exception):
    """Base class of every keystate error; ``code`` is the library's code of its kind."""

    code: str
    def __init__(self, message: str, code: Optional[str] = None) -> None: ...
    @property
    def message(self) -> str: ...

class NotFound(KeystateError, LookupError): ...
class AlreadyExists(KeystateError): ...
class InvalidTransition(KeystateError): ...
class KeyUnusable(KeystateError): ...
class NotDeletable(KeystateError): ...
class WrongPassphrase(KeystateError): ...
class IntegrityError(KeystateError): ...
class Quiesced(KeystateError): ...
class InvalidArgument(KeystateError, ValueError): ...
class StorageError(KeystateError): ...
class InternalError(KeystateError): ...

# ---- the keystore ---------------------------------------------------------------------

class _BinaryReader(Protocol):
    """A binary file object opened for reading (``open(p, "rb")``, ``io.BytesIO``, ...)."""

    def read(self, size: int, /) -> Union[bytes, bytearray]: ...

class _BinaryWriter(Protocol):
    """A binary file object opened for writing (``open(p, "wb")``, ``io.BytesIO``, ...)."""

    def write(self, data: bytes, /) -> object: ...

_State = Union[KeyState, str]

class Batch:
    """Mutations recorded in ``with keystore.batch() as b:`` and committed as one."""

    results: list[Union[GroupInfo, KeyInfo, None]]
    def __init__(self) -> None: ...
    def create_group(self, name: str, cipher: Union[Cipher, str] = ..., description: str = "") -> None: ...
    def create_key(
        self, group: str, name: str, state: _State = ..., passphrase: Optional[str] = None, description: str = ""
    ) -> None: ...
    def set_state(self, group: str, name: str, state: _State) -> None: ...
    def delete_key(self, group: str, name: str) -> None: ...

class Keystore:
    """An open keystore; make one with ``Keystore.create`` or ``Keystore.open``."""

    @classmethod
    def create(
        cls,
        path: StrOrBytesPath,
        hmk_passphrase: Optional[str] = None,
        kpk_passphrase: Optional[str] = None,
        *,
        actor: Optional[str] = None,
    ) -> Keystore: ...
    @classmethod
    def open(
        cls,
        path: StrOrBytesPath,
        hmk_passphrase: Optional[str] = None,
        kpk_passphrase: Optional[str] = None,
        *,
        actor: Optional[str] = None,
    ) -> Keystore: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    def __enter__(self) -> Keystore: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
        /,
    ) -> None: ...

    # groups
    def create_group(self, name: str, cipher: Union[Cipher, str] = ..., description: str = "") -> GroupInfo: ...
    def groups(self) -> list[GroupInfo]: ...
    def group(self, name: str) -> GroupInfo: ...
    def modify_group(self, name: str, new_name: Optional[str] = None, description: Optional[str] = None) -> GroupInfo: ...
    def delete_group(self, name: str) -> None: ...

    # keys
    def create_key(
        self,
        group: str,
        name: str,
        state: _State = ...,
        passphrase: Optional[str] = None,
        description: str = "",
    ) -> KeyInfo: ...
    def keys(self, group: Optional[str] = None, state: Optional[_State] = None) -> list[KeyInfo]: ...
    def key(self, group: str, name: str) -> KeyInfo: ...
    def key_by_tag(self, tag: str) -> KeyInfo: ...
    def set_state(self, group: str, name: str, state: _State) -> KeyInfo: ...
    def modify_key(self, group: str, name: str, new_name: Optional[str] = None, description: Optional[str] = None) -> KeyInfo: ...
    def delete_key(self, group: str, name: str) -> None: ...
    def batch(self) -> AbstractContextManager[Batch]: ...
    def recover_key(self, group: str, name: str, tag: str, passphrase: str, state: _State = ...) -> KeyInfo: ...

    # the keystore
    def quiesce(self) -> None: ...
    def unquiesce(self) -> None: ...
    def stats(self) -> Stats: ...
    def faults(self) -> list[RowFault]: ...

    # export and import
    def export_groups(self, passphrase: str, groups: Optional[Iterable[str]] = None) -> bytes: ...
    def export_to_file(self, path: StrOrBytesPath, passphrase: str, groups: Optional[Iterable[str]] = None) -> int: ...
    def import_groups(
        self, container: ReadableBuffer, passphrase: str, *, preserve_names: bool = False, preview: bool = False
    ) -> ImportReport: ...
    def preview_import(self, container: ReadableBuffer, passphrase: str, *, preserve_names: bool = False) -> ImportReport: ...
    def import_file(
        self, path: StrOrBytesPath, passphrase: str, *, preserve_names: bool = False, preview: bool = False
    ) -> ImportReport: ...

    # administration
    @property
    def actor(self) -> str: ...
    def set_actor(self, actor: str) -> None: ...
    def audit(
        self,
        group: Optional[str] = None,
        key: Optional[str] = None,
        action: Optional[str] = None,
        since: Optional[datetime] = None,
        limit: Optional[int] = None,
    ) -> list[AuditEntry]: ...
    def verify_audit(self) -> AuditReport: ...
    def rotate_hmk(self, passphrase: Optional[str] = None, id: Optional[str] = None) -> None: ...
    def rotate_kpk(self, passphrase: Optional[str] = None, id: Optional[str] = None) -> None: ...

    # data
    def encrypt(self, group: str, data: ReadableBuffer, aad: ReadableBuffer = b"") -> bytes: ...
    def decrypt(self, ciphertext: ReadableBuffer, aad: ReadableBuffer = b"") -> bytes: ...
    def encrypt_file(
        self,
        group: str,
        src: Union[StrOrBytesPath, _BinaryReader],
        dst: Union[StrOrBytesPath, _BinaryWriter],
        aad: ReadableBuffer = b"",
    ) -> int: ...
    def decrypt_file(
        self,
        src: Union[StrOrBytesPath, _BinaryReader],
        dst: Union[StrOrBytesPath, _BinaryWriter],
        aad: ReadableBuffer = b"",
    ) -> int: ...

# ---- the rules, as the component states them ---------------------------------------------

def can_transition(from_state: _State, to_state: _State) -> bool: ...
def allowed_operations(state: _State) -> set[str]: ...
