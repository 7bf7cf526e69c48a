"""Data from Python: round trips over any bytes-like input, tamper detection of
every byte class (docs/format.md), the keystore across reopen, and wrong pass
phrases for the keystore itself."""

from __future__ import annotations

import array
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import key_in

import keystate
from keystate import KeyState, Keystore

HEADER = 60  # docs/format.md: magic, version, cipher, reserved, chunk size, key tag, salt
TAG = range(12, 28)  # the key tag: flipping it names another key (not found)
CHUNK = 65536 + 16  # default chunk size plus the GCM tag


@pytest.fixture
def sealed(ks: Keystore) -> tuple[Keystore, bytes, bytes]:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    data = bytes(i % 253 for i in range(3 * 65536 + 1000))  # three full chunks and a short one
    return ks, data, ks.encrypt("g", data, b"image-9")


def test_round_trip_and_sizes(ks: Keystore) -> None:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    for n in (0, 1, 65535, 65536, 65537, 200_001):
        data = os.urandom(n)
        sealed = ks.encrypt("g", data, b"aad")
        assert len(sealed) == HEADER + n + 16 * (n // 65536 + 1)
        assert ks.decrypt(sealed, b"aad") == data
    # Two encryptions of the same data differ (fresh salt and subkey).
    assert ks.encrypt("g", b"same") != ks.encrypt("g", b"same")


def test_any_bytes_like_object(ks: Keystore) -> None:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    data = b"0123456789" * 100
    for form in (data, bytearray(data), memoryview(data), memoryview(data)[::1], array.array("B", data)):
        sealed = ks.encrypt("g", form, aad=bytearray(b"a"))
        assert isinstance(sealed, bytes)
        assert ks.decrypt(memoryview(sealed), memoryview(b"a")) == data
        assert ks.decrypt(bytearray(sealed), b"a") == data
    # A strided view is copied in order.
    assert ks.decrypt(ks.encrypt("g", memoryview(data)[::2])) == data[::2]
    for wrong in ("text", 42, None):
        with pytest.raises(TypeError):
            ks.encrypt("g", wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ks.decrypt(wrong)  # type: ignore[arg-type]


def test_every_header_byte_is_authenticated(sealed: tuple[Keystore, bytes, bytes]) -> None:
    ks, _, ct = sealed
    for i in range(HEADER):
        t = bytearray(ct)
        t[i] ^= 0x01
        if i in TAG:
            with pytest.raises(keystate.NotFound):
                ks.decrypt(t, b"image-9")
        else:
            with pytest.raises(keystate.IntegrityError):
                ks.decrypt(t, b"image-9")


def test_chunk_bytes_and_gcm_tags(sealed: tuple[Keystore, bytes, bytes]) -> None:
    ks, _, ct = sealed
    starts = [HEADER + n * CHUNK for n in range(4)]
    for n, start in enumerate(starts):
        end = len(ct) if n == 3 else start + CHUNK
        for i in [start, (start + end) // 2, *range(end - 16, end)]:
            t = bytearray(ct)
            t[i] ^= 0x80
            with pytest.raises(keystate.IntegrityError) as e:
                ks.decrypt(t, b"image-9")
            assert e.value.code == "INTEGRITY"


def test_truncation_reordering_and_aad(sealed: tuple[Keystore, bytes, bytes]) -> None:
    ks, data, ct = sealed
    bad = {
        "wrong aad": (ct, b"image-8"),
        "missing aad": (ct, b""),
        "last byte cut": (ct[:-1], b"image-9"),
        "cut at a chunk boundary": (ct[: HEADER + 2 * CHUNK], b"image-9"),
        "header only": (ct[:HEADER], b"image-9"),
        "half a header": (ct[:30], b"image-9"),
        "empty": (b"", b"image-9"),
        "chunks swapped": (ct[:HEADER] + ct[HEADER + CHUNK : HEADER + 2 * CHUNK] + ct[HEADER : HEADER + CHUNK] + ct[HEADER + 2 * CHUNK :], b"image-9"),
        "chunk dropped": (ct[: HEADER + CHUNK] + ct[HEADER + 2 * CHUNK :], b"image-9"),
        "bytes appended": (ct + bytes(17), b"image-9"),
    }
    for what, (t, aad) in bad.items():
        with pytest.raises(keystate.IntegrityError):
            ks.decrypt(t, aad)
            pytest.fail(what)
    assert ks.decrypt(ct, b"image-9") == data


def test_data_of_another_keystore_is_not_found(tmp_path: Path, ks: Keystore) -> None:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    with Keystore.create(tmp_path / "other.db") as other:
        key_in(other, "g", "k", KeyState.ACTIVE)
        with pytest.raises(keystate.NotFound):
            other.decrypt(ks.encrypt("g", b"x"))


def test_reopen_after_every_kind_of_mutation(path: Path) -> None:
    def same(ks: Keystore) -> None:
        with Keystore.open(path) as other:
            assert other.groups() == ks.groups()
            assert other.keys() == ks.keys()
            assert other.stats() == ks.stats()

    with Keystore.create(path) as ks:
        ks.create_group("g", description="first")
        same(ks)
        ks.modify_group("g", new_name="g2", description="renamed")
        same(ks)
        ks.create_key("g2", "a", KeyState.ACTIVE)
        sealed = ks.encrypt("g2", b"kept", b"x")
        same(ks)
        ks.create_key("g2", "b", passphrase="pp")
        ks.set_state("g2", "b", "active")
        same(ks)
        ks.modify_key("g2", "a", new_name="a2", description="old")
        ks.set_state("g2", "a2", KeyState.DEPRECATED)
        same(ks)
        ks.set_state("g2", "a2", KeyState.INACTIVE)
        same(ks)
        ks.create_group("empty", "AES_128_GCM")
        ks.delete_group("empty")
        ks.quiesce()
        same(ks)
        ks.unquiesce()
        same(ks)
    with Keystore.open(path) as ks:
        assert ks.decrypt(sealed, b"x") == b"kept"
        assert [(k.name, k.state) for k in ks.keys()] == [("a2", KeyState.INACTIVE), ("b", KeyState.ACTIVE)]
        assert ks.key("g2", "a2").description == "old"
        assert ks.group("g2").description == "renamed"


def test_passphrase_keystore_and_wrong_passphrases(path: Path) -> None:
    with Keystore.create(path, hmk_passphrase="hmk words", kpk_passphrase="kpk words") as ks:
        ks.create_group("g")
    assert not Path(f"{path}.hmk").exists()
    with pytest.raises(keystate.WrongPassphrase):
        Keystore.open(path, hmk_passphrase="hmk wordz", kpk_passphrase="kpk words")
    with pytest.raises(keystate.WrongPassphrase):
        Keystore.open(path, hmk_passphrase="hmk words", kpk_passphrase="kpk wordz")
    with pytest.raises(keystate.InvalidArgument):
        Keystore.open(path, kpk_passphrase="kpk words")
    with Keystore.open(path, "hmk words", "kpk words") as ks:
        assert [g.name for g in ks.groups()] == ["g"]


def test_key_files_and_keystore_files(tmp_path: Path, path: Path) -> None:
    Keystore.create(path).close()
    with pytest.raises(keystate.AlreadyExists):
        Keystore.create(path)
    with pytest.raises(keystate.NotFound):
        Keystore.open(tmp_path / "none.db")
    with pytest.raises(keystate.InvalidArgument):
        Keystore.open(path, hmk_passphrase="not used: this HMK is a key file")
    # Another keystore's key file is a wrong key.
    Keystore.create(tmp_path / "other.db").close()
    Path(f"{path}.kpk").write_bytes(Path(f"{tmp_path}/other.db.kpk").read_bytes())
    with pytest.raises(keystate.WrongPassphrase):
        Keystore.open(path)
    Path(f"{path}.kpk").unlink()
    with pytest.raises(keystate.NotFound):
        Keystore.open(path)


def test_a_tampered_row_is_a_fault_and_the_rest_stays_usable(path: Path) -> None:
    with Keystore.create(path) as ks:
        g = key_in(ks, "g", "k", KeyState.ACTIVE)
        key_in(ks, "h", "k", KeyState.ACTIVE)
        g_data, h_data = ks.encrypt("g", b"g"), ks.encrypt("h", b"h")
    db = sqlite3.connect(path)
    with db:
        n = db.execute(
            "UPDATE rows SET body = CAST(substr(body, 1, 20) || x'ff' || substr(body, 22) AS BLOB) WHERE id LIKE ?",
            (f"k:%:{g.tag}",),
        ).rowcount
    db.close()
    assert n == 1
    with Keystore.open(path) as ks:
        faults = ks.faults()
        assert len(faults) == 1 and faults[0].id.endswith(g.tag) and faults[0].message
        assert ks.stats().corrupt_rows == 1
        with pytest.raises(keystate.IntegrityError):
            ks.decrypt(g_data)
        assert ks.decrypt(h_data) == b"h"
