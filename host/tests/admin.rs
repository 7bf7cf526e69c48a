//! Administration through wasmtime and SQLite: the audit trail (entries,
//! actor, verification against rows edited, deleted and swapped in the
//! database), HMK/KPK rotation (old keys refused, new ones work, old data
//! decrypts, the key file crash window, other open handles), and quiesce.

mod common;

use std::path::Path;

use common::{Scratch, kind};
use keystate::{AuditFilter, AuditProblem, Cipher, CreateOptions, ErrorKind, KeyState, Keystore, NewKey, OpenOptions};

fn db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn audit_ids(path: &Path) -> Vec<String> {
    let conn = db(path);
    let mut stmt = conn.prepare("SELECT id FROM audit ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn open_as(path: &Path, actor: &str) -> Keystore {
    Keystore::open_with(path, OpenOptions { actor: Some(actor), ..Default::default() }).unwrap()
}

/// A keystore with a few entries: create, create-group, 3 keys, one activation.
fn populated(s: &Scratch) -> (std::path::PathBuf, Keystore) {
    let path = s.path("keys.db");
    let ks = Keystore::create_with(&path, CreateOptions { actor: Some("creator"), ..Default::default() }).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    for k in ["k1", "k2", "k3"] {
        ks.create_key("g", k, KeyState::Prelive, None, "").unwrap();
    }
    ks.set_state("g", "k1", KeyState::Active).unwrap();
    (path, ks)
}

#[test]
fn entries_for_each_action_with_states_and_actor() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    ks.set_actor("alice@host-1").unwrap();
    ks.set_state("g", "k2", KeyState::Active).unwrap();
    ks.modify_group("g", Some("g2"), Some("renamed")).unwrap();
    ks.create_key("g2", "pp", KeyState::Prelive, Some("pass phrase 1"), "").unwrap();
    let tag = ks.key("g2", "pp").unwrap().tag;
    ks.delete_key("g2", "pp").unwrap();
    ks.recover_key("g2", "pp", &tag, "pass phrase 1", KeyState::Inactive).unwrap();
    ks.delete_key("g2", "k3").unwrap();
    ks.quiesce().unwrap();
    ks.unquiesce().unwrap();
    ks.create_group("empty", Cipher::Aes128Gcm, "").unwrap();
    ks.delete_group("empty").unwrap();
    drop(ks);

    let ks = open_as(&path, "reader");
    let all = ks.audit(&AuditFilter::default()).unwrap();
    let summary: Vec<(u64, &str, &str, Option<&str>, Option<KeyState>, Option<KeyState>)> = all
        .iter()
        .map(|e| (e.seq, e.action.as_str(), e.actor.as_str(), e.key.as_deref(), e.old_state, e.new_state))
        .collect();
    use KeyState::*;
    let (c, a) = ("creator", "alice@host-1");
    assert_eq!(
        summary,
        [
            (1, "create", c, None, None, None),
            (2, "create-group", c, None, None, None),
            (3, "create-key", c, Some("k1"), None, Some(Prelive)),
            (4, "create-key", c, Some("k2"), None, Some(Prelive)),
            (5, "create-key", c, Some("k3"), None, Some(Prelive)),
            (6, "set-state", c, Some("k1"), Some(Prelive), Some(Active)),
            (7, "set-state", a, Some("k2"), Some(Prelive), Some(Active)),
            (8, "set-state", a, Some("k1"), Some(Active), Some(Inactive)),
            (9, "modify-group", a, None, None, None),
            (10, "create-key", a, Some("pp"), None, Some(Prelive)),
            (11, "delete-key", a, Some("pp"), Some(Prelive), None),
            (12, "recover-key", a, Some("pp"), None, Some(Inactive)),
            (13, "delete-key", a, Some("k3"), Some(Prelive), None),
            (14, "quiesce", a, None, None, None),
            (15, "unquiesce", a, None, None, None),
            (16, "create-group", a, None, None, None),
            (17, "delete-group", a, None, None, None),
        ]
    );
    assert_eq!(all[8].group.as_deref(), Some("g2"));
    assert!(all[8].detail.contains("renamed from \"g\""), "{}", all[8].detail);
    assert_eq!(all[11].key_tag.as_deref(), Some(tag.as_str()));
    assert_eq!(ks.stats().unwrap().audit_entries, 17);

    // Filters narrow; --limit keeps the most recent.
    let by = |f: AuditFilter| ks.audit(&f).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(by(AuditFilter { key: Some("k1".into()), ..Default::default() }), [3, 6, 8]);
    assert_eq!(by(AuditFilter { key: Some(tag.clone()), ..Default::default() }), [10, 11, 12]);
    assert_eq!(by(AuditFilter { action: Some("delete-key".into()), ..Default::default() }), [11, 13]);
    assert_eq!(by(AuditFilter { group: Some("empty".into()), ..Default::default() }), [16, 17]);
    assert_eq!(by(AuditFilter { limit: Some(2), ..Default::default() }), [16, 17]);
    let later = AuditFilter { since: Some(all[9].time), ..Default::default() };
    assert!(by(later).iter().all(|&seq| seq >= 10));
    let report = ks.verify_audit().unwrap();
    assert!(report.is_intact());
    assert_eq!((report.verified, report.head_seq), (17, 17));
    assert_eq!(report.head_hash, all[16].hash);
}

#[test]
fn actor_is_validated() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    for bad in ["", "x\u{7}", " padded", &"a".repeat(256)] {
        assert_eq!(kind(ks.set_actor(bad)), ErrorKind::InvalidArgument, "{bad:?}");
    }
    let bad = Keystore::open_with(&path, OpenOptions { actor: Some("a\nb"), ..Default::default() });
    assert_eq!(kind(bad), ErrorKind::InvalidArgument);
    let default = keystate::default_actor();
    assert!(!default.is_empty());
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.actor(), default);
}

#[test]
fn an_edited_audit_row_is_named_by_verify() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    let ids = audit_ids(&path);
    assert_eq!(ids.len(), 6);
    db(&path).execute("UPDATE audit SET body = CAST(body || x'00' AS BLOB) WHERE id = ?1", [&ids[3]]).unwrap();
    let report = ks.verify_audit().unwrap();
    let fault = report.fault.unwrap();
    assert_eq!((fault.problem, fault.seq, fault.row_id.as_str()), (AuditProblem::Edited, 4, ids[3].as_str()));
    assert_eq!(report.verified, 3);
    // Listing refuses to present a broken trail as good.
    let err = ks.audit(&AuditFilter::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.message().contains("entry 4 was edited"), "{}", err.message());
    // The keystore itself is untouched: audit rows are not part of its model.
    assert!(ks.faults().unwrap().is_empty());
    assert_eq!(ks.stats().unwrap().corrupt_rows, 0);
    let reopened = Keystore::open(&path, None, None).unwrap();
    assert!(reopened.faults().unwrap().is_empty());
}

#[test]
fn a_deleted_audit_row_is_named_by_verify() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    let ids = audit_ids(&path);
    db(&path).execute("DELETE FROM audit WHERE id = ?1", [&ids[2]]).unwrap();
    let fault = ks.verify_audit().unwrap().fault.unwrap();
    assert_eq!((fault.problem, fault.seq), (AuditProblem::Removed, 3));
    assert!(fault.message.contains("entry 3 is missing"), "{}", fault.message);

    // The last entries removed: the head still says how many there were.
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    db(&path).execute("DELETE FROM audit WHERE id >= ?1", [&audit_ids(&path)[4]]).unwrap();
    let fault = ks.verify_audit().unwrap().fault.unwrap();
    assert_eq!((fault.problem, fault.seq), (AuditProblem::Removed, 5));
}

#[test]
fn two_swapped_audit_rows_are_reported_reordered() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    let ids = audit_ids(&path);
    let conn = db(&path);
    conn.execute_batch(&format!(
        "UPDATE audit SET body = CASE id WHEN '{a}' THEN (SELECT body FROM audit WHERE id = '{b}')
                                         ELSE (SELECT body FROM audit WHERE id = '{a}') END
         WHERE id IN ('{a}', '{b}')",
        a = ids[1],
        b = ids[4]
    ))
    .unwrap();
    let fault = ks.verify_audit().unwrap().fault.unwrap();
    assert_eq!((fault.problem, fault.seq, fault.row_id.as_str()), (AuditProblem::Reordered, 2, ids[1].as_str()));
}

#[test]
fn a_replaced_head_is_detected() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    let conn = db(&path);
    let old: (i64, Vec<u8>) = conn
        .query_row("SELECT version, body FROM rows WHERE id = 'audit-head'", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    ks.create_group("h", Cipher::Aes256Gcm, "").unwrap();
    // Roll the head back to the older one: the newer entry is still there.
    conn.execute("UPDATE rows SET version = ?1, body = ?2 WHERE id = 'audit-head'", rusqlite::params![old.0, old.1])
        .unwrap();
    let ks = Keystore::open(&path, None, None).unwrap();
    let fault = ks.verify_audit().unwrap().fault.unwrap();
    assert_eq!(fault.problem, AuditProblem::Edited);
    assert!(fault.message.contains("after the chain head"), "{}", fault.message);
}

#[test]
fn the_chain_continues_across_reopen_and_handles() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    let other = open_as(&path, "second");
    for i in 0..10 {
        let (h, name) = if i % 2 == 0 { (&ks, "a") } else { (&other, "b") };
        h.create_group(&format!("{name}{i}"), Cipher::Aes256Gcm, "").unwrap();
    }
    drop((ks, other));
    let ks = Keystore::open(&path, None, None).unwrap();
    let report = ks.verify_audit().unwrap();
    assert!(report.is_intact(), "{:?}", report.fault);
    assert_eq!(report.verified, 16);
    let actors: Vec<String> = ks.audit(&AuditFilter::default()).unwrap().into_iter().map(|e| e.actor).collect();
    assert_eq!(actors.iter().filter(|a| *a == "second").count(), 5);
}

#[test]
fn many_entries_are_read_in_batches() {
    let s = Scratch::new();
    let (_path, ks) = populated(&s);
    for i in 0..1200 {
        ks.modify_group("g", None, Some(&format!("d{i}"))).unwrap();
    }
    let report = ks.verify_audit().unwrap();
    assert!(report.is_intact());
    assert_eq!(report.verified, 1206);
    assert_eq!(ks.audit(&AuditFilter { limit: Some(3), ..Default::default() }).unwrap()[2].seq, 1206);
}

// ---- rotation --------------------------------------------------------------------------

#[test]
fn hmk_rotation_between_pass_phrases_and_key_files() {
    let s = Scratch::new();
    let path = s.path("keys.db");
    let ks = Keystore::create(&path, Some("old hmk"), None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_key("g", "k", KeyState::Active, None, "").unwrap();
    let ct = ks.encrypt("g", b"old data", b"aad").unwrap();

    ks.rotate_hmk(NewKey::Passphrase("new hmk"), Some("hmk-2")).unwrap();
    assert_eq!(ks.decrypt(&ct, b"aad").unwrap(), b"old data");
    assert_eq!(kind(Keystore::open(&path, Some("old hmk"), None)), ErrorKind::WrongPassphrase);
    let reopened = Keystore::open(&path, Some("new hmk"), None).unwrap();
    assert_eq!(reopened.decrypt(&ct, b"aad").unwrap(), b"old data");
    assert_eq!(reopened.stats().unwrap().hmk_id, "hmk-2");
    assert!(reopened.faults().unwrap().is_empty());
    drop(reopened);

    // Pass phrase -> key file.
    ks.rotate_hmk(NewKey::Random, None).unwrap();
    let hmk_file = keystate::inspect(&path).unwrap().hmk.key_file.unwrap();
    assert!(hmk_file.exists());
    assert_eq!(kind(Keystore::open(&path, Some("new hmk"), None)), ErrorKind::InvalidArgument);
    let reopened = Keystore::open(&path, None, None).unwrap();
    assert_eq!(reopened.decrypt(&ct, b"aad").unwrap(), b"old data");
    drop(reopened);

    // Key file -> another key file: the old file's key no longer opens it.
    let old_key = std::fs::read(&hmk_file).unwrap();
    ks.rotate_hmk(NewKey::Random, None).unwrap();
    assert_ne!(std::fs::read(&hmk_file).unwrap(), old_key);
    let new_key = std::fs::read(&hmk_file).unwrap();
    std::fs::write(&hmk_file, &old_key).unwrap();
    assert_eq!(kind(Keystore::open(&path, None, None)), ErrorKind::WrongPassphrase);
    std::fs::write(&hmk_file, &new_key).unwrap();

    // Key file -> pass phrase: the key file goes away.
    ks.rotate_hmk(NewKey::Passphrase("third"), None).unwrap();
    assert!(!hmk_file.exists());
    let reopened = Keystore::open(&path, Some("third"), None).unwrap();
    assert_eq!(reopened.decrypt(&ct, b"aad").unwrap(), b"old data");
    let actions: Vec<String> = reopened
        .audit(&AuditFilter { action: Some("rotate-hmk".into()), ..Default::default() })
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(actions.len(), 4);
    assert!(reopened.verify_audit().unwrap().is_intact());
}

#[test]
fn kpk_rotation_rewraps_keys_and_old_data_decrypts() {
    let s = Scratch::new();
    let path = s.path("keys.db");
    let ks = Keystore::create(&path, None, Some("old kpk")).unwrap();
    ks.create_group("g", Cipher::Aes128Gcm, "").unwrap();
    let mut cts = Vec::new();
    for i in 0..3 {
        ks.create_key("g", &format!("k{i}"), KeyState::Active, None, "").unwrap();
        cts.push(ks.encrypt("g", format!("data {i}").as_bytes(), b"").unwrap());
    }
    ks.rotate_kpk(NewKey::Random, Some("kpk-file")).unwrap();
    ks.rotate_kpk(NewKey::Passphrase("new kpk"), Some("kpk-3")).unwrap();
    assert_eq!(kind(Keystore::open(&path, None, Some("old kpk"))), ErrorKind::WrongPassphrase);
    let ks = Keystore::open(&path, None, Some("new kpk")).unwrap();
    for (i, ct) in cts.iter().enumerate() {
        assert_eq!(ks.decrypt(ct, b"").unwrap(), format!("data {i}").as_bytes());
    }
    assert!(!keystate::inspect(&path).unwrap().kpk.key_file.is_some_and(|f| f.exists()));
    assert_eq!(ks.stats().unwrap().kpk_id, "kpk-3");
}

#[test]
fn rotation_is_refused_while_quiesced() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    ks.quiesce().unwrap();
    assert_eq!(kind(ks.rotate_hmk(NewKey::Random, None)), ErrorKind::Quiesced);
    assert_eq!(kind(ks.rotate_kpk(NewKey::Passphrase("x"), None)), ErrorKind::Quiesced);
    assert!(!s.path("keys.db.hmk.new").exists(), "a refused rotation leaves no staged key file");
    // The trail can still be read while quiesced.
    assert!(ks.verify_audit().unwrap().is_intact());
    ks.unquiesce().unwrap();
    ks.rotate_hmk(NewKey::Random, None).unwrap();
    drop(ks);
    Keystore::open(&path, None, None).unwrap();
}

#[test]
fn rotation_is_refused_while_a_row_is_corrupt() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    db(&path)
        .execute("UPDATE rows SET body = x'0102' WHERE id = (SELECT min(id) FROM rows WHERE id LIKE 'k:%')", [])
        .unwrap();
    let ks2 = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks2.faults().unwrap().len(), 1);
    assert_eq!(kind(ks2.rotate_kpk(NewKey::Random, None)), ErrorKind::Integrity);
    assert_eq!(kind(ks2.rotate_hmk(NewKey::Random, None)), ErrorKind::Integrity);
    drop(ks);
}

#[test]
fn a_crash_between_commit_and_key_file_rename_is_finished_on_open() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    let ct = {
        ks.create_key("g", "data", KeyState::Active, None, "").unwrap();
        ks.encrypt("g", b"kept", b"").unwrap()
    };
    let hmk_file = s.path("keys.db.hmk");
    let staged = s.path("keys.db.hmk.new");
    let old_key = std::fs::read(&hmk_file).unwrap();
    ks.rotate_hmk(NewKey::Random, None).unwrap();
    drop(ks);
    let new_key = std::fs::read(&hmk_file).unwrap();
    // What a crash right after the commit leaves: the new key only staged.
    std::fs::rename(&hmk_file, &staged).unwrap();
    std::fs::write(&hmk_file, &old_key).unwrap();
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.decrypt(&ct, b"").unwrap(), b"kept");
    assert!(!staged.exists());
    assert_eq!(std::fs::read(&hmk_file).unwrap(), new_key);
    drop(ks);

    // A crash before the commit leaves a stale staged key: ignored on open,
    // replaced by the next rotation.
    std::fs::write(&staged, format!("{}\n", "ab".repeat(32))).unwrap();
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.decrypt(&ct, b"").unwrap(), b"kept");
    ks.rotate_hmk(NewKey::Random, None).unwrap();
    assert!(!staged.exists());
    drop(ks);
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.decrypt(&ct, b"").unwrap(), b"kept");

    // Pass phrase -> key file, crash before the rename: no key file yet at all.
    ks.rotate_hmk(NewKey::Passphrase("p"), None).unwrap();
    ks.rotate_hmk(NewKey::Random, None).unwrap();
    drop(ks);
    std::fs::rename(&hmk_file, &staged).unwrap();
    let ks = Keystore::open(&path, None, None).unwrap();
    assert_eq!(ks.decrypt(&ct, b"").unwrap(), b"kept");
    assert!(hmk_file.exists() && !staged.exists());
}

#[test]
fn other_open_handles_fail_cleanly_after_rotation() {
    let s = Scratch::new();
    let (path, ks) = populated(&s);
    ks.create_key("g", "d", KeyState::Active, None, "").unwrap();
    let ct = ks.encrypt("g", b"x", b"").unwrap();
    let other = Keystore::open(&path, None, None).unwrap();
    assert_eq!(other.decrypt(&ct, b"").unwrap(), b"x"); // a reader sandbox is pooled
    ks.rotate_hmk(NewKey::Passphrase("rotated"), None).unwrap();
    assert_eq!(kind(other.create_group("h", Cipher::Aes256Gcm, "")), ErrorKind::WrongPassphrase);
    assert_eq!(kind(other.groups()), ErrorKind::WrongPassphrase);
    assert_eq!(kind(other.decrypt(&ct, b"")), ErrorKind::WrongPassphrase);
    assert_eq!(kind(other.encrypt("g", b"y", b"")), ErrorKind::WrongPassphrase);
    // Nothing the stale handle tried was written.
    assert_eq!(ks.verify_audit().unwrap().verified, 9);
    // The rotating handle itself goes on, readers included.
    assert_eq!(ks.decrypt(&ct, b"").unwrap(), b"x");
    ks.create_group("h", Cipher::Aes256Gcm, "").unwrap();
    let again = Keystore::open(&path, Some("rotated"), None).unwrap();
    assert_eq!(again.decrypt(&ct, b"").unwrap(), b"x");

    // Same for the KPK.
    again.rotate_kpk(NewKey::Passphrase("kpk2"), None).unwrap();
    assert_eq!(kind(ks.decrypt(&ct, b"")), ErrorKind::WrongPassphrase);
    assert_eq!(kind(ks.delete_group("h")), ErrorKind::WrongPassphrase);
    assert!(again.verify_audit().unwrap().is_intact());
}
