"""A keystore in PostgreSQL, by URL: several handles (hosts) on one keystore.

Needs KEYSTATE_TEST_POSTGRES (scripts/test.sh starts a private server and sets
it). Without it the tests are skipped loudly, which is a failure in CI.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import keystate
from keystate import KeyState, Keystore

SERVER = os.environ.get("KEYSTATE_TEST_POSTGRES", "")


@pytest.fixture
def url(tmp_path: Path) -> str:
    if not SERVER:
        assert not os.environ.get("CI"), "CI is set but KEYSTATE_TEST_POSTGRES is not: PostgreSQL tests must run"
        pytest.skip("*** no PostgreSQL server: set KEYSTATE_TEST_POSTGRES (scripts/test.sh does) ***")
    schema = "py_" + uuid.uuid4().hex[:16]
    sep = "&" if "?" in SERVER else "?"
    return f"{SERVER}{sep}schema={schema}&key_files={tmp_path / 'keys'}"


def password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_a_url_keystore_is_shared_between_handles(url: str, tmp_path: Path) -> None:
    with Keystore.create(url) as a, Keystore.open(url) as b:
        assert (tmp_path / "keys.hmk").exists() and (tmp_path / "keys.kpk").exists()
        assert password(url) not in a.path and password(url) not in a.stats().path
        a.create_group("backups")
        a.create_key("backups", "k1", state=KeyState.ACTIVE)
        sealed = b.encrypt("backups", b"image bytes", aad=b"img-1")
        assert a.decrypt(sealed, aad=b"img-1") == b"image bytes"
        # A key deprecated through one handle is refused by the other at once.
        a.set_state("backups", "k1", KeyState.INACTIVE)
        a.set_state("backups", "k1", KeyState.DEPRECATED)
        with pytest.raises(keystate.KeyUnusable):
            b.encrypt("backups", b"more", aad=b"")
        with pytest.raises(keystate.KeyUnusable):
            b.decrypt(sealed, aad=b"img-1")
        b.create_key("backups", "k2", state=KeyState.ACTIVE)
        assert a.group("backups").active_key == "k2"


def test_a_url_needs_pass_phrases_or_a_key_file_place(url: str) -> None:
    bare = url.split("&key_files=", 1)[0]
    with pytest.raises(keystate.InvalidArgument, match="key_files="):
        Keystore.create(bare)
    with Keystore.create(bare, hmk_passphrase="hmk words", kpk_passphrase="kpk words") as ks:
        ks.create_group("g")
    with pytest.raises(keystate.WrongPassphrase):
        Keystore.open(bare, hmk_passphrase="hmk wordz", kpk_passphrase="kpk words")
    with Keystore.open(bare, hmk_passphrase="hmk words", kpk_passphrase="kpk words") as ks:
        assert [g.name for g in ks.groups()] == ["g"]


def test_a_wrong_password_is_a_storage_error_naming_the_server(url: str) -> None:
    bad = url.replace(":" + password(url) + "@", ":not-the-Passw0rd@")
    with pytest.raises(keystate.StorageError) as caught:
        Keystore.open(bad)
    server = url.split("@", 1)[1].split("/", 1)[0]
    assert server in str(caught.value) and "not-the-Passw0rd" not in str(caught.value)
