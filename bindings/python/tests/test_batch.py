"""``Keystore.batch``: many mutations in one commit, all of them or none."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import key_in

import keystate
from keystate import Cipher, KeyState, Keystore


def test_a_batch_commits_every_mutation_and_returns_their_records(ks: Keystore, path: Path) -> None:
    other = Keystore.open(path)
    with ks.batch() as b:
        b.create_group("tapes", Cipher.CHACHA20_POLY1305)
        for i in range(200):
            b.create_key("tapes", f"tape-{i}")
        b.set_state("tapes", "tape-0", KeyState.ACTIVE)
        b.set_state("tapes", "tape-1", "active")  # bumps tape-0, made in this batch
        b.delete_key("tapes", "tape-199")
        b.create_key("tapes", "recoverable", passphrase="tape 7 offsite")
    assert isinstance(b.results[0], keystate.GroupInfo) and b.results[0].cipher is Cipher.CHACHA20_POLY1305
    created = b.results[1:201]
    assert [k.name for k in created if isinstance(k, keystate.KeyInfo)] == [f"tape-{i}" for i in range(200)]
    moved = b.results[202]
    assert isinstance(moved, keystate.KeyInfo) and moved.state is KeyState.ACTIVE
    assert b.results[203] is None
    last = b.results[204]
    assert isinstance(last, keystate.KeyInfo) and last.recoverable
    # Another handle sees all of it.
    assert len(other.keys("tapes")) == 200
    assert other.key("tapes", "tape-0").state is KeyState.INACTIVE
    assert other.group("tapes").active_key == "tape-1"
    assert other.decrypt(ks.encrypt("tapes", b"tape", b""), b"") == b"tape"
    assert sum(1 for e in other.audit() if e.action == "create-key") == 201
    other.close()


def test_a_refused_mutation_commits_none_of_the_batch(ks: Keystore, path: Path) -> None:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    with pytest.raises(keystate.InvalidTransition):
        with ks.batch() as b:
            b.create_key("g", "new")
            b.set_state("g", "k", KeyState.INACTIVE)
            b.set_state("g", "new", KeyState.TERMINATED)  # prelive -> terminated is not a move
    assert b.results == []
    for handle in (ks, Keystore.open(path)):
        with pytest.raises(keystate.NotFound):
            handle.key("g", "new")
        assert handle.key("g", "k").state is KeyState.ACTIVE


def test_an_exception_in_the_block_commits_nothing(ks: Keystore) -> None:
    with pytest.raises(RuntimeError):
        with ks.batch() as b:
            b.create_group("g")
            raise RuntimeError("changed my mind")
    assert ks.groups() == []


def test_bad_names_are_refused_before_anything_runs(ks: Keystore) -> None:
    with pytest.raises(keystate.InvalidArgument):
        with ks.batch() as b:
            b.create_group("g")
            b.create_key("g", "k", state="alive")
    assert ks.groups() == []
    with pytest.raises(TypeError):
        with ks.batch() as b:
            b.create_group("g", cipher=3)  # type: ignore[arg-type]
    assert ks.groups() == []
