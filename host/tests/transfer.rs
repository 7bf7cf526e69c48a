//! Export and import through the Rust API: round trips between keystores,
//! duplicates, preview, names, errors, and the files the API writes.

mod common;

use std::collections::BTreeSet;

use common::{Scratch, key_in, kind};
use keystate::{Cipher, ErrorKind, ImportOptions, KeyState, Keystore, SkipReason};

const PASS: &str = "move them 2026";

fn import(ks: &Keystore, container: &[u8], preserve_names: bool) -> keystate::ImportReport {
    ks.import(container, PASS, ImportOptions { preserve_names, preview: false }).unwrap()
}

/// Group "g": an inactive key, a terminated one, an active pass phrase key and
/// a prelive one; group "small" (AES-128) with one active key.
fn source(s: &Scratch) -> Keystore {
    let ks = Keystore::create(s.path("source.db"), None, None).unwrap();
    key_in(&ks, "g", "old", KeyState::Inactive);
    key_in(&ks, "g", "gone", KeyState::Terminated);
    ks.create_key("g", "phrase", KeyState::Active, Some("tape 7 offsite"), "weekly").unwrap();
    ks.create_key("g", "next", KeyState::Prelive, None, "").unwrap();
    ks.create_group("small", Cipher::Aes128Gcm, "short keys").unwrap();
    ks.create_key("small", "s1", KeyState::Active, None, "").unwrap();
    ks
}

/// Everything a keystore holds that an import may change.
fn snapshot(ks: &Keystore) -> (Vec<keystate::GroupInfo>, Vec<keystate::KeyInfo>) {
    (ks.groups().unwrap(), ks.keys(None, None).unwrap())
}

#[test]
fn round_trip_into_an_empty_keystore_decrypts_old_data() {
    let s = Scratch::new();
    let src = source(&s);
    let old_g = src.encrypt("g", b"backup image", b"img-1").unwrap();
    let old_small = src.encrypt("small", b"small image", b"").unwrap();
    let before = snapshot(&src);
    let container = src.export(None, PASS).unwrap();
    assert_eq!(snapshot(&src), before, "export changes nothing");

    // The target has its own (pass phrase) HMK and KPK.
    let dst = Keystore::create(s.path("target.db"), Some("target hmk"), Some("target kpk")).unwrap();
    let report = import(&dst, &container, false);
    assert!(!report.preview);
    assert_eq!(report.groups_created().count(), 2);
    assert_eq!(report.keys_imported().count(), 5);
    assert_eq!(report.keys_skipped().count(), 0);
    let g = &report.groups[0];
    let stamp = g.name.strip_prefix("g_").unwrap();
    assert!(stamp.len() == 16 && stamp.starts_with("20") && stamp.ends_with('Z'), "{}", g.name);
    assert_eq!(dst.decrypt(&old_g, b"img-1").unwrap(), b"backup image");
    assert_eq!(dst.decrypt(&old_small, b"").unwrap(), b"small image");
    for key in src.keys(None, None).unwrap() {
        let there = dst.key_by_tag(&key.tag).unwrap();
        assert_eq!((there.state, there.recoverable, there.created), (key.state, key.recoverable, key.created));
    }
    // New data in the target, reopened from disk with the target's pass phrases.
    drop(dst);
    let dst = Keystore::open(s.path("target.db"), Some("target hmk"), Some("target kpk")).unwrap();
    let new = dst.encrypt(&report.groups[0].name, b"new", b"").unwrap();
    assert_eq!(src.decrypt(&new, b"").unwrap(), b"new", "same key material on both sides");
    assert_eq!(dst.group(&report.groups[1].name).unwrap().cipher, Cipher::Aes128Gcm);
}

#[test]
fn importing_twice_skips_every_duplicate() {
    let s = Scratch::new();
    let container = source(&s).export(None, PASS).unwrap();
    let (_, dst) = s.keystore();
    import(&dst, &container, false);
    let before = snapshot(&dst);
    let again = import(&dst, &container, false);
    assert_eq!(snapshot(&dst), before, "a second import changes nothing");
    assert_eq!(again.keys_imported().count(), 0);
    assert!(again.keys.iter().all(|k| k.skipped.as_ref().unwrap().reason == SkipReason::TagExists));
    assert!(again.groups.iter().all(|g| g.skipped.as_ref().unwrap().reason == SkipReason::NoNewKeys));
    let detail = &again.keys[0].skipped.as_ref().unwrap().detail;
    assert!(detail.contains(&again.keys[0].tag), "{detail}");
}

#[test]
fn preview_reports_exactly_and_changes_nothing() {
    let s = Scratch::new();
    let container = source(&s).export(None, PASS).unwrap();
    let (_, dst) = s.keystore();
    dst.create_group("g", Cipher::Aes256Gcm, "already here").unwrap();
    let before = snapshot(&dst);
    let preview = dst.preview_import(&container, PASS, true).unwrap();
    let same = dst.import(&container, PASS, ImportOptions { preserve_names: true, preview: true }).unwrap();
    assert_eq!(snapshot(&dst), before);
    assert!(preview.preview && same.preview);
    assert_eq!(preview, same);
    assert_eq!(preview.groups[0].skipped.as_ref().unwrap().reason, SkipReason::GroupExists);
    assert!(preview.groups[1].created);
    let real = import(&dst, &container, true);
    assert_eq!((real.groups.clone(), real.keys.clone()), (preview.groups, preview.keys));
    assert_eq!(dst.keys(Some("g"), None).unwrap().len(), 0, "never merged into the existing g");
    assert_eq!(dst.keys(Some("small"), None).unwrap().len(), 1);
}

#[test]
fn wrong_pass_phrase_and_tampered_containers() {
    let s = Scratch::new();
    let container = source(&s).export(None, PASS).unwrap();
    let (_, dst) = s.keystore();
    let none = ImportOptions::default();
    assert_eq!(kind(dst.import(&container, "not it", none)), ErrorKind::WrongPassphrase);
    for at in [0, 4, 10, 40, 64, container.len() / 2, container.len() - 1] {
        let mut t = container.clone();
        t[at] ^= 0x10;
        assert_eq!(kind(dst.import(&t, PASS, none)), ErrorKind::Integrity, "byte {at}");
    }
    assert_eq!(kind(dst.import(&container[..container.len() - 1], PASS, none)), ErrorKind::Integrity);
    assert_eq!(kind(dst.import(b"SQLite format 3\0 not a container", PASS, none)), ErrorKind::Integrity);
    assert_eq!(kind(dst.import(&container, "", none)), ErrorKind::InvalidArgument);
    assert!(dst.groups().unwrap().is_empty(), "no refused import changed anything");
}

#[test]
fn export_of_selected_groups_only() {
    let s = Scratch::new();
    let src = source(&s);
    let container = src.export(Some(&["small"]), PASS).unwrap();
    let (_, dst) = s.keystore();
    let report = import(&dst, &container, true);
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].name, "small");
    assert_eq!(dst.keys(None, None).unwrap().len(), 1);
    assert_eq!(kind(src.export(Some(&["small", "missing"]), PASS)), ErrorKind::NotFound);
    assert_eq!(kind(src.export(Some(&[]), PASS)), ErrorKind::InvalidArgument);
}

#[test]
fn imported_passphrase_key_recovers_after_deletion() {
    let s = Scratch::new();
    let src = source(&s);
    let old = src.encrypt("g", b"encrypted by phrase", b"").unwrap();
    let (_, dst) = s.keystore();
    let report = import(&dst, &src.export(None, PASS).unwrap(), false);
    let group = &report.groups[0].name;
    let tag = dst.key(group, "phrase").unwrap().tag;
    for state in [KeyState::Inactive, KeyState::Deprecated, KeyState::Terminated] {
        dst.set_state(group, "phrase", state).unwrap();
    }
    dst.delete_key(group, "phrase").unwrap();
    assert_eq!(kind(dst.decrypt(&old, b"")), ErrorKind::NotFound);
    let back = dst.recover_key(group, "phrase", &tag, "tape 7 offsite", KeyState::Inactive).unwrap();
    assert_eq!(back.tag, tag);
    assert_eq!(dst.decrypt(&old, b"").unwrap(), b"encrypted by phrase");
}

#[test]
fn one_active_key_per_group_holds_and_names_stay_unique() {
    let s = Scratch::new();
    let container = source(&s).export(None, PASS).unwrap();
    let (_, dst) = s.keystore();
    key_in(&dst, "g", "mine", KeyState::Active);
    import(&dst, &container, false);
    // Renamed, then the same container with names preserved (all duplicates by then).
    let other = Keystore::create(s.path("other.db"), None, None).unwrap();
    import(&other, &container, false);
    import(&other, &container, true);
    for ks in [&dst, &other] {
        let names: BTreeSet<_> = ks.groups().unwrap().into_iter().map(|g| g.name).collect();
        for name in &names {
            let active = ks.keys(Some(name), Some(KeyState::Active)).unwrap();
            assert!(active.len() <= 1, "{name}: {active:?}");
        }
    }
    assert_eq!(dst.group("g").unwrap().active_key.as_deref(), Some("mine"));
}

#[test]
fn quiesced_keystores_export_but_do_not_import() {
    let s = Scratch::new();
    let src = source(&s);
    src.quiesce().unwrap();
    let container = src.export(None, PASS).unwrap();
    let (_, dst) = s.keystore();
    dst.quiesce().unwrap();
    assert_eq!(kind(dst.import(&container, PASS, ImportOptions::default())), ErrorKind::Quiesced);
    assert_eq!(kind(dst.preview_import(&container, PASS, false)), ErrorKind::Quiesced);
    dst.unquiesce().unwrap();
    assert_eq!(import(&dst, &container, false).keys_imported().count(), 5);
}

#[test]
fn export_file_is_private_and_import_file_reads_it() {
    let s = Scratch::new();
    let src = source(&s);
    let file = s.path("keys.ksx");
    let size = src.export_to_file(&file, None, PASS).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let (_, dst) = s.keystore();
    let report = dst.import_file(&file, PASS, ImportOptions::default()).unwrap();
    assert_eq!(report.keys_imported().count(), 5);
    assert_eq!(kind(dst.import_file(s.path("missing.ksx"), PASS, ImportOptions::default())), ErrorKind::NotFound);
    // A failed export leaves no file behind.
    assert_eq!(kind(src.export_to_file(s.path("no.ksx"), Some(&["nope"]), PASS)), ErrorKind::NotFound);
    assert!(!s.path("no.ksx").exists());
}

#[test]
fn report_serializes_with_stable_names() {
    let s = Scratch::new();
    let container = source(&s).export(None, PASS).unwrap();
    let (_, dst) = s.keystore();
    import(&dst, &container, false);
    let report = dst.preview_import(&container, PASS, false).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["preview"], true);
    assert_eq!(json["keys"][0]["skipped"]["reason"], "tag-exists");
    assert_eq!(json["groups"][0]["skipped"]["reason"], "no-new-keys");
    assert_eq!(json["groups"][1]["cipher"], "AES_128_GCM");
}
