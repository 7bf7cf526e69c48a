"""``Keystore``: the Python face of ``keystate::Keystore``.

Each method converts its arguments (states and ciphers as names, paths as
strings, bytes-like data as bytes) and calls the native handle, which runs the
library with the GIL released; results come back as the records of
``keystate._types``. No rule is decided here: the component decides, and its
errors arrive as the exceptions of ``keystate._errors``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, List, Optional, Tuple, Union

from . import _native
from ._types import AuditEntry, AuditReport, Cipher, GroupInfo, ImportReport, KeyInfo, KeyState, RowFault, Stats

__all__ = ["Batch", "Keystore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _path(path: Any) -> str:
    """A path argument as a str (os.PathLike and bytes paths too)."""
    return os.fsdecode(path)


def _buf(data: Any, what: str) -> Union[bytes, bytearray]:
    """Any bytes-like object as bytes (bytes pass through without a copy)."""
    if isinstance(data, (bytes, bytearray)):
        return data
    try:
        return memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not {type(data).__name__}") from None


def _name(value: Any) -> str:
    """A state or cipher argument: a KeyState/Cipher or its name (the library checks the name)."""
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a state or cipher name (str), not {type(value).__name__}")


def _groups(groups: Optional[Iterable[str]]) -> Optional[List[str]]:
    """A group selection: ``None`` (every group) or the names (a lone str is one name)."""
    if groups is None:
        return None
    if isinstance(groups, str):
        return [groups]
    return list(groups)


def _end(end: Any, method: str) -> Any:
    """A file argument: a binary file object (it has ``read``/``write``) as it is, else a path as a str."""
    return end if hasattr(end, method) else _path(end)


_BatchOp = Tuple[str, str, str, Optional[str], Optional[str], str]


class Batch:
    """The mutations of one ``with keystore.batch() as b:`` block, recorded as
    they are called and committed together when the block ends: all of them,
    or (an error in any, or an exception in the block) none. A thousand keys
    cost one durable commit instead of a thousand.

    Each mutation takes effect for the ones after it (a key can be created in
    a group made earlier in the batch). ``results`` holds, once committed,
    one entry per call: the ``GroupInfo`` or ``KeyInfo`` it made or moved, or
    ``None`` for a deletion."""

    def __init__(self) -> None:
        self._ops: List[_BatchOp] = []
        self.results: List[Union[GroupInfo, KeyInfo, None]] = []

    def create_group(self, name: str, cipher: Union[Cipher, str] = Cipher.AES_256_GCM, description: str = "") -> None:
        self._ops.append(("create_group", "", name, _name(cipher), None, description))

    def create_key(
        self,
        group: str,
        name: str,
        state: Union[KeyState, str] = KeyState.PRELIVE,
        passphrase: Optional[str] = None,
        description: str = "",
    ) -> None:
        self._ops.append(("create_key", group, name, _name(state), passphrase, description))

    def set_state(self, group: str, name: str, state: Union[KeyState, str]) -> None:
        self._ops.append(("set_state", group, name, _name(state), None, ""))

    def delete_key(self, group: str, name: str) -> None:
        self._ops.append(("delete_key", group, name, None, None, ""))


class Keystore:
    """An open keystore: key groups, key records and the data they protect.

    Make one with ``Keystore.create(path)`` or ``Keystore.open(path)``. Safe to
    share between threads (the library serializes operations on one handle;
    the GIL is released while it works). Use it as a context manager, or call
    ``close()``; a closed keystore raises ``KeystateError`` (code ``"CLOSED"``).
    """

    __slots__ = ("_h",)

    _h: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use Keystore.create(path, ...) or Keystore.open(path, ...)")

    @classmethod
    def _wrap(cls, handle: Any) -> Keystore:
        ks = object.__new__(cls)
        ks._h = handle
        return ks

    @classmethod
    def create(
        cls,
        path: _Path,
        hmk_passphrase: Optional[str] = None,
        kpk_passphrase: Optional[str] = None,
        *,
        actor: Optional[str] = None,
    ) -> Keystore:
        """Create a new keystore at ``path``: a file, or a ``postgres://`` URL.

        A ``None`` pass phrase makes a random key kept in a key file beside it
        (``<path>.hmk`` for the HMK, which seals the keystore; ``<path>.kpk`` for
        the KPK, which wraps key material): back those up apart from the keystore.
        A URL keystore keeps key files only where its ``key_files=`` parameter says.
        ``actor`` names who makes this handle's changes in the audit trail
        (default: user@host).
        """
        return cls._wrap(_native.Handle.create(_path(path), hmk_passphrase, kpk_passphrase, actor))

    @classmethod
    def open(
        cls,
        path: _Path,
        hmk_passphrase: Optional[str] = None,
        kpk_passphrase: Optional[str] = None,
        *,
        actor: Optional[str] = None,
    ) -> Keystore:
        """Open the keystore at ``path``; give the pass phrases it was created with, if any.
        ``actor`` names who makes this handle's changes in the audit trail (default: user@host)."""
        return cls._wrap(_native.Handle.open(_path(path), hmk_passphrase, kpk_passphrase, actor))

    # ---- life ---------------------------------------------------------------------

    def close(self) -> None:
        """Let go of the keystore (idempotent). A call still running in another thread finishes."""
        self._h.close()

    @property
    def closed(self) -> bool:
        return bool(self._h.closed)

    @property
    def path(self) -> str:
        """The keystore file's path, or its URL without the password."""
        return str(self._h.path)

    def __enter__(self) -> Keystore:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self.closed else ""
        return f"<keystate.Keystore {self.path!r}{state}>"

    # ---- groups -------------------------------------------------------------------

    def create_group(self, name: str, cipher: Union[Cipher, str] = Cipher.AES_256_GCM, description: str = "") -> GroupInfo:
        """Create a key group; its cipher is fixed for good."""
        return GroupInfo._from_native(self._h.create_group(name, _name(cipher), description))

    def groups(self) -> List[GroupInfo]:
        """Every group, sorted by name."""
        return [GroupInfo._from_native(g) for g in self._h.groups()]

    def group(self, name: str) -> GroupInfo:
        return GroupInfo._from_native(self._h.group(name))

    def modify_group(self, name: str, new_name: Optional[str] = None, description: Optional[str] = None) -> GroupInfo:
        """Rename a group and/or change its description (``None`` leaves a field as it is)."""
        return GroupInfo._from_native(self._h.modify_group(name, new_name, description))

    def delete_group(self, name: str) -> None:
        """Delete an empty group (else ``NotDeletable``)."""
        self._h.delete_group(name)

    # ---- keys ---------------------------------------------------------------------

    def create_key(
        self,
        group: str,
        name: str,
        state: Union[KeyState, str] = KeyState.PRELIVE,
        passphrase: Optional[str] = None,
        description: str = "",
    ) -> KeyInfo:
        """Create a key, prelive or active (creating an active key bumps the group's
        active key to inactive). With a pass phrase the key is derived from it
        (Argon2id) and can be recovered from its tag and the pass phrase."""
        return KeyInfo._from_native(self._h.create_key(group, name, _name(state), passphrase, description))

    def keys(self, group: Optional[str] = None, state: Union[KeyState, str, None] = None) -> List[KeyInfo]:
        """Keys, optionally of one group and/or in one state, sorted by group and name."""
        state_name = None if state is None else _name(state)
        return [KeyInfo._from_native(k) for k in self._h.keys(group, state_name)]

    def key(self, group: str, name: str) -> KeyInfo:
        return KeyInfo._from_native(self._h.key(group, name))

    def key_by_tag(self, tag: str) -> KeyInfo:
        return KeyInfo._from_native(self._h.key_by_tag(tag))

    def set_state(self, group: str, name: str, state: Union[KeyState, str]) -> KeyInfo:
        """Move a key one adjacent step; activating bumps the group's active key to inactive."""
        return KeyInfo._from_native(self._h.set_state(group, name, _name(state)))

    def modify_key(self, group: str, name: str, new_name: Optional[str] = None, description: Optional[str] = None) -> KeyInfo:
        """Rename a key and/or change its description (``None`` leaves a field as it is)."""
        return KeyInfo._from_native(self._h.modify_key(group, name, new_name, description))

    def delete_key(self, group: str, name: str) -> None:
        """Delete a prelive or terminated key (else ``NotDeletable``)."""
        self._h.delete_key(group, name)

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Record mutations in the ``with`` block and commit them as one (see ``Batch``)::

            with ks.batch() as b:
                b.create_group("tapes")
                for i in range(1000):
                    b.create_key("tapes", f"tape-{i}")
        """
        batch = Batch()
        yield batch  # an exception in the block propagates here: nothing is committed
        done = self._h.apply_batch(batch._ops)
        batch._ops = []
        batch.results = [
            GroupInfo._from_native(g) if g is not None else KeyInfo._from_native(k) if k is not None else None
            for g, k in done
        ]

    def recover_key(
        self, group: str, name: str, tag: str, passphrase: str, state: Union[KeyState, str] = KeyState.INACTIVE
    ) -> KeyInfo:
        """Re-create a deleted pass phrase key from its tag and pass phrase, in any
        state but prelive (``WrongPassphrase`` if they do not match)."""
        return KeyInfo._from_native(self._h.recover_key(group, name, tag, passphrase, _name(state)))

    # ---- keystore -----------------------------------------------------------------

    def quiesce(self) -> None:
        """Make the keystore read-only for every process (mutations raise ``Quiesced``)."""
        self._h.quiesce()

    def unquiesce(self) -> None:
        self._h.unquiesce()

    def stats(self) -> Stats:
        return Stats._from_native(self._h.stats())

    def faults(self) -> List[RowFault]:
        """Rows that failed to load (tampered or corrupt), with why."""
        return [RowFault(id, message) for id, message in self._h.faults()]

    # ---- export and import --------------------------------------------------------

    def export_groups(self, passphrase: str, groups: Optional[Iterable[str]] = None) -> bytes:
        """Seal the named groups (all when ``None``) with all their keys into an export
        container protected by ``passphrase``. Changes nothing. The container holds key
        material: guard it like the keys."""
        return bytes(self._h.export_groups(passphrase, _groups(groups)))

    def export_to_file(self, path: _Path, passphrase: str, groups: Optional[Iterable[str]] = None) -> int:
        """``export_groups`` into a file that appears only when complete, readable by its
        owner only. Returns its size."""
        return int(self._h.export_to_file(_path(path), passphrase, _groups(groups)))

    def import_groups(
        self, container: Any, passphrase: str, *, preserve_names: bool = False, preview: bool = False
    ) -> ImportReport:
        """Import an export container, all or nothing. Each group becomes a new group,
        named ``<name>_<YYYYMMDDTHHMMSSZ>`` unless ``preserve_names`` (then a group whose
        name exists is skipped, never merged); keys whose tag or key material is already
        here are skipped. ``preview`` only reports. Raises ``WrongPassphrase`` for a wrong
        pass phrase, ``IntegrityError`` for anything but an intact container."""
        native = self._h.import_groups(_buf(container, "container"), passphrase, preserve_names, preview)
        return ImportReport._from_native(native)

    def preview_import(self, container: Any, passphrase: str, *, preserve_names: bool = False) -> ImportReport:
        """What ``import_groups`` would do; changes nothing."""
        return self.import_groups(container, passphrase, preserve_names=preserve_names, preview=True)

    def import_file(
        self, path: _Path, passphrase: str, *, preserve_names: bool = False, preview: bool = False
    ) -> ImportReport:
        """``import_groups`` from a container file."""
        return ImportReport._from_native(self._h.import_file(_path(path), passphrase, preserve_names, preview))

    # ---- administration -----------------------------------------------------------

    @property
    def actor(self) -> str:
        """Who this handle's changes are recorded under in the audit trail."""
        return str(self._h.actor)

    def set_actor(self, actor: str) -> None:
        """Name who makes the following changes (1-255 bytes, no control characters)."""
        self._h.set_actor(actor)

    def audit(
        self,
        group: Optional[str] = None,
        key: Optional[str] = None,
        action: Optional[str] = None,
        since: Optional[datetime] = None,
        limit: Optional[int] = None,
    ) -> List[AuditEntry]:
        """Audit entries, oldest first, narrowed by each argument given (``key``: a
        name or a tag; ``limit``: the most recent ones). The trail is verified as it
        is read: a broken one raises ``IntegrityError`` naming the first bad entry."""
        since_us = None
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime (e.g. with tzinfo=timezone.utc)")
            delta = since - _EPOCH
            since_us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        return [AuditEntry._from_native(e) for e in self._h.audit(group, key, action, since_us, limit)]

    def verify_audit(self) -> AuditReport:
        """Verify the whole audit trail; the report names the first entry that was
        edited, removed or reordered (``report.fault``), and the chain head."""
        return AuditReport._from_native(self._h.verify_audit())

    def rotate_hmk(self, passphrase: Optional[str] = None, id: Optional[str] = None) -> None:
        """Replace the HMK with a new pass phrase (``None``: a new random key in
        ``<path>.hmk``); every row is sealed again in one transaction."""
        self._h.rotate_hmk(passphrase, id)

    def rotate_kpk(self, passphrase: Optional[str] = None, id: Optional[str] = None) -> None:
        """Replace the KPK with a new pass phrase (``None``: a new random key in
        ``<path>.kpk``); every key is wrapped again in one transaction."""
        self._h.rotate_kpk(passphrase, id)

    # ---- data ---------------------------------------------------------------------

    def encrypt(self, group: str, data: Any, aad: Any = b"") -> bytes:
        """Encrypt with the group's active key; ``aad`` is bound to the result and
        must be given again to decrypt it."""
        return bytes(self._h.encrypt(group, _buf(data, "data"), _buf(aad, "aad")))

    def decrypt(self, ciphertext: Any, aad: Any = b"") -> bytes:
        """Decrypt with the key named by the tag inside (it must be active or inactive)."""
        return bytes(self._h.decrypt(_buf(ciphertext, "ciphertext"), _buf(aad, "aad")))

    def encrypt_file(self, group: str, src: Any, dst: Any, aad: Any = b"") -> int:
        """Encrypt ``src`` into ``dst``, each a path or a binary file object, in bounded
        memory. A path ``dst`` appears only once complete. Returns the plaintext size."""
        return int(self._h.encrypt_file(group, _end(src, "read"), _end(dst, "write"), _buf(aad, "aad")))

    def decrypt_file(self, src: Any, dst: Any, aad: Any = b"") -> int:
        """Decrypt ``src`` into ``dst``, each a path or a binary file object, in bounded
        memory. A path ``dst`` appears only if all of ``src`` authenticated; a file
        object gets plaintext as it authenticates, so discard it if this raises.
        Returns the plaintext size."""
        return int(self._h.decrypt_file(_end(src, "read"), _end(dst, "write"), _buf(aad, "aad")))
