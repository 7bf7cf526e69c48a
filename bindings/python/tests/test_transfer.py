"""Export and import between keystores: round trip, duplicates, preview,
names, errors, and the report's records."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import key_in

import keystate
from keystate import Cipher, KeyState, Keystore, SkipReason

PASS = "move them 2026"


def source(tmp_path: Path) -> Keystore:
    ks = Keystore.create(str(tmp_path / "source.db"))
    key_in(ks, "g", "old", KeyState.INACTIVE)
    ks.create_key("g", "phrase", state=KeyState.ACTIVE, passphrase="tape 7 offsite")
    ks.create_group("small", cipher=Cipher.AES_128_GCM)
    ks.create_key("small", "s1", state="active")
    return ks


def test_round_trip_decrypts_old_data(tmp_path: Path) -> None:
    src = source(tmp_path)
    old = src.encrypt("g", b"old backup", aad=b"img")
    container = src.export_groups(PASS)
    with Keystore.create(str(tmp_path / "target.db")) as dst:
        report = dst.import_groups(container, PASS)
        assert isinstance(report, keystate.ImportReport) and not report.preview
        assert [g.source_name for g in report.groups_created] == ["g", "small"]
        assert report.groups[0].name.startswith("g_") and report.groups[0].name.endswith("Z")
        assert report.groups[1].cipher is Cipher.AES_128_GCM
        assert len(report.keys_imported) == 3 and report.keys_skipped == ()
        assert dst.decrypt(old, aad=b"img") == b"old backup"
        phrase = next(k for k in report.keys if k.name == "phrase")
        assert phrase.state is KeyState.ACTIVE and phrase.recoverable and phrase.imported
        assert dst.key_by_tag(phrase.tag).group == report.groups[0].name


def test_second_import_skips_everything_and_preview_changes_nothing(tmp_path: Path) -> None:
    src = source(tmp_path)
    container = src.export_groups(PASS, groups=["small"])
    dst = Keystore.create(str(tmp_path / "target.db"))
    preview = dst.preview_import(bytearray(container), PASS, preserve_names=True)
    assert preview.preview and dst.groups() == []
    report = dst.import_groups(memoryview(container), PASS, preserve_names=True)
    assert [g.name for g in dst.groups()] == ["small"]
    assert (report.groups, report.keys) == (preview.groups, preview.keys)
    again = dst.import_groups(container, PASS, preserve_names=True)
    assert again.groups[0].skipped == keystate.Skip(SkipReason.GROUP_EXISTS, again.groups[0].skipped.detail)
    assert again.keys[0].skipped is not None and again.keys[0].skipped.reason is SkipReason.TAG_EXISTS
    assert again.keys[0].skipped.reason == "tag-exists"
    assert "s1" in repr(again.keys[0])
    renamed = dst.import_groups(container, PASS)
    assert renamed.groups[0].skipped.reason is SkipReason.NO_NEW_KEYS
    assert len(dst.groups()) == 1


def test_files_and_errors(tmp_path: Path) -> None:
    src = source(tmp_path)
    file = tmp_path / "out.ksx"
    size = src.export_to_file(file, PASS, groups="g")
    assert file.stat().st_size == size and (file.stat().st_mode & 0o777) == 0o600
    dst = Keystore.create(str(tmp_path / "target.db"))
    with pytest.raises(keystate.WrongPassphrase):
        dst.import_file(file, "not it")
    data = bytearray(file.read_bytes())
    data[-3] ^= 1
    with pytest.raises(keystate.IntegrityError):
        dst.import_groups(bytes(data), PASS)
    with pytest.raises(keystate.NotFound):
        src.export_groups(PASS, groups=["nope"])
    with pytest.raises(keystate.InvalidArgument):
        src.export_groups("")
    dst.quiesce()
    with pytest.raises(keystate.Quiesced):
        dst.import_file(file, PASS)
    dst.unquiesce()
    assert dst.groups() == []
    report = dst.import_file(file, PASS, preserve_names=True)
    assert [g.name for g in report.groups_created] == ["g"]


def test_imported_passphrase_key_recovers(tmp_path: Path) -> None:
    src = source(tmp_path)
    old = src.encrypt("g", b"by phrase")
    dst = Keystore.create(str(tmp_path / "target.db"))
    dst.import_groups(src.export_groups(PASS), PASS, preserve_names=True)
    tag = dst.key("g", "phrase").tag
    for state in (KeyState.INACTIVE, KeyState.DEPRECATED, KeyState.TERMINATED):
        dst.set_state("g", "phrase", state)
    dst.delete_key("g", "phrase")
    dst.recover_key("g", "phrase", tag, "tape 7 offsite")
    assert dst.decrypt(old) == b"by phrase"
