//! The rule book through the real component, as a Rust user sees it: every
//! test that takes a `&Scratch` runs on SQLite and on PostgreSQL.

mod common;

on_every_backend! {
    every_transition_pair_through_the_host,
    create_in_each_state,
    every_state_and_operation_through_the_host,
    the_bump_holds_after_reopen,
    recover_through_the_host,
    reopen_after_every_kind_of_mutation,
    passphrase_keystore_and_wrong_passphrases,
    quiesce_is_seen_by_every_handle,
    a_change_in_one_handle_is_seen_by_the_next_operation_of_another,
    files_round_trip_and_tampering_leaves_no_output,
    a_guest_that_hits_its_memory_cap_is_an_error_and_is_rebuilt,
    a_guest_past_its_deadline_is_an_error_and_is_rebuilt,
    tampered_ciphertexts_are_integrity_through_the_host,
    data_for_another_keystore_or_group,
    a_keystore_is_shared_between_threads,
    data_operations_see_the_handles_own_mutations_at_once,
    a_stream_does_not_hold_the_handle,
    a_tampered_row_is_integrity_and_the_rest_stays_usable,
    a_batch_is_one_commit_seen_whole_by_another_handle,
    a_refused_mutation_in_a_batch_persists_none_of_it,
    a_keystore_larger_than_one_load_slice_opens_whole,
    mutations_given_as_data_apply_in_one_commit,
}

use KeyState::*;
use common::{Scratch, key_in, kind};
use keystate::{
    Cipher, CreateOptions, ErrorKind, KeyState, Keystore, Limits, OpenOptions, Operation, allowed_operations,
    can_transition,
};

#[test]
fn the_component_imports_nothing_but_its_host_interface() {
    let imports = keystate::component_imports().unwrap();
    assert!(!imports.is_empty());
    for name in &imports {
        assert!(!name.starts_with("wasi:"), "the component imports {name}");
        assert!(name.starts_with("keystate:kms/"), "unexpected import {name}");
    }
}

fn every_transition_pair_through_the_host(s: &Scratch) {
    let (_, ks) = s.keystore();
    for (i, from) in KeyState::ALL.into_iter().enumerate() {
        for (j, to) in KeyState::ALL.into_iter().enumerate() {
            let group = format!("g{i}{j}");
            key_in(&ks, &group, "k", from);
            let allowed = can_transition(from, to).unwrap();
            match ks.set_state(&group, "k", to) {
                Ok(info) => {
                    assert!(allowed, "{from} -> {to} was allowed");
                    assert_eq!(info.state, to);
                }
                Err(e) => {
                    assert!(!allowed, "{from} -> {to} was refused: {e}");
                    assert_eq!(e.kind(), ErrorKind::InvalidTransition);
                    assert!(e.message().contains(from.as_str()) && e.message().contains(to.as_str()), "{e}");
                    assert_eq!(ks.key(&group, "k").unwrap().state, from);
                }
            }
        }
    }
    // The table itself, as the rule book writes it.
    let moves: Vec<(KeyState, KeyState)> = KeyState::ALL
        .into_iter()
        .flat_map(|a| KeyState::ALL.into_iter().map(move |b| (a, b)))
        .filter(|&(a, b)| a != b && can_transition(a, b).unwrap())
        .collect();
    assert_eq!(
        moves,
        [
            (Prelive, Active),
            (Active, Inactive),
            (Inactive, Active),
            (Inactive, Deprecated),
            (Deprecated, Inactive),
            (Deprecated, Terminated),
            (Terminated, Deprecated)
        ]
    );
}

fn create_in_each_state(s: &Scratch) {
    let (_, ks) = s.keystore();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    for state in KeyState::ALL {
        let r = ks.create_key("g", state.as_str(), state, None, "");
        if matches!(state, Prelive | Active) {
            assert_eq!(r.unwrap().state, state);
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidTransition);
            assert!(e.message().contains(state.as_str()), "{e}");
        }
    }
    assert_eq!(ks.keys(Some("g"), None).unwrap().len(), 2);
}

fn every_state_and_operation_through_the_host(s: &Scratch) {
    let (_, ks) = s.keystore();
    let expected = [
        (Prelive, vec![Operation::Delete]),
        (Active, vec![Operation::Encrypt, Operation::Decrypt]),
        (Inactive, vec![Operation::Decrypt]),
        (Deprecated, vec![]),
        (Terminated, vec![Operation::Delete]),
    ];
    for (state, ops) in expected {
        assert_eq!(allowed_operations(state).unwrap(), ops, "{state}");
        for op in [Operation::Encrypt, Operation::Decrypt, Operation::Delete] {
            assert_eq!(keystate::allows(state, op).unwrap(), ops.contains(&op), "{state} {op:?}");
        }
        let group = format!("use-{state}");
        // Data made while the key was active (a prelive key never made any).
        key_in(&ks, &group, "k", if state == Prelive { Prelive } else { Active });
        let sealed = (state != Prelive).then(|| ks.encrypt(&group, b"payload", b"").unwrap());
        let walk: &[KeyState] = match state {
            Inactive => &[Inactive],
            Deprecated => &[Inactive, Deprecated],
            Terminated => &[Inactive, Deprecated, Terminated],
            _ => &[],
        };
        for &st in walk {
            ks.set_state(&group, "k", st).unwrap();
        }
        let enc = ks.encrypt(&group, b"x", b"");
        assert_eq!(enc.is_ok(), ops.contains(&Operation::Encrypt), "encrypt with {state}");
        if let Some(sealed) = sealed {
            match ks.decrypt(&sealed, b"") {
                Ok(p) => {
                    assert!(ops.contains(&Operation::Decrypt), "decrypt with {state}");
                    assert_eq!(p, b"payload");
                }
                Err(e) => {
                    assert!(!ops.contains(&Operation::Decrypt));
                    assert_eq!(e.kind(), ErrorKind::KeyUnusable);
                    assert!(e.message().contains(state.as_str()) && e.message().contains("decrypt"), "{e}");
                }
            }
        }
        let del = ks.delete_key(&group, "k");
        assert_eq!(del.is_ok(), ops.contains(&Operation::Delete), "delete {state}");
        if let Err(e) = del {
            assert_eq!(e.kind(), ErrorKind::NotDeletable);
        }
    }
}

fn the_bump_holds_after_reopen(s: &Scratch) {
    let (path, ks) = s.keystore();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_key("g", "k1", Active, None, "").unwrap();
    ks.create_key("g", "k2", Prelive, None, "").unwrap();
    ks.set_state("g", "k2", Active).unwrap();
    assert_eq!(ks.key("g", "k1").unwrap().state, Inactive);
    drop(ks);
    let ks = Keystore::open(&path, None, None).unwrap();
    let active = ks.keys(Some("g"), Some(Active)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].name, "k2");
    assert_eq!(ks.key("g", "k1").unwrap().state, Inactive);
    assert_eq!(ks.group("g").unwrap().active_key.as_deref(), Some("k2"));
}

fn recover_through_the_host(s: &Scratch) {
    let (path, ks) = s.keystore();
    ks.create_group("g", Cipher::Aes128Gcm, "").unwrap();
    let key = ks.create_key("g", "pp", Active, Some("offsite tape"), "").unwrap();
    let sealed = ks.encrypt("g", b"before deletion", b"aad").unwrap();
    for st in [Inactive, Deprecated, Terminated] {
        ks.set_state("g", "pp", st).unwrap();
    }
    ks.delete_key("g", "pp").unwrap();
    assert_eq!(kind(ks.decrypt(&sealed, b"aad")), ErrorKind::NotFound);
    assert_eq!(kind(ks.recover_key("g", "pp", &key.tag, "offsite tapE", Inactive)), ErrorKind::WrongPassphrase);
    let back = ks.recover_key("g", "pp", &key.tag, "offsite tape", Inactive).unwrap();
    assert_eq!((back.tag.as_str(), back.state), (key.tag.as_str(), Inactive));
    drop(ks);
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.decrypt(&sealed, b"aad").unwrap(), b"before deletion");
    assert_eq!(ks.key_by_tag(&key.tag).unwrap().name, "pp");

    // A random key cannot come back.
    ks.create_key("g", "rnd", Prelive, None, "").unwrap();
    let rnd = ks.key("g", "rnd").unwrap();
    assert!(!rnd.recoverable);
    ks.delete_key("g", "rnd").unwrap();
    assert_eq!(kind(ks.recover_key("g", "rnd", &rnd.tag, "", Inactive)), ErrorKind::WrongPassphrase);
}

fn reopen_after_every_kind_of_mutation(s: &Scratch) {
    let (path, ks) = s.keystore();
    let same = |ks: &Keystore| {
        let other = Keystore::open(&path, None, None).unwrap();
        assert_eq!(other.groups().unwrap(), ks.groups().unwrap());
        assert_eq!(other.keys(None, None).unwrap(), ks.keys(None, None).unwrap());
        assert_eq!(other.stats().unwrap(), ks.stats().unwrap());
    };
    ks.create_group("g", Cipher::Aes256Gcm, "first").unwrap();
    same(&ks);
    ks.modify_group("g", Some("g2"), Some("renamed")).unwrap();
    same(&ks);
    ks.create_key("g2", "a", Active, None, "").unwrap();
    same(&ks);
    ks.create_key("g2", "b", Prelive, Some("pp"), "").unwrap();
    same(&ks);
    ks.set_state("g2", "b", Active).unwrap();
    same(&ks);
    ks.modify_key("g2", "a", Some("a2"), Some("old")).unwrap();
    same(&ks);
    ks.set_state("g2", "a2", Deprecated).unwrap();
    ks.set_state("g2", "a2", Terminated).unwrap();
    same(&ks);
    ks.delete_key("g2", "a2").unwrap();
    same(&ks);
    ks.create_group("empty", Cipher::Aes256Gcm, "").unwrap();
    ks.delete_group("empty").unwrap();
    same(&ks);
    ks.quiesce().unwrap();
    same(&ks);
    ks.unquiesce().unwrap();
    same(&ks);
}

fn passphrase_keystore_and_wrong_passphrases(s: &Scratch) {
    let path = s.path("pp.db");
    let options = CreateOptions {
        hmk_passphrase: Some("hmk words"),
        kpk_passphrase: Some("kpk words"),
        hmk_id: Some("hmk-prod-1"),
        ..Default::default()
    };
    let ks = Keystore::create_with(&path, options).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    drop(ks);
    assert!(!s.file("pp.db.hmk").exists(), "no key file for a pass phrase HMK");
    let info = keystate::inspect(&path).unwrap();
    assert_eq!(
        (info.hmk.id.as_str(), info.hmk.needs_passphrase(), info.kpk.needs_passphrase()),
        ("hmk-prod-1", true, true)
    );
    assert_eq!(info.format_version, 1);
    assert_eq!(kind(Keystore::open(&path, Some("hmk wordz"), Some("kpk words"))), ErrorKind::WrongPassphrase);
    assert_eq!(kind(Keystore::open(&path, Some("hmk words"), Some("kpk wordz"))), ErrorKind::WrongPassphrase);
    assert_eq!(kind(Keystore::open(&path, None, Some("kpk words"))), ErrorKind::InvalidArgument);
    let ks = Keystore::open(&path, Some("hmk words"), Some("kpk words")).unwrap();
    assert_eq!(ks.stats().unwrap().hmk_id, "hmk-prod-1");
    assert_eq!(ks.groups().unwrap().len(), 1);
}

#[test]
fn key_files_are_private_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let (path, ks) = s.keystore();
    ks.quiesce().unwrap();
    drop(ks);
    let info = keystate::inspect(&path).unwrap();
    assert_eq!(info.hmk.key_file.as_deref(), Some(s.path("keys.db.hmk").as_path()));
    assert_eq!(info.kpk.key_file.as_deref(), Some(s.path("keys.db.kpk").as_path()));
    assert!(info.quiesced && !info.hmk.needs_passphrase());
    for file in ["keys.db", "keys.db.hmk", "keys.db.kpk"] {
        let mode = std::fs::metadata(s.path(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    // Another keystore's key file is a wrong key, not corruption.
    let other = s.path("other.db");
    drop(Keystore::create(&other, None, None).unwrap());
    std::fs::copy(s.path("other.db.kpk"), s.path("keys.db.kpk")).unwrap();
    assert_eq!(kind(Keystore::open(&path, None, None)), ErrorKind::WrongPassphrase);
    std::fs::write(s.path("keys.db.kpk"), "not hex\n").unwrap();
    assert_eq!(kind(Keystore::open(&path, None, None)), ErrorKind::Integrity);
    std::fs::remove_file(s.path("keys.db.kpk")).unwrap();
    assert_eq!(kind(Keystore::open(&path, None, None)), ErrorKind::NotFound);
}

#[test]
fn missing_existing_and_garbage_keystores() {
    let s = Scratch::new();
    assert_eq!(kind(Keystore::open(s.path("none.db"), None, None)), ErrorKind::NotFound);
    let (path, ks) = s.keystore();
    drop(ks);
    assert_eq!(kind(Keystore::create(&path, None, None)), ErrorKind::AlreadyExists);
    let garbage = s.path("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    std::fs::write(s.path("garbage.db.hmk"), "00".repeat(32)).unwrap();
    let e = Keystore::open(&garbage, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    // Other SQLite files are not keystores either.
    let foreign = s.path("foreign.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
    assert_eq!(kind(Keystore::open(&foreign, None, None)), ErrorKind::Integrity);
}

fn a_tampered_row_is_integrity_and_the_rest_stays_usable(s: &Scratch) {
    let (path, ks) = s.keystore();
    key_in(&ks, "g", "k", Active);
    key_in(&ks, "h", "k", Active);
    key_in(&ks, "x", "k", Prelive);
    let x_tag = ks.key("x", "k").unwrap().tag;
    let g_data = ks.encrypt("g", b"g", b"").unwrap();
    let h_data = ks.encrypt("h", b"h", b"").unwrap();
    let g_tag = ks.key("g", "k").unwrap().tag;
    drop(ks);

    let changed = s.update_rows(
        &path,
        "UPDATE rows SET body = CAST(substr(body, 1, 20)
             || CASE WHEN substr(body, 21, 1) = x'ff' THEN x'00' ELSE x'ff' END || substr(body, 22) AS BLOB)
         WHERE id LIKE ?1",
        "UPDATE {rows} SET body = overlay(body placing
             CASE WHEN get_byte(body, 20) = 255 THEN '\\x00'::bytea ELSE '\\xff'::bytea END from 21 for 1)
         WHERE id LIKE $1",
        &format!("k:%:{g_tag}"),
    );
    assert_eq!(changed, 1);
    // A row mangled into garbage (in SQLite even the wrong column type) is a
    // corrupt row too, not an unreadable keystore.
    let changed = s.update_rows(
        &path,
        "UPDATE rows SET body = 'garbage' WHERE id LIKE ?1",
        "UPDATE {rows} SET body = 'garbage'::bytea WHERE id LIKE $1",
        &format!("k:%:{x_tag}"),
    );
    assert_eq!(changed, 1);

    let ks = Keystore::open(&path, None, None).unwrap();
    let faults = ks.faults().unwrap();
    assert_eq!(faults.len(), 2);
    assert!(faults.iter().any(|f| f.id.ends_with(&g_tag)), "{faults:?}");
    assert!(faults.iter().any(|f| f.id.ends_with(&x_tag)), "{faults:?}");
    assert_eq!(ks.stats().unwrap().corrupt_rows, 2);
    assert_eq!(kind(ks.decrypt(&g_data, b"")), ErrorKind::Integrity);
    assert_eq!(kind(ks.key_by_tag(&g_tag)), ErrorKind::Integrity);
    assert_eq!(ks.decrypt(&h_data, b"").unwrap(), b"h");
    ks.create_key("h", "k2", Active, None, "").unwrap();
    // No activation in the group whose active key may be the corrupt one.
    ks.create_key("g", "k2", Prelive, None, "").unwrap();
    assert_eq!(kind(ks.set_state("g", "k2", Active)), ErrorKind::Integrity);
}

fn quiesce_is_seen_by_every_handle(s: &Scratch) {
    let (path, a) = s.keystore();
    key_in(&a, "g", "k", Active);
    let b = Keystore::open(&path, None, None).unwrap();
    a.quiesce().unwrap();
    assert_eq!(kind(b.create_group("h", Cipher::Aes256Gcm, "")), ErrorKind::Quiesced);
    assert_eq!(kind(b.set_state("g", "k", Inactive)), ErrorKind::Quiesced);
    let sealed = b.encrypt("g", b"reads go on", b"").unwrap();
    assert_eq!(a.decrypt(&sealed, b"").unwrap(), b"reads go on");
    assert!(b.stats().unwrap().quiesced);
    b.unquiesce().unwrap();
    a.set_state("g", "k", Inactive).unwrap();
}

fn a_change_in_one_handle_is_seen_by_the_next_operation_of_another(s: &Scratch) {
    let (path, a) = s.keystore();
    key_in(&a, "g", "k1", Active);
    let b = Keystore::open(&path, None, None).unwrap();
    b.encrypt("g", b"ok", b"").unwrap();
    a.set_state("g", "k1", Inactive).unwrap();
    a.set_state("g", "k1", Deprecated).unwrap();
    assert_eq!(kind(b.encrypt("g", b"refused", b"")), ErrorKind::KeyUnusable);
    a.create_key("g", "k2", Active, None, "").unwrap();
    assert_eq!(b.group("g").unwrap().active_key.as_deref(), Some("k2"));
    // b activates k1's successor path without seeing stale state.
    b.set_state("g", "k1", Inactive).unwrap();
    b.set_state("g", "k1", Active).unwrap();
    assert_eq!(a.key("g", "k2").unwrap().state, Inactive);
    assert_eq!(a.keys(Some("g"), Some(Active)).unwrap().len(), 1);
    b.set_state("g", "k1", Inactive).unwrap();
    b.set_state("g", "k1", Deprecated).unwrap();
    b.set_state("g", "k1", Terminated).unwrap();
    b.delete_key("g", "k1").unwrap();
    assert_eq!(kind(a.key("g", "k1")), ErrorKind::NotFound);
}

fn files_round_trip_and_tampering_leaves_no_output(s: &Scratch) {
    let (_, ks) = s.keystore();
    key_in(&ks, "g", "k", Active);
    let src = s.file("plain.bin");
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let enc = s.file("plain.bin.ks");
    assert_eq!(ks.encrypt_file("g", &src, &enc, b"img").unwrap(), data.len() as u64);
    let dec = s.file("plain.out");
    assert_eq!(ks.decrypt_file(&enc, &dec, b"img").unwrap(), data.len() as u64);
    assert_eq!(std::fs::read(&dec).unwrap(), data);

    // One-shot and streaming produce interchangeable data.
    let small = ks.encrypt("g", &data[..1000], b"").unwrap();
    let mut out = Vec::new();
    ks.decrypt_stream(&mut &small[..], &mut out, b"", &mut |_| {}).unwrap();
    assert_eq!(out, &data[..1000]);

    let mut sealed = std::fs::read(&enc).unwrap();
    let mid = sealed.len() / 2;
    sealed[mid] ^= 1;
    std::fs::write(&enc, &sealed).unwrap();
    let dec2 = s.file("tampered.out");
    assert_eq!(kind(ks.decrypt_file(&enc, &dec2, b"img")), ErrorKind::Integrity);
    assert!(!dec2.exists(), "no partial plaintext is left behind");
    sealed[mid] ^= 1;
    sealed.truncate(sealed.len() - 100);
    std::fs::write(&enc, &sealed).unwrap();
    assert_eq!(kind(ks.decrypt_file(&enc, &dec2, b"img")), ErrorKind::Integrity);
    assert!(!dec2.exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(kind(ks.decrypt(&[], b"")), ErrorKind::Integrity);
}

fn a_guest_that_hits_its_memory_cap_is_an_error_and_is_rebuilt(s: &Scratch) {
    let path = s.path("small.db");
    let limits = Limits { memory_bytes: 8 << 20, ..Limits::default() };
    let ks = Keystore::create_with(&path, CreateOptions { limits, ..Default::default() }).unwrap();
    key_in(&ks, "g", "k", Active);
    // Argon2id needs 19 MiB: more than this sandbox may have.
    let e = ks.create_key("g", "pp", Prelive, Some("words"), "").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(e.message().contains("memory limit"), "{e}");
    // Rebuilt from storage: what was committed is there, the failed call is not.
    let keys: Vec<String> = ks.keys(None, None).unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(keys, ["k"]);
    ks.create_key("g", "k2", Prelive, None, "").unwrap();
    drop(ks);
    let ks = Keystore::open_with(&path, OpenOptions { limits, ..Default::default() }).unwrap();
    assert_eq!(ks.keys(None, None).unwrap().len(), 2);
}

fn a_guest_past_its_deadline_is_an_error_and_is_rebuilt(s: &Scratch) {
    let (path, ks) = s.keystore();
    key_in(&ks, "g", "k", Active);
    drop(ks);
    let limits = Limits { call_deadline: std::time::Duration::from_millis(1), ..Limits::default() };
    let ks = Keystore::open_with(&path, OpenOptions { limits, ..Default::default() });
    // Even opening may run out of time on a slow machine; both are the same kind.
    match ks {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Internal, "{e}"),
        Ok(ks) => {
            // Argon2id takes far longer than one epoch tick.
            let e = ks.create_key("g", "pp", Prelive, Some("words"), "").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
            assert!(e.message().contains("time limit"), "{e}");
        }
    }
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.keys(None, None).unwrap().len(), 1);
}

fn tampered_ciphertexts_are_integrity_through_the_host(s: &Scratch) {
    let (_, ks) = s.keystore();
    key_in(&ks, "g", "k", Active);
    // Three chunks of the default 64 KiB and a short final one.
    let data: Vec<u8> = (0..(3 * 65536 + 1000)).map(|i| (i % 253) as u8).collect();
    let sealed = ks.encrypt("g", &data, b"image-9").unwrap();
    const HEADER: usize = 60;
    const CHUNK: usize = 65536 + 16;
    assert_eq!(sealed.len(), HEADER + 3 * CHUNK + 1000 + 16);
    let integrity = |bytes: &[u8], aad: &[u8], what: &str| {
        let e = ks.decrypt(bytes, aad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{what}: {e}");
    };
    // Every header byte but the key tag (which names another key: not found).
    for i in (0..HEADER).filter(|i| !(12..28).contains(i)) {
        let mut t = sealed.clone();
        t[i] ^= 0x01;
        integrity(&t, b"image-9", &format!("header byte {i}"));
    }
    let mut t = sealed.clone();
    t[20] ^= 0x01;
    assert_eq!(kind(ks.decrypt(&t, b"image-9")), ErrorKind::NotFound);
    // First, middle and last byte of every chunk, and every byte of every GCM tag.
    let chunk_starts = [HEADER, HEADER + CHUNK, HEADER + 2 * CHUNK, HEADER + 3 * CHUNK];
    for (n, &start) in chunk_starts.iter().enumerate() {
        let end = if n == 3 { sealed.len() } else { start + CHUNK };
        let mut positions = vec![start, (start + end) / 2];
        positions.extend(end - 16..end);
        for i in positions {
            let mut t = sealed.clone();
            t[i] ^= 0x80;
            integrity(&t, b"image-9", &format!("chunk {n} byte {i}"));
        }
    }
    integrity(&sealed, b"image-8", "wrong associated data");
    integrity(&sealed, b"", "missing associated data");
    integrity(&sealed[..sealed.len() - 1], b"image-9", "last byte cut");
    integrity(&sealed[..HEADER + 2 * CHUNK], b"image-9", "cut at a chunk boundary");
    integrity(&sealed[..HEADER], b"image-9", "header only");
    integrity(&sealed[..30], b"image-9", "half a header");
    let mut swapped = sealed[..HEADER].to_vec();
    swapped.extend_from_slice(&sealed[HEADER + CHUNK..HEADER + 2 * CHUNK]);
    swapped.extend_from_slice(&sealed[HEADER..HEADER + CHUNK]);
    swapped.extend_from_slice(&sealed[HEADER + 2 * CHUNK..]);
    integrity(&swapped, b"image-9", "two chunks swapped");
    let mut dropped = sealed[..HEADER + CHUNK].to_vec();
    dropped.extend_from_slice(&sealed[HEADER + 2 * CHUNK..]);
    integrity(&dropped, b"image-9", "a chunk dropped");
    let mut appended = sealed.clone();
    appended.extend_from_slice(&[0u8; 17]);
    integrity(&appended, b"image-9", "bytes appended");
    assert_eq!(ks.decrypt(&sealed, b"image-9").unwrap(), data);
}

fn data_for_another_keystore_or_group(s: &Scratch) {
    let (_, a) = s.keystore();
    key_in(&a, "g", "k", Active);
    let other = Keystore::create(s.path("other.db"), None, None).unwrap();
    key_in(&other, "g", "k", Active);
    let sealed = a.encrypt("g", b"a's data", b"").unwrap();
    assert_eq!(kind(other.decrypt(&sealed, b"")), ErrorKind::NotFound);
}

fn a_keystore_is_shared_between_threads(s: &Scratch) {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Keystore>();
    let (_, ks) = s.keystore();
    key_in(&ks, "g", "k", Active);
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let ks = &ks;
            scope.spawn(move || {
                for i in 0..25u8 {
                    let msg = [t, i];
                    let sealed = ks.encrypt("g", &msg, &[t]).unwrap();
                    assert_eq!(ks.decrypt(&sealed, &[t]).unwrap(), msg);
                }
            });
        }
    });
}

fn data_operations_see_the_handles_own_mutations_at_once(s: &Scratch) {
    let (_, ks) = s.keystore();
    key_in(&ks, "g", "k1", Active);
    // Warm the sandboxes that serve encryption, then change the keys under them.
    let old = ks.encrypt("g", b"one", b"").unwrap();
    ks.create_key("g", "k2", Active, None, "").unwrap();
    let new = ks.encrypt("g", b"two", b"").unwrap();
    assert_eq!(ks.key_by_tag(&hex_tag(&new)).unwrap().name, "k2", "encrypted with the new active key");
    ks.set_state("g", "k1", Deprecated).unwrap();
    assert_eq!(kind(ks.decrypt(&old, b"")), ErrorKind::KeyUnusable);
    ks.set_state("g", "k2", Inactive).unwrap();
    assert_eq!(kind(ks.encrypt("g", b"three", b"")), ErrorKind::KeyUnusable);
    assert_eq!(ks.decrypt(&new, b"").unwrap(), b"two");
}

fn a_stream_does_not_hold_the_handle(s: &Scratch) {
    // The writer of a running decryption uses the same handle: this must not wait on the stream.
    struct Looking<'a> {
        ks: &'a Keystore,
        out: Vec<u8>,
        lookups: usize,
    }
    impl std::io::Write for Looking<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            assert_eq!(self.ks.key("g", "k").unwrap().state, Active);
            self.ks.encrypt("g", b"meanwhile", b"").unwrap();
            self.lookups += 1;
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (_, ks) = s.keystore();
    key_in(&ks, "g", "k", Active);
    let data = vec![7u8; 3 << 20];
    let sealed = ks.encrypt("g", &data, b"").unwrap();
    let mut out = Looking { ks: &ks, out: Vec::new(), lookups: 0 };
    ks.decrypt_stream(&mut &sealed[..], &mut out, b"", &mut |_| {}).unwrap();
    assert_eq!(out.out, data);
    assert!(out.lookups > 0);
}

fn hex_tag(ciphertext: &[u8]) -> String {
    ciphertext[12..28].iter().map(|b| format!("{b:02x}")).collect()
}

fn a_batch_is_one_commit_seen_whole_by_another_handle(s: &Scratch) {
    let (path, a) = s.keystore();
    let b = Keystore::open(&path, None, None).unwrap();
    a.groups().unwrap();
    let before = a.committed_seq();
    let made = a
        .batch(|batch| {
            batch.create_group("tapes", Cipher::Aes256Gcm, "")?;
            for i in 0..50 {
                batch.create_key("tapes", &format!("t{i}"), Prelive, None, "")?;
            }
            batch.set_state("tapes", "t0", Active)?;
            // Activating t1 bumps t0, which this batch also made: both rows pass
            // through two versions inside one commit.
            batch.set_state("tapes", "t1", Active)?;
            batch.delete_key("tapes", "t49")?;
            Ok(batch.create_key("tapes", "last", Prelive, Some("correct horse"), "")?.name)
        })
        .unwrap();
    assert_eq!(made, "last");
    assert_eq!(a.committed_seq(), before + 1, "one commit for the whole batch");
    assert_eq!(b.keys(Some("tapes"), None).unwrap().len(), 50);
    assert_eq!(b.key("tapes", "t0").unwrap().state, Inactive);
    assert_eq!(b.group("tapes").unwrap().active_key.as_deref(), Some("t1"));
    assert_eq!(kind(b.key("tapes", "t49")), ErrorKind::NotFound);
    let sealed = b.encrypt("tapes", b"tape", b"").unwrap();
    assert_eq!(a.decrypt(&sealed, b"").unwrap(), b"tape");
    drop((a, b));
    let reopened = Keystore::open(&path, None, None).unwrap();
    assert_eq!(reopened.keys(Some("tapes"), Some(Active)).unwrap().len(), 1);
    // Every mutation of the batch has its audit entry, chained in order.
    let entries = reopened.audit(&keystate::AuditFilter::default()).unwrap();
    assert_eq!(entries.iter().filter(|e| e.action == "create-key").count(), 51);
    assert!(reopened.verify_audit().unwrap().is_intact());
}

fn a_refused_mutation_in_a_batch_persists_none_of_it(s: &Scratch) {
    let (path, a) = s.keystore();
    key_in(&a, "g", "k", Active);
    let b = Keystore::open(&path, None, None).unwrap();
    let before = a.committed_seq();
    let refused = a.batch(|batch| {
        batch.create_key("g", "new", Prelive, None, "")?;
        batch.set_state("g", "k", Inactive)?;
        batch.create_group("h", Cipher::ChaCha20Poly1305, "")?;
        batch.set_state("g", "new", Terminated) // prelive -> terminated is not a move
    });
    assert_eq!(kind(refused), ErrorKind::InvalidTransition);
    assert_eq!(a.committed_seq(), before);
    for ks in [&a, &b] {
        assert_eq!(kind(ks.key("g", "new")), ErrorKind::NotFound);
        assert_eq!(ks.key("g", "k").unwrap().state, Active);
        assert_eq!(kind(ks.group("h")), ErrorKind::NotFound);
        ks.encrypt("g", b"still active", b"").unwrap();
    }
    // The handle that ran the batch goes on from storage's state.
    a.create_key("g", "new", Prelive, None, "").unwrap();
    assert_eq!(b.keys(Some("g"), None).unwrap().len(), 2);
}

fn a_keystore_larger_than_one_load_slice_opens_whole(s: &Scratch) {
    // Open hands rows to the component in slices of 4,096: every key must
    // arrive, with its state and the group's one active key.
    let (path, ks) = s.keystore();
    ks.batch(|b| {
        b.create_group("many", Cipher::Aes256Gcm, "")?;
        for i in 0..5000 {
            b.create_key("many", &format!("k{i:04}"), Prelive, None, "")?;
        }
        b.set_state("many", "k4999", Active)?;
        Ok(())
    })
    .unwrap();
    key_in(&ks, "last", "k", Active);
    drop(ks);
    let reopened = Keystore::open(&path, None, None).unwrap();
    assert_eq!(reopened.keys(Some("many"), None).unwrap().len(), 5000);
    assert_eq!(reopened.group("many").unwrap().active_key.as_deref(), Some("k4999"));
    assert_eq!(reopened.group("last").unwrap().active_key.as_deref(), Some("k"));
    assert!(reopened.faults().unwrap().is_empty());
    let stats = reopened.stats().unwrap();
    assert_eq!((stats.keys, stats.states["prelive"], stats.states["active"]), (5001, 4999, 2));
}

fn mutations_given_as_data_apply_in_one_commit(s: &Scratch) {
    use keystate::{Applied, Mutation};
    let (_, ks) = s.keystore();
    ks.groups().unwrap();
    let before = ks.committed_seq();
    let text = |s: &str| s.to_string();
    let applied = ks
        .apply(&[
            Mutation::CreateGroup { name: text("g"), cipher: Cipher::ChaCha20Poly1305, description: text("d") },
            Mutation::CreateKey {
                group: text("g"),
                name: text("k"),
                state: Prelive,
                passphrase: Some(zeroize::Zeroizing::new(text("correct horse"))),
                description: text(""),
            },
            Mutation::SetState { group: text("g"), name: text("k"), state: Active },
            Mutation::CreateKey {
                group: text("g"),
                name: text("gone"),
                state: Prelive,
                passphrase: None,
                description: text(""),
            },
            Mutation::DeleteKey { group: text("g"), name: text("gone") },
        ])
        .unwrap();
    assert_eq!(ks.committed_seq(), before + 1);
    assert!(matches!(&applied[0], Applied::Group(g) if g.cipher == Cipher::ChaCha20Poly1305 && g.description == "d"));
    assert!(matches!(&applied[1], Applied::Key(k) if k.recoverable && k.state == Prelive));
    assert!(matches!(&applied[2], Applied::Key(k) if k.state == Active));
    assert_eq!(applied[4], Applied::Deleted);
    assert_eq!(ks.group("g").unwrap().active_key.as_deref(), Some("k"));
    assert_eq!(kind(ks.key("g", "gone")), ErrorKind::NotFound);
}
