"""The Python surface itself: enums or strings everywhere, unknown names, the
records, the exception tree, the context manager and closing."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import key_in

import keystate
from keystate import Cipher, KeyState, Keystore
from keystate import _errors, _native


def test_names_agree_with_the_library() -> None:
    assert [s.value for s in KeyState] == _native.STATES
    assert [c.value for c in Cipher] == _native.CIPHERS
    # Every kind the library reports has its own class, and the codes are the library's.
    assert sorted(_errors._BY_CODE) == sorted(_native.ERROR_CODES)
    for code, cls in _errors._BY_CODE.items():
        assert issubclass(cls, keystate.KeystateError) and cls is not keystate.KeystateError
        assert cls.code == code
        assert getattr(keystate, cls.__name__) is cls
    assert keystate.__version__ == _native.VERSION


def test_exported_names() -> None:
    for name in keystate.__all__:
        assert hasattr(keystate, name), name
    expected = {
        "NotFound", "AlreadyExists", "InvalidTransition", "KeyUnusable", "NotDeletable", "WrongPassphrase",
        "IntegrityError", "Quiesced", "InvalidArgument", "StorageError", "InternalError",
    }
    assert expected <= set(keystate.__all__)


def test_key_state_is_a_str_enum() -> None:
    assert KeyState.ACTIVE == "active" and isinstance(KeyState.ACTIVE, str)
    assert str(KeyState.ACTIVE) == "active" and f"{KeyState.DEPRECATED}" == "deprecated"
    assert KeyState("terminated") is KeyState.TERMINATED
    assert {"active": 1}[KeyState.ACTIVE] == 1 and {KeyState.ACTIVE: 1}["active"] == 1
    assert Cipher.AES_128_GCM == "AES_128_GCM"


def test_enum_or_string_everywhere(ks: Keystore) -> None:
    ks.create_group("a", Cipher.AES_128_GCM)
    ks.create_group("b", "AES_256_GCM")
    ks.create_group("c", "aes-128-gcm")  # the library's spellings
    assert [g.cipher for g in ks.groups()] == [Cipher.AES_128_GCM, Cipher.AES_256_GCM, Cipher.AES_128_GCM]
    ks.create_key("a", "k1", KeyState.ACTIVE)
    ks.create_key("a", "k2", "prelive")
    ks.set_state("a", "k1", "inactive")
    ks.set_state("a", "k2", KeyState.ACTIVE)
    assert [k.name for k in ks.keys(state="active")] == [k.name for k in ks.keys(state=KeyState.ACTIVE)] == ["k2"]
    assert keystate.allowed_operations("terminated") == keystate.allowed_operations(KeyState.TERMINATED) == {"delete"}
    pp = key_in(ks, "b", "pp", KeyState.PRELIVE, passphrase="x y z")
    ks.delete_key("b", "pp")
    assert ks.recover_key("b", "pp", pp.tag, "x y z", "deprecated").state is KeyState.DEPRECATED


def test_unknown_names_are_invalid_argument(ks: Keystore) -> None:
    key_in(ks, "g", "k", KeyState.PRELIVE)
    calls = [
        lambda: ks.create_key("g", "k2", "Active"),
        lambda: ks.create_key("g", "k2", "live"),
        lambda: ks.set_state("g", "k", "retired"),
        lambda: ks.keys(state="ACTIVE"),
        lambda: ks.recover_key("g", "k3", "00" * 16, "pp", "gone"),
        lambda: keystate.can_transition("prelive", "nope"),
        lambda: keystate.can_transition("", "active"),
        lambda: keystate.allowed_operations("zombie"),
        lambda: ks.create_group("h", "ROT13"),
        lambda: ks.key_by_tag("not hex"),
    ]
    for call in calls:
        with pytest.raises(keystate.InvalidArgument) as e:
            call()
        assert e.value.code == "INVALID_ARGUMENT"
        assert isinstance(e.value, ValueError)
    assert ks.key("g", "k").state is KeyState.PRELIVE
    with pytest.raises(TypeError):
        ks.set_state("g", "k", 1)  # type: ignore[arg-type]


def test_records(ks: Keystore) -> None:
    before = datetime.now(timezone.utc)
    g = ks.create_group("g", description="nightly")
    k = ks.create_key("g", "k", KeyState.ACTIVE, description="first")
    after = datetime.now(timezone.utc)
    for t in (g.created, g.modified, k.created, k.modified):
        assert isinstance(t, datetime) and t.tzinfo is not None and t.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= t <= after + timedelta(seconds=1)
    assert len(k.tag) == 32 and int(k.tag, 16) >= 0 and k.tag == k.tag.lower()
    assert (k.name, k.group, k.state, k.description, k.recoverable) == ("k", "g", KeyState.ACTIVE, "first", False)
    assert ks.group("g").active_key == "k" and g.active_key is None
    # Immutable, equal by value, hashable, readable.
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.name = "x"  # type: ignore[misc]
    assert ks.key("g", "k") == k and hash(ks.key("g", "k")) == hash(k)
    assert ks.key_by_tag(k.tag) == k
    assert k != ks.set_state("g", "k", "inactive")
    text = repr(k)
    assert text.startswith("KeyInfo(") and "name='k'" in text and "state='active'" in text and k.tag in text
    assert repr(g).startswith("GroupInfo(") and "cipher='AES_256_GCM'" in repr(g)
    assert [f.name for f in dataclasses.fields(k)] == [
        "tag", "name", "group", "state", "description", "created", "modified", "recoverable",
    ]
    assert [f.name for f in dataclasses.fields(g)] == [
        "tag", "name", "cipher", "description", "created", "modified", "active_key",
    ]
    # Modified moves, created stays.
    k2 = ks.modify_key("g", "k", new_name="k2", description="renamed")
    assert (k2.name, k2.description, k2.created, k2.tag) == ("k2", "renamed", k.created, k.tag)
    assert k2.modified >= k.modified
    g2 = ks.modify_group("g", description="weekly")
    assert (g2.description, g2.name, g2.created) == ("weekly", "g", g.created)
    assert ks.modify_group("g") == g2  # nothing to change


def test_stats(ks: Keystore, path: Path) -> None:
    key_in(ks, "g", "a", KeyState.ACTIVE)
    key_in(ks, "h", "t", KeyState.TERMINATED)
    s = ks.stats()
    assert (s.groups, s.keys, s.corrupt_rows, s.quiesced, s.format_version) == (2, 2, 0, False, 1)
    assert dict(s.states) == {"prelive": 0, "active": 1, "inactive": 0, "deprecated": 0, "terminated": 1}
    assert list(s.states) == list(KeyState) and s.states[KeyState.TERMINATED] == 1
    assert s.path == str(path) and s.hmk_id and s.kpk_id
    assert s == ks.stats() and "Stats(" in repr(s)
    with pytest.raises(TypeError):
        s.states["active"] = 5  # type: ignore[index]
    assert ks.faults() == []


def test_exceptions() -> None:
    e = keystate.KeyUnusable("key k is deprecated")
    assert isinstance(e, keystate.KeystateError) and e.code == "KEY_UNUSABLE" and str(e) == e.message
    assert issubclass(keystate.NotFound, LookupError)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is keystate.KeyUnusable and back.message == e.message
    base = keystate.KeystateError("x", code="CLOSED")
    assert base.code == "CLOSED" and keystate.KeystateError.code == "ERROR"


def test_messages_name_what_is_involved(ks: Keystore) -> None:
    key_in(ks, "backups", "k1", KeyState.DEPRECATED)
    with pytest.raises(keystate.KeyUnusable) as e:
        ks.encrypt("backups", b"x")
    assert '"backups"' in str(e.value)
    with pytest.raises(keystate.NotFound) as e2:
        ks.key("backups", "k9")
    assert '"k9"' in str(e2.value) and '"backups"' in str(e2.value)


def test_context_manager_and_close(path: Path) -> None:
    with Keystore.create(path) as ks:
        assert not ks.closed
        ks.create_group("g")
    assert ks.closed and "closed" in repr(ks)
    for call in (ks.groups, lambda: ks.encrypt("g", b""), ks.stats, lambda: ks.create_group("h")):
        with pytest.raises(keystate.KeystateError) as e:
            call()
        assert e.value.code == "CLOSED" and str(path) in str(e.value)
    ks.close()  # idempotent
    # The file is free again: another handle opens it, and a with-block closes on error too.
    with pytest.raises(RuntimeError):
        with Keystore.open(path) as again:
            assert [g.name for g in again.groups()] == ["g"]
            raise RuntimeError("boom")
    assert again.closed
    with pytest.raises(TypeError):
        Keystore(path)  # type: ignore[call-arg]


def test_path_like_arguments(tmp_path: Path) -> None:
    with Keystore.create(str(tmp_path / "a.db")) as a:
        assert a.path == str(tmp_path / "a.db")
    with Keystore.create(bytes(tmp_path / "b.db")):
        pass
    Keystore.open(tmp_path / "a.db").close()
    with pytest.raises(TypeError):
        Keystore.open(42)  # type: ignore[arg-type]
