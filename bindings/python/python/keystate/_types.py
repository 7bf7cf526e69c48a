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

__all__ = ["KeyState", "Cipher", "KeyInfo", "GroupInfo", "Stats", "RowFault", "AuditEntry", "AuditFault", "AuditReport"]

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
