"""The rule book from Python: every pair of states, every state and operation,
the bump, deletion and recovery. The expected tables are written out here from
the rule book (reference/RULES.md), not read from the library, so a binding or
component that drifts from it fails."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import key_in

import keystate
from keystate import KeyState, Keystore

S = KeyState
# The rule book's moves (besides staying put): prelive -> active is one way.
MOVES = {
    (S.PRELIVE, S.ACTIVE),
    (S.ACTIVE, S.INACTIVE),
    (S.INACTIVE, S.ACTIVE),
    (S.INACTIVE, S.DEPRECATED),
    (S.DEPRECATED, S.INACTIVE),
    (S.DEPRECATED, S.TERMINATED),
    (S.TERMINATED, S.DEPRECATED),
}
# What each state allows.
USES = {
    S.PRELIVE: {"delete"},
    S.ACTIVE: {"encrypt", "decrypt"},
    S.INACTIVE: {"decrypt"},
    S.DEPRECATED: set(),
    S.TERMINATED: {"delete"},
}
PAIRS = list(itertools.product(KeyState, KeyState))


def test_the_table_as_the_component_states_it() -> None:
    assert len(PAIRS) == 25
    for a, b in PAIRS:
        assert keystate.can_transition(a, b) == (a == b or (a, b) in MOVES), (a, b)
        assert keystate.can_transition(a.value, b.value) == keystate.can_transition(a, b)
    for state, uses in USES.items():
        assert keystate.allowed_operations(state) == uses, state


@pytest.mark.parametrize("start,to", PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_transition_pair(ks: Keystore, start: KeyState, to: KeyState) -> None:
    before = key_in(ks, "g", "k", start)
    allowed = start == to or (start, to) in MOVES
    if allowed:
        after = ks.set_state("g", "k", to)
        assert after.state is to
        assert ks.key("g", "k").state is to
        if start == to:
            assert after == before, "staying put changes nothing"
        else:
            assert after.modified >= before.modified
    else:
        with pytest.raises(keystate.InvalidTransition) as e:
            ks.set_state("g", "k", to)
        assert e.value.code == "INVALID_TRANSITION"
        message = str(e.value)
        assert start.value in message and to.value in message and '"k"' in message and '"g"' in message, message
        assert ks.key("g", "k") == before, "a refused move changes nothing"


@pytest.mark.parametrize("state", list(KeyState), ids=[s.value for s in KeyState])
def test_create_in_each_state(ks: Keystore, state: KeyState) -> None:
    ks.create_group("g")
    if state in (S.PRELIVE, S.ACTIVE):
        info = ks.create_key("g", "k", state)
        assert info.state is state
        assert ks.keys("g") == [info]
    else:
        with pytest.raises(keystate.InvalidTransition, match=state.value):
            ks.create_key("g", "k", state)
        assert ks.keys("g") == []


@pytest.mark.parametrize("state", list(KeyState), ids=[s.value for s in KeyState])
def test_every_state_and_operation(ks: Keystore, state: KeyState) -> None:
    ks.create_group("g")
    ks.create_key("g", "k", S.ACTIVE if state != S.PRELIVE else S.PRELIVE)
    # Data made while the key was active (a prelive key never made any).
    sealed = ks.encrypt("g", b"payload", b"aad") if state != S.PRELIVE else None
    for step in {S.PRELIVE: [], S.ACTIVE: [], S.INACTIVE: [S.INACTIVE],
                 S.DEPRECATED: [S.INACTIVE, S.DEPRECATED],
                 S.TERMINATED: [S.INACTIVE, S.DEPRECATED, S.TERMINATED]}[state]:
        ks.set_state("g", "k", step)
    uses = USES[state]

    if "encrypt" in uses:
        assert ks.decrypt(ks.encrypt("g", b"x"), b"") == b"x"
    else:
        with pytest.raises(keystate.KeyUnusable) as e:
            ks.encrypt("g", b"x")
        assert '"g"' in str(e.value)

    if sealed is not None:
        if "decrypt" in uses:
            assert ks.decrypt(sealed, b"aad") == b"payload"
        else:
            with pytest.raises(keystate.KeyUnusable) as e:
                ks.decrypt(sealed, b"aad")
            assert state.value in str(e.value) and "decrypt" in str(e.value), str(e.value)

    if "delete" in uses:
        ks.delete_key("g", "k")
        with pytest.raises(keystate.NotFound):
            ks.key("g", "k")
    else:
        with pytest.raises(keystate.NotDeletable) as e:
            ks.delete_key("g", "k")
        assert state.value in str(e.value)
        assert ks.key("g", "k").state is state


def test_the_bump_and_after_reopen(path: Path) -> None:
    with Keystore.create(path) as ks:
        ks.create_group("g")
        ks.create_key("g", "k1", S.ACTIVE)
        assert ks.group("g").active_key == "k1"
        ks.create_key("g", "k2", S.ACTIVE)  # creating active bumps
        assert ks.key("g", "k1").state is S.INACTIVE
        ks.create_key("g", "k3")
        ks.set_state("g", "k3", S.ACTIVE)  # activating bumps
        assert [(k.name, k.state) for k in ks.keys("g")] == [("k1", S.INACTIVE), ("k2", S.INACTIVE), ("k3", S.ACTIVE)]
        ks.set_state("g", "k1", S.ACTIVE)  # inactive -> active bumps too
        # Another group is untouched.
        ks.create_group("h")
        ks.create_key("h", "k", S.ACTIVE)
    with Keystore.open(path) as ks:
        assert [k.name for k in ks.keys(state=S.ACTIVE)] == ["k1", "k"]
        assert ks.group("g").active_key == "k1"
        assert ks.key("g", "k3").state is S.INACTIVE
        ks.set_state("g", "k2", S.ACTIVE)
        assert ks.key("g", "k1").state is S.INACTIVE
    with Keystore.open(path) as ks:
        assert [k.name for k in ks.keys("g", S.ACTIVE)] == ["k2"]


def test_delete_rules_for_groups(ks: Keystore) -> None:
    ks.create_group("g")
    ks.create_key("g", "k")
    with pytest.raises(keystate.NotDeletable):
        ks.delete_group("g")
    ks.delete_key("g", "k")
    ks.delete_group("g")
    with pytest.raises(keystate.NotFound):
        ks.group("g")
    with pytest.raises(keystate.NotFound):
        ks.delete_group("g")


def test_deleted_key_data_is_not_found(ks: Keystore) -> None:
    key_in(ks, "g", "k", S.ACTIVE)
    sealed = ks.encrypt("g", b"x")
    for step in (S.INACTIVE, S.DEPRECATED, S.TERMINATED):
        ks.set_state("g", "k", step)
    ks.delete_key("g", "k")
    with pytest.raises(keystate.NotFound):
        ks.decrypt(sealed)


def test_recover_right_and_wrong_passphrase(path: Path) -> None:
    with Keystore.create(path) as ks:
        pp = key_in(ks, "g", "pp", S.ACTIVE, passphrase="offsite tape 7")
        assert pp.recoverable
        sealed = ks.encrypt("g", b"before deletion", b"aad")
        for step in (S.INACTIVE, S.DEPRECATED, S.TERMINATED):
            ks.set_state("g", "pp", step)
        # Only a deleted key can be recovered.
        with pytest.raises(keystate.AlreadyExists):
            ks.recover_key("g", "other", pp.tag, "offsite tape 7")
        ks.delete_key("g", "pp")
        with pytest.raises(keystate.NotFound):
            ks.decrypt(sealed, b"aad")
        with pytest.raises(keystate.WrongPassphrase) as e:
            ks.recover_key("g", "pp", pp.tag, "offsite tape 8")
        assert pp.tag in str(e.value)
        with pytest.raises(keystate.InvalidTransition):
            ks.recover_key("g", "pp", pp.tag, "offsite tape 7", S.PRELIVE)
        back = ks.recover_key("g", "pp", pp.tag, "offsite tape 7")
        assert (back.tag, back.state, back.recoverable) == (pp.tag, S.INACTIVE, True)
    with Keystore.open(path) as ks:
        assert ks.decrypt(sealed, b"aad") == b"before deletion"
        assert ks.key_by_tag(pp.tag).name == "pp"


@pytest.mark.parametrize("state", [S.ACTIVE, S.DEPRECATED, S.TERMINATED])
def test_recover_into_other_states(ks: Keystore, state: KeyState) -> None:
    pp = key_in(ks, "g", "pp", S.PRELIVE, passphrase="words")
    ks.delete_key("g", "pp")
    assert ks.recover_key("g", "pp", pp.tag, "words", state).state is state


def test_random_keys_are_not_recoverable(ks: Keystore) -> None:
    rnd = key_in(ks, "g", "rnd", S.PRELIVE)
    assert not rnd.recoverable
    ks.delete_key("g", "rnd")
    for guess in ("", "words"):
        with pytest.raises(keystate.WrongPassphrase):
            ks.recover_key("g", "rnd", rnd.tag, guess)
    assert ks.keys() == []


def test_quiesce_refuses_mutations_but_not_use(ks: Keystore) -> None:
    key_in(ks, "g", "k", S.ACTIVE)
    ks.quiesce()
    for mutation in (
        lambda: ks.create_group("h"),
        lambda: ks.create_key("g", "k2"),
        lambda: ks.set_state("g", "k", S.INACTIVE),
        lambda: ks.modify_key("g", "k", description="x"),
        lambda: ks.delete_group("g"),
    ):
        with pytest.raises(keystate.Quiesced):
            mutation()
    assert ks.decrypt(ks.encrypt("g", b"reads go on")) == b"reads go on"
    assert ks.stats().quiesced
    ks.unquiesce()
    ks.set_state("g", "k", S.INACTIVE)


def test_names_and_duplicates(ks: Keystore) -> None:
    ks.create_group("g")
    with pytest.raises(keystate.AlreadyExists):
        ks.create_group("g")
    ks.create_key("g", "k")
    with pytest.raises(keystate.AlreadyExists):
        ks.create_key("g", "k")
    ks.create_group("h")
    ks.create_key("h", "k")  # names are per group
    with pytest.raises(keystate.AlreadyExists):
        ks.modify_group("g", new_name="h")
    for bad in ("", " lead", "trail ", "a\x00b"):
        with pytest.raises(keystate.InvalidArgument):
            ks.create_group(bad)
    with pytest.raises(keystate.NotFound):
        ks.create_key("nope", "k")
    with pytest.raises(keystate.InvalidArgument):
        ks.create_key("g", "pp", passphrase="")


def test_the_shared_policy_vectors() -> None:
    """The repository's conformance vectors (tests/vectors/policy.json), which every
    host replays, give the same answers through the Python API."""
    import json

    vectors = Path(__file__).resolve().parents[3] / "tests" / "vectors" / "policy.json"
    if not vectors.exists():
        pytest.skip(f"no {vectors}")
    steps = [step for script in json.loads(vectors.read_text())["scripts"] for step in script["steps"]]
    assert len(steps) == 30
    for step in steps:
        args, expect = step["args"], step["expect"]
        if step["call"] == "policy.can-transition":
            assert keystate.can_transition(args["from-state"], args["to-state"]) is expect, step
        else:
            assert step["call"] == "policy.allowed-operations", step
            assert keystate.allowed_operations(args["state"]) == set(expect), step
