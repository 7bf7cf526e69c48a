"""Fixtures: a fresh keystore per test (random HMK/KPK, no pass phrase to derive)
and `key_in`, which walks a new key into any state the way a user must."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import keystate
from keystate import KeyState, Keystore

# The way from creation to each state: keys are created prelive or active and
# move one adjacent step at a time.
WALK = {
    KeyState.PRELIVE: [],
    KeyState.ACTIVE: [KeyState.ACTIVE],
    KeyState.INACTIVE: [KeyState.ACTIVE, KeyState.INACTIVE],
    KeyState.DEPRECATED: [KeyState.ACTIVE, KeyState.INACTIVE, KeyState.DEPRECATED],
    KeyState.TERMINATED: [KeyState.ACTIVE, KeyState.INACTIVE, KeyState.DEPRECATED, KeyState.TERMINATED],
}


def key_in(ks: Keystore, group: str, name: str, state: KeyState, passphrase: str | None = None) -> keystate.KeyInfo:
    """A key `name` in `state`, in `group` (created if missing)."""
    if group not in {g.name for g in ks.groups()}:
        ks.create_group(group)
    info = ks.create_key(group, name, passphrase=passphrase)
    for step in WALK[state]:
        info = ks.set_state(group, name, step)
    assert info.state is state
    return info


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys.db"


@pytest.fixture
def ks(path: Path) -> Iterator[Keystore]:
    with Keystore.create(path) as store:
        yield store
