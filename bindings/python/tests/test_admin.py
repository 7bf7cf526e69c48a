"""Administration from Python: the audit trail with an actor, its
verification against a row edited in the database, and HMK/KPK rotation."""

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

import keystate
from keystate import KeyState


def test_audit_records_actor_and_states(tmp_path):
    path = tmp_path / "keys.db"
    with keystate.Keystore.create(path, actor="py-admin") as ks:
        assert ks.actor == "py-admin"
        ks.create_group("g")
        ks.create_key("g", "k1", state=KeyState.ACTIVE)
        ks.set_actor("py-other")
        ks.create_key("g", "k2", state="active")
        entries = ks.audit()
        assert [(e.seq, e.action, e.actor) for e in entries] == [
            (1, "create", "py-admin"),
            (2, "create-group", "py-admin"),
            (3, "create-key", "py-admin"),
            (4, "create-key", "py-other"),
            (5, "set-state", "py-other"),
        ]
        bumped = entries[4]
        assert (bumped.key, bumped.old_state, bumped.new_state) == ("k1", KeyState.ACTIVE, KeyState.INACTIVE)
        assert isinstance(bumped.time, datetime) and bumped.time.tzinfo is not None
        assert [e.seq for e in ks.audit(key="k1")] == [3, 5]
        assert [e.seq for e in ks.audit(limit=2)] == [4, 5]
        assert ks.audit(since=datetime.now(timezone.utc) + timedelta(days=1)) == []
        with pytest.raises(ValueError):
            ks.audit(since=datetime.now())
        with pytest.raises(keystate.InvalidArgument):
            ks.set_actor("bad\nactor")
        report = ks.verify_audit()
        assert report.intact and report.verified == 5 and report.head_seq == 5
        assert ks.stats().audit_entries == 5


def test_verify_names_an_edited_row(tmp_path):
    path = tmp_path / "keys.db"
    with keystate.Keystore.create(path) as ks:
        ks.create_group("g")
        ks.create_group("h")
        db = sqlite3.connect(path)
        ids = [r[0] for r in db.execute("SELECT id FROM audit ORDER BY id")]
        db.execute("UPDATE audit SET body = CAST(body || x'00' AS BLOB) WHERE id = ?", (ids[1],))
        db.commit()
        db.close()
        report = ks.verify_audit()
        assert not report.intact
        assert (report.fault.problem, report.fault.seq, report.fault.row_id) == ("edited", 2, ids[1])
        with pytest.raises(keystate.IntegrityError, match="entry 2"):
            ks.audit()


def test_rotation_old_secret_refused_new_works_data_decrypts(tmp_path):
    path = tmp_path / "keys.db"
    ks = keystate.Keystore.create(path, hmk_passphrase="old hmk")
    ks.create_group("g")
    ks.create_key("g", "k", state="active")
    sealed = ks.encrypt("g", b"payload")
    ks.rotate_hmk("new hmk", id="hmk-2")
    ks.rotate_kpk()  # a new random key file
    assert ks.stats().hmk_id == "hmk-2"
    ks.close()
    with pytest.raises(keystate.WrongPassphrase):
        keystate.Keystore.open(path, hmk_passphrase="old hmk")
    with keystate.Keystore.open(path, hmk_passphrase="new hmk") as again:
        assert again.decrypt(sealed) == b"payload"
        assert [e.action for e in again.audit(action="rotate-hmk")] == ["rotate-hmk"]
        again.quiesce()
        with pytest.raises(keystate.Quiesced):
            again.rotate_kpk("x")
