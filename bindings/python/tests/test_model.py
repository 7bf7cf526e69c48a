"""Property test: random sequences of create / set-state / delete / recover /
encrypt / decrypt / reopen, applied to a real keystore and to a small pure-Python
model of the rule book, must agree after every step: the same outcome (value or
error kind) for each operation and the same keys, states and active keys.

The model is written from the rule book, not from the library, and it is small
on purpose: one dict of keys, one of deleted pass phrase keys, and the data
encrypted so far."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Type

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import keystate
from keystate import KeyState, Keystore

S = KeyState
GROUPS = ["g0", "g1"]
NAMES = ["a", "b", "c"]
MOVES = {
    (S.PRELIVE, S.ACTIVE), (S.ACTIVE, S.INACTIVE), (S.INACTIVE, S.ACTIVE), (S.INACTIVE, S.DEPRECATED),
    (S.DEPRECATED, S.INACTIVE), (S.DEPRECATED, S.TERMINATED), (S.TERMINATED, S.DEPRECATED),
}
ENCRYPT = {S.ACTIVE}
DECRYPT = {S.ACTIVE, S.INACTIVE}
DELETE = {S.PRELIVE, S.TERMINATED}
CREATE = {S.PRELIVE, S.ACTIVE}
# Pass phrase keys cost an Argon2id run each: few of them.
PASSPHRASES = st.sampled_from([None, None, None, None, None, None, "pp one", "pp two"])


def path_to_deletable(state: KeyState) -> KeyState:
    """The next step of a shortest walk from `state` to a deletable state (over MOVES)."""
    frontier, first = [state], {state: state}
    while frontier:
        nxt = []
        for a in frontier:
            for x, b in sorted(MOVES):
                if x is a and b not in first:
                    first[b] = b if a is state else first[a]
                    if b in DELETE:
                        return first[b]
                    nxt.append(b)
        frontier = nxt
    raise AssertionError(f"no way from {state} to a deletable state")


@dataclass
class Key:
    state: KeyState
    tag: str
    passphrase: Optional[str]


@dataclass
class Sealed:
    ciphertext: bytes
    aad: bytes
    tag: str
    plaintext: bytes


Outcome = Tuple[str, object]  # ("ok", value) or ("error", exception class)


class RuleBook(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="keystate-model-"))
        self.path = self.dir / "keys.db"
        self.ks = Keystore.create(self.path)
        self.keys: Dict[Tuple[str, str], Key] = {}
        self.deleted: Dict[str, Key] = {}  # by tag, in deletion order: deleted keys (pass phrase or random)
        self.sealed: List[Sealed] = []

    def teardown(self) -> None:
        self.ks.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize()
    def groups(self) -> None:
        for g in GROUPS:
            self.ks.create_group(g)
        # A start that reaches the interesting rules sooner: an active key with data
        # sealed by it, and a prelive pass phrase key (deletable, then recoverable).
        self.create_key("g0", "a", S.ACTIVE, None)
        self.create_key("g1", "b", S.PRELIVE, "pp one")
        self.encrypt("g0", b"sealed by a", b"")

    # ---- the model's answers ----------------------------------------------------------

    def active_of(self, group: str) -> Optional[str]:
        names = [n for (g, n), k in self.keys.items() if g == group and k.state is S.ACTIVE]
        assert len(names) <= 1, f"model: two active keys in {group}"
        return names[0] if names else None

    def bump(self, group: str) -> None:
        active = self.active_of(group)
        if active is not None:
            self.keys[(group, active)].state = S.INACTIVE

    def expect_error(self, cls: Type[keystate.KeystateError], call: object) -> None:
        assert callable(call)
        try:
            result = call()
        except keystate.KeystateError as e:
            assert type(e) is cls, f"expected {cls.__name__}, got {type(e).__name__}: {e}"
            return
        raise AssertionError(f"expected {cls.__name__}, got {result!r}")

    # ---- rules ------------------------------------------------------------------------

    @rule(group=st.sampled_from(GROUPS), name=st.sampled_from(NAMES), state=st.sampled_from(list(KeyState)),
          passphrase=PASSPHRASES)
    def create_key(self, group: str, name: str, state: KeyState, passphrase: Optional[str]) -> None:
        if state not in CREATE:
            return self.expect_error(keystate.InvalidTransition, lambda: self.ks.create_key(group, name, state, passphrase))
        if (group, name) in self.keys:
            return self.expect_error(keystate.AlreadyExists, lambda: self.ks.create_key(group, name, state, passphrase))
        info = self.ks.create_key(group, name, state.value, passphrase)
        assert (info.group, info.name, info.state, info.recoverable) == (group, name, state, passphrase is not None)
        if state is S.ACTIVE:
            if self.active_of(group):
                event("bump by create")
            self.bump(group)
        self.keys[(group, name)] = Key(state, info.tag, passphrase)

    @rule(group=st.sampled_from(GROUPS), name=st.sampled_from(NAMES), to=st.sampled_from(list(KeyState)))
    def set_state(self, group: str, name: str, to: KeyState) -> None:
        key = self.keys.get((group, name))
        if key is None:
            return self.expect_error(keystate.NotFound, lambda: self.ks.set_state(group, name, to))
        if key.state != to and (key.state, to) not in MOVES:
            return self.expect_error(keystate.InvalidTransition, lambda: self.ks.set_state(group, name, to))
        info = self.ks.set_state(group, name, to)
        assert info.state is to and info.tag == key.tag
        if to is S.ACTIVE and key.state is not S.ACTIVE:
            if self.active_of(group):
                event("bump by activation")
            self.bump(group)
        key.state = to

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data())
    def step_key(self, data: st.DataObject) -> None:
        """Move an existing key one step the rule book allows (random moves rarely are)."""
        group, name = data.draw(st.sampled_from(sorted(self.keys)))
        state = self.keys[(group, name)].state
        to = data.draw(st.sampled_from(sorted(b for a, b in MOVES if a is state)))
        self.set_state(group, name, to)

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data())
    def retire(self, data: st.DataObject) -> None:
        """Walk an existing key, step by allowed step, to a deletable state; delete it."""
        group, name = data.draw(st.sampled_from(sorted(self.keys)))
        while self.keys[(group, name)].state not in DELETE:
            self.set_state(group, name, path_to_deletable(self.keys[(group, name)].state))
            self.same_keys_and_active_keys()
        self.delete_key(group, name)

    @rule(group=st.sampled_from(GROUPS), name=st.sampled_from(NAMES))
    def delete_key(self, group: str, name: str) -> None:
        key = self.keys.get((group, name))
        if key is None:
            return self.expect_error(keystate.NotFound, lambda: self.ks.delete_key(group, name))
        if key.state not in DELETE:
            return self.expect_error(keystate.NotDeletable, lambda: self.ks.delete_key(group, name))
        self.ks.delete_key(group, name)
        del self.keys[(group, name)]
        self.deleted[key.tag] = key

    @precondition(lambda self: bool(self.deleted))
    @rule(data=st.data(), group=st.sampled_from(GROUPS), name=st.sampled_from(NAMES),
          state=st.sampled_from(list(KeyState)), right=st.booleans())
    def recover_key(self, data: st.DataObject, group: str, name: str, state: KeyState, right: bool) -> None:
        # Tags are random: draw by deletion order, so that replays draw the same key.
        tag = data.draw(st.sampled_from(list(self.deleted)))
        old = self.deleted[tag]
        passphrase = (old.passphrase or "never had one") if right else "wrong words"
        call = lambda: self.ks.recover_key(group, name, tag, passphrase, state)  # noqa: E731
        if state is S.PRELIVE:
            return self.expect_error(keystate.InvalidTransition, call)
        if (group, name) in self.keys:
            return self.expect_error(keystate.AlreadyExists, call)
        if old.passphrase is None or not right:
            event("recover: wrong pass phrase" if right is False else "recover: random key")
            return self.expect_error(keystate.WrongPassphrase, call)
        info = call()
        event("recovered")
        assert (info.tag, info.state, info.recoverable) == (tag, state, True)
        if state is S.ACTIVE:
            self.bump(group)
        self.keys[(group, name)] = Key(state, tag, old.passphrase)
        del self.deleted[tag]

    @rule(group=st.sampled_from(GROUPS), plaintext=st.binary(max_size=200), aad=st.binary(max_size=8))
    def encrypt(self, group: str, plaintext: bytes, aad: bytes) -> None:
        active = self.active_of(group)
        if active is None:
            return self.expect_error(keystate.KeyUnusable, lambda: self.ks.encrypt(group, plaintext, aad))
        ciphertext = self.ks.encrypt(group, plaintext, aad)
        self.sealed.append(Sealed(ciphertext, aad, self.keys[(group, active)].tag, plaintext))

    @precondition(lambda self: bool(self.sealed))
    @rule(data=st.data(), wrong_aad=st.booleans())
    def decrypt(self, data: st.DataObject, wrong_aad: bool) -> None:
        s = data.draw(st.sampled_from(self.sealed))
        aad = s.aad + b"!" if wrong_aad else s.aad
        key = next((k for k in self.keys.values() if k.tag == s.tag), None)
        event(f"decrypt with the key {'deleted' if key is None else key.state.value}")
        if key is None:
            return self.expect_error(keystate.NotFound, lambda: self.ks.decrypt(s.ciphertext, aad))
        if key.state not in DECRYPT:
            return self.expect_error(keystate.KeyUnusable, lambda: self.ks.decrypt(s.ciphertext, aad))
        if wrong_aad:
            return self.expect_error(keystate.IntegrityError, lambda: self.ks.decrypt(s.ciphertext, aad))
        assert self.ks.decrypt(s.ciphertext, aad) == s.plaintext

    @rule()
    def reopen(self) -> None:
        event("reopen with keys" if self.keys else "reopen")
        self.ks.close()
        self.ks = Keystore.open(self.path)

    # ---- after every step -------------------------------------------------------------

    @invariant()
    def same_keys_and_active_keys(self) -> None:
        if not hasattr(self, "ks") or self.ks.closed:
            return
        actual = {(k.group, k.name): (k.state, k.tag, k.recoverable) for k in self.ks.keys()}
        expected = {gk: (k.state, k.tag, k.passphrase is not None) for gk, k in self.keys.items()}
        assert actual == expected
        groups = self.ks.groups()
        if groups:  # before initialize() there are none
            assert {g.name: g.active_key for g in groups} == {g: self.active_of(g) for g in GROUPS}


RuleBook.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_rule_book = RuleBook.TestCase
