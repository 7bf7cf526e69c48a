"""Value types: key states, ciphers, and the immutable records the API returns.

The names and spellings are the library's (``keystate._native.STATES`` and
``CIPHERS``; a test checks they agree). Records are frozen dataclasses built
from the plain tuples the native module returns, in the same field order.
"""

from __future__ import annotations

import enum
from collections import abc
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
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
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _StrEnum(str, enum.Enum):
    """A ``str`` whose value is the library's name (``str()``, ``format()`` and ``==`` use it)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class KeyState(_StrEnum):
    """The state of a key record: ``KeyState.ACTIVE == "active"``.

    prelive -> active <-> inactive <-> deprecated <-> terminated, one step at a
    time (``keystate.can_transition``); what each allows: ``keystate.allowed_operations``.
    """

    PRELIVE = "prelive"
    ACTIVE = "active"
    INACTIVE = "inactive"
    DEPRECATED = "deprecated"
    TERMINATED = "terminated"


class Cipher(_StrEnum):
    """The cipher of a key group (fixed when the group is created)."""

    AES_256_GCM = "AES_256_GCM"
    AES_128_GCM = "AES_128_GCM"
    CHACHA20_POLY1305 = "CHACHA20_POLY1305"


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, abc.Mapping):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in value.items()) + "}"
    return repr(value)


class _Record:
    """A readable one-line repr: enums by value, times in ISO 8601."""

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self))  # type: ignore[arg-type]
        return f"{type(self).__name__}({parts})"


@dataclass(frozen=True, repr=False)
class KeyInfo(_Record):
    """A key record (never its key material)."""

    tag: str
    """32 lowercase hex digits; names the key inside every ciphertext it made."""
    name: str
    group: str
    state: KeyState
    description: str
    created: datetime
    """When the key was created (UTC)."""
    modified: datetime
    """When the record last changed (UTC)."""
    recoverable: bool
    """True for a pass phrase key: its tag and pass phrase re-create it after deletion."""

    @classmethod
    def _from_native(cls, t: Tuple[str, str, str, str, str, int, int, bool]) -> KeyInfo:
        tag, name, group, state, description, created, modified, recoverable = t
        return cls(tag, name, group, KeyState(state), description, _time(created), _time(modified), recoverable)


@dataclass(frozen=True, repr=False)
class GroupInfo(_Record):
    """A key group: a cipher and the keys that share it, at most one of them active."""

    tag: str
    name: str
    cipher: Cipher
    description: str
    created: datetime
    modified: datetime
    active_key: Optional[str]
    """The name of the group's active key, if it has one."""

    @classmethod
    def _from_native(cls, t: Tuple[str, str, str, str, int, int, Optional[str]]) -> GroupInfo:
        tag, name, cipher, description, created, modified, active_key = t
        return cls(tag, name, Cipher(cipher), description, _time(created), _time(modified), active_key)


@dataclass(frozen=True, repr=False)
class RowFault(_Record):
    """A stored row that failed to load (tampered or corrupt), and why."""

    id: str
    message: str


@dataclass(frozen=True, repr=False)
class Stats(_Record):
    """Counts over a keystore, as of the call."""

    groups: int
    keys: int
    states: Mapping[str, int] = field(hash=False)
    """Keys per state, in lifecycle order (keys are ``KeyState`` members; look up by member or name)."""
    corrupt_rows: int
    """Rows that failed to load; ``Keystore.faults()`` says which and why."""
    quiesced: bool
    hmk_id: str
    kpk_id: str
    audit_entries: int
    """Entries in the audit trail (the sequence number of the last one)."""
    format_version: int
    path: str

    @classmethod
    def _from_native(cls, d: Mapping[str, Any]) -> Stats:
        counts: Dict[str, int] = {state: d["states"][state.value] for state in KeyState}
        states = MappingProxyType(counts)
        return cls(
            groups=d["groups"],
            keys=d["keys"],
            states=states,
            corrupt_rows=d["corrupt_rows"],
            quiesced=d["quiesced"],
            hmk_id=d["hmk_id"],
            kpk_id=d["kpk_id"],
            audit_entries=d["audit_entries"],
            format_version=d["format_version"],
            path=d["path"],
        )


class SkipReason(_StrEnum):
    """Why an import leaves a group or key out."""

    TAG_EXISTS = "tag-exists"
    """A key with the same tag is already in the keystore."""
    MATERIAL_EXISTS = "material-exists"
    """A key with the same key material is already there (or earlier in the container)."""
    GROUP_EXISTS = "group-exists"
    """Names preserved and a group of that name exists: groups are never merged."""
    NO_NEW_KEYS = "no-new-keys"
    """Every key of the group was skipped, so the group is not created."""


@dataclass(frozen=True, repr=False)
class Skip(_Record):
    """A skip and a sentence naming what is already there (never key material)."""

    reason: SkipReason
    detail: str


def _skip(t: Optional[Tuple[str, str]]) -> Optional[Skip]:
    return None if t is None else Skip(SkipReason(t[0]), t[1])


@dataclass(frozen=True, repr=False)
class ImportedGroup(_Record):
    """What an import does (or, previewed, would do) with one group of the container."""

    source_name: str
    """The group's name in the container."""
    name: str
    """Its name in this keystore (the source name when skipped)."""
    cipher: Cipher
    created: bool
    skipped: Optional[Skip]


@dataclass(frozen=True, repr=False)
class ImportedKey(_Record):
    """What an import does (or would do) with one key of the container."""

    source_group: str
    group: str
    """The key's group in this keystore."""
    name: str
    tag: str
    """Kept as it is, so data encrypted elsewhere still finds the key."""
    state: KeyState
    recoverable: bool
    imported: bool
    skipped: Optional[Skip]


@dataclass(frozen=True, repr=False)
class ImportReport(_Record):
    """Everything an import decided, in container order."""

    preview: bool
    """True when nothing was changed."""
    groups: Tuple[ImportedGroup, ...]
    keys: Tuple[ImportedKey, ...]

    @property
    def groups_created(self) -> Tuple[ImportedGroup, ...]:
        return tuple(g for g in self.groups if g.created)

    @property
    def keys_imported(self) -> Tuple[ImportedKey, ...]:
        return tuple(k for k in self.keys if k.imported)

    @property
    def keys_skipped(self) -> Tuple[ImportedKey, ...]:
        return tuple(k for k in self.keys if not k.imported)

    @classmethod
    def _from_native(cls, t: Tuple[bool, Any, Any]) -> ImportReport:
        preview, groups, keys = t
        return cls(
            preview,
            tuple(ImportedGroup(s, n, Cipher(c), created, _skip(sk)) for s, n, c, created, sk in groups),
            tuple(
                ImportedKey(sg, g, n, tag, KeyState(st), rec, imp, _skip(sk)) for sg, g, n, tag, st, rec, imp, sk in keys
            ),
        )


# ---- administration ---------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class AuditEntry(_Record):
    """One entry of the audit trail: who changed what, when."""

    seq: int
    """Position in the trail: 1, 2, 3, ... with no gaps."""
    time: datetime
    action: str
    """``create``, ``create-group``, ``set-state``, ``rotate-hmk``, ... (the operation's name)."""
    actor: str
    group: Optional[str]
    key: Optional[str]
    key_tag: Optional[str]
    old_state: Optional[KeyState]
    """The key's state before (``None``: it did not exist)."""
    new_state: Optional[KeyState]
    """The key's state after (``None``: it was deleted)."""
    detail: str
    hash: str
    """This entry's chain hash (64 hex digits)."""

    @classmethod
    def _from_native(cls, t: Tuple[Any, ...]) -> AuditEntry:
        seq, time, action, actor, group, key, key_tag, old, new, detail, hash_ = t
        state = lambda s: None if s is None else KeyState(s)  # noqa: E731
        return cls(seq, _time(time), action, actor, group, key, key_tag, state(old), state(new), detail, hash_)


@dataclass(frozen=True, repr=False)
class AuditFault(_Record):
    """The first audit entry that cannot be trusted."""

    problem: str
    """``edited``, ``removed`` or ``reordered``."""
    seq: int
    row_id: str
    message: str


@dataclass(frozen=True, repr=False)
class AuditReport(_Record):
    """What ``Keystore.verify_audit()`` found."""

    verified: int
    """Entries that verified, from the first on, before any fault."""
    head_seq: int
    head_hash: str
    """The chain head: record it elsewhere to detect the keystore being replaced by an older copy."""
    fault: Optional[AuditFault]

    @property
    def intact(self) -> bool:
        return self.fault is None

    @classmethod
    def _from_native(cls, t: Tuple[Any, ...]) -> AuditReport:
        verified, head_seq, head_hash, fault = t
        return cls(verified, head_seq, head_hash, None if fault is None else AuditFault(*fault))
