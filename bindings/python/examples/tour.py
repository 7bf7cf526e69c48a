"""A tour of the whole Python surface of keystate, type-checked by `mypy --strict`
(test.sh) and run end to end. Usage: python tour.py [DIRECTORY]"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import keystate
from keystate import Cipher, GroupInfo, KeyInfo, KeyState, Keystore, RowFault, Stats


def tour(directory: Path) -> None:
    path = directory / "keys.db"

    # The rules, as the component states them.
    assert keystate.can_transition(KeyState.PRELIVE, "active")
    assert not keystate.can_transition("active", KeyState.PRELIVE)
    ops: set[str] = keystate.allowed_operations(KeyState.INACTIVE)
    assert ops == {"decrypt"}

    with Keystore.create(path) as ks:  # random HMK/KPK in keys.db.hmk / keys.db.kpk
        group: GroupInfo = ks.create_group("backups", Cipher.AES_256_GCM, description="nightly")
        assert group.cipher == "AES_256_GCM" and group.active_key is None
        ks.create_group("scratch", "AES_128_GCM")
        ks.modify_group("scratch", new_name="tmp", description="to delete")
        ks.delete_group("tmp")
        assert [g.name for g in ks.groups()] == ["backups"]
        assert ks.group("backups").description == "nightly"

        k1: KeyInfo = ks.create_key("backups", "k1")
        assert k1.state is KeyState.PRELIVE and k1.created.tzinfo is not None
        ks.set_state("backups", "k1", KeyState.ACTIVE)
        sealed: bytes = ks.encrypt("backups", b"image bytes", aad=b"image-1")
        assert ks.decrypt(sealed, aad=b"image-1") == b"image bytes"
        assert ks.decrypt(memoryview(sealed), bytearray(b"image-1")) == b"image bytes"

        # A pass phrase key, activated: k1 is bumped to inactive and still decrypts.
        k2 = ks.create_key("backups", "k2", state="active", passphrase="tape 7 offsite", description="weekly")
        assert k2.recoverable and ks.key("backups", "k1").state == KeyState.INACTIVE
        assert ks.key_by_tag(k2.tag).name == "k2"
        ks.modify_key("backups", "k2", description="weekly, offsite")
        active: list[KeyInfo] = ks.keys("backups", KeyState.ACTIVE)
        assert [k.name for k in active] == ["k2"]
        assert len(ks.keys()) == 2 and len(ks.keys(state="inactive")) == 1

        # Files and binary file objects, in bounded memory.
        src = directory / "image.bin"
        src.write_bytes(os.urandom(200_000))
        n: int = ks.encrypt_file("backups", src, directory / "image.ks", aad=b"image-2")
        assert n == 200_000
        ks.decrypt_file(str(directory / "image.ks"), directory / "image.out", aad=b"image-2")
        assert (directory / "image.out").read_bytes() == src.read_bytes()
        buffer = io.BytesIO()
        with open(src, "rb") as f:
            ks.encrypt_file("backups", f, buffer)
        plain = io.BytesIO()
        ks.decrypt_file(io.BytesIO(buffer.getvalue()), plain)
        assert plain.getvalue() == src.read_bytes()

        # Retire k2, delete it, and bring it back from its tag and pass phrase.
        for state in (KeyState.INACTIVE, KeyState.DEPRECATED, KeyState.TERMINATED):
            ks.set_state("backups", "k2", state)
        ks.delete_key("backups", "k2")
        try:
            ks.recover_key("backups", "k2", k2.tag, "wrong words")
        except keystate.WrongPassphrase as e:
            assert e.code == "WRONG_PASSPHRASE"
        back = ks.recover_key("backups", "k2", k2.tag, "tape 7 offsite", state=KeyState.INACTIVE)
        assert back.tag == k2.tag

        # Errors: one class per kind, messages from the library.
        try:
            ks.encrypt("nope", b"")
        except keystate.NotFound as e:
            print(f"{type(e).__name__} ({e.code}): {e}")
        try:
            ks.delete_key("backups", "k1")
        except keystate.KeystateError as e:
            assert isinstance(e, keystate.NotDeletable), e

        ks.quiesce()
        stats: Stats = ks.stats()
        assert stats.quiesced and stats.states[KeyState.INACTIVE] == 2 and stats.states["active"] == 0
        ks.unquiesce()
        faults: list[RowFault] = ks.faults()
        assert faults == []
        print(ks.key("backups", "k1"))
        print(stats)
    assert ks.closed

    with Keystore.open(path) as again:
        assert [k.name for k in again.keys("backups")] == ["k1", "k2"]


if __name__ == "__main__":
    if len(sys.argv) > 1:
        tour(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as d:
            tour(Path(d))
    print("tour: ok")
