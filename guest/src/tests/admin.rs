//! The audit trail and HMK/KPK rotation, natively against the model.

use super::*;
use crate::audit::{self, Cursor, Problem};

/// The trail as stored, in id order.
fn trail(f: &Fixture) -> Vec<Row> {
    f.rows.values().filter(|r| r.id.starts_with("a:")).cloned().collect()
}

fn verify(f: &Fixture, rows: &[Row]) -> (Vec<audit::Verified>, Option<audit::Fault>) {
    let (entries, cursor, fault) = f.ks.read_audit(rows, Cursor::default());
    (entries, fault.or_else(|| f.ks.audit_end(&cursor)))
}

#[test]
fn every_mutation_appends_one_entry_in_its_change_set() {
    let mut f = Fixture::new();
    f.ks.set_actor("ops@site-a").unwrap();
    f.group("g");
    f.key("g", "k1", Active);
    f.key("g", "k2", Prelive);
    f.set("g", "k2", Active).unwrap(); // bumps k1: two entries
    let r = f.ks.modify_key("g", "k2", Some("k2b"), None);
    f.ok(r);
    f.set("g", "k1", Deprecated).unwrap();
    f.set("g", "k1", Terminated).unwrap();
    f.delete("g", "k1").unwrap();
    let c = f.ks.quiesce().unwrap();
    f.persist(c);
    let c = f.ks.unquiesce().unwrap();
    f.persist(c);
    let (entries, fault) = verify(&f, &trail(&f));
    assert_eq!(fault, None);
    type Summary<'a> = (&'a str, Option<&'a str>, Option<KeyState>, Option<KeyState>, &'a str);
    let got: Vec<Summary> = entries
        .iter()
        .map(|v| {
            let e = &v.entry;
            (e.action.name(), e.key.as_deref(), e.old_state, e.new_state, e.actor.as_str())
        })
        .collect();
    let ops = "ops@site-a";
    assert_eq!(
        got,
        [
            ("create", None, None, None, "unspecified"),
            ("create-group", None, None, None, ops),
            ("create-key", Some("k1"), None, Some(Active), ops),
            ("create-key", Some("k2"), None, Some(Prelive), ops),
            ("set-state", Some("k2"), Some(Prelive), Some(Active), ops),
            ("set-state", Some("k1"), Some(Active), Some(Inactive), ops),
            ("modify-key", Some("k2b"), None, None, ops),
            ("set-state", Some("k1"), Some(Inactive), Some(Deprecated), ops),
            ("set-state", Some("k1"), Some(Deprecated), Some(Terminated), ops),
            ("delete-key", Some("k1"), Some(Terminated), None, ops),
            ("quiesce", None, None, None, ops),
            ("unquiesce", None, None, None, ops),
        ]
    );
    assert_eq!(entries[6].entry.detail, "renamed from \"k2\"");
    assert_eq!(f.ks.stats().audit_entries, 12);
    assert_eq!(f.ks.audit_head().seq, 12);
    assert_eq!(f.ks.audit_head().hash, entries[11].hash);
    // A no-op or a refused mutation appends nothing.
    let (_, c) = f.ks.set_state("g", "k2b", Active).unwrap();
    assert!(c.is_empty());
    assert_eq!(kind(f.ks.delete_group("g")), "not-deletable");
    assert_eq!(f.ks.audit_head().seq, 12);
}

#[test]
fn actor_is_validated_like_names() {
    let mut f = Fixture::new();
    for bad in ["", " x", "a\nb", &"x".repeat(256)] {
        assert_eq!(kind(f.ks.set_actor(bad)), "invalid-argument", "{bad:?}");
    }
    assert_eq!(f.ks.actor(), "unspecified");
    f.ks.set_actor("backup-agent pid:42").unwrap();
    assert_eq!(f.ks.actor(), "backup-agent pid:42");
}

#[test]
fn verification_names_the_first_edited_removed_or_reordered_entry() {
    let mut f = Fixture::new();
    f.group("g");
    for i in 0..5 {
        f.key("g", &format!("k{i}"), Prelive);
    }
    let rows = trail(&f);
    assert_eq!(rows.len(), 7);
    assert_eq!(verify(&f, &rows).1, None);

    let mut edited = rows.clone();
    let last = edited[3].body.len() - 1;
    edited[3].body[last] ^= 1;
    let fault = verify(&f, &edited).1.unwrap();
    assert_eq!((fault.problem, fault.seq, fault.row_id.as_str()), (Problem::Edited, 4, rows[3].id.as_str()));

    let mut removed = rows.clone();
    removed.remove(2);
    let fault = verify(&f, &removed).1.unwrap();
    assert_eq!((fault.problem, fault.seq), (Problem::Removed, 3));

    let mut truncated = rows.clone();
    truncated.pop();
    let fault = verify(&f, &truncated).1.unwrap();
    assert_eq!((fault.problem, fault.seq), (Problem::Removed, 7));

    let mut swapped = rows.clone();
    let (a, b) = (swapped[1].body.clone(), swapped[4].body.clone());
    swapped[1].body = b;
    swapped[4].body = a;
    let fault = verify(&f, &swapped).1.unwrap();
    assert_eq!((fault.problem, fault.seq, fault.row_id.as_str()), (Problem::Reordered, 2, rows[1].id.as_str()));

    // Read in batches, the cursor carries the chain across calls.
    let (first, cursor, none) = f.ks.read_audit(&rows[..3], Cursor::default());
    assert!(none.is_none());
    let (rest, cursor, none) = f.ks.read_audit(&rows[3..], cursor);
    assert!(none.is_none());
    assert_eq!(first.len() + rest.len(), 7);
    assert_eq!(f.ks.audit_end(&cursor), None);
}

#[test]
fn audit_rows_passed_to_load_are_ignored_and_the_head_survives_reopen() {
    let mut f = Fixture::new();
    f.group("g");
    let r = f.reopen(&raw(1), &raw(2)).unwrap();
    assert_eq!(r.audit_head(), f.ks.audit_head());
    assert_eq!(r.stats().audit_entries, 2);
    // The reopened instance continues the chain.
    let mut f2 = Fixture { ks: r, rows: f.rows.clone(), env: f.env.clone() };
    f2.group("h");
    assert_eq!(verify(&f2, &trail(&f2)).1, None);
    assert_eq!(f2.ks.audit_head().seq, 3);
}

#[test]
fn kpk_rotation_rewraps_every_key_and_old_data_still_decrypts() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "k", Active);
    let ct = f.ks.encrypt("g", b"before", b"").unwrap();
    let changes = f.ks.rotate_kpk(&raw(3), Some("kpk-2".into())).unwrap();
    f.persist(changes);
    assert_eq!(f.ks.decrypt(&ct, b"").unwrap(), b"before");
    assert_eq!(kind(f.reopen(&raw(1), &raw(2))), "wrong-passphrase");
    let r = f.reopen(&raw(1), &raw(3)).unwrap();
    assert_eq!(r.decrypt(&ct, b"").unwrap(), b"before");
    assert_eq!(r.stats().kpk_id, "kpk-2");
    let (entries, fault) = verify(&f, &trail(&f));
    assert_eq!(fault, None);
    assert_eq!(entries.last().unwrap().entry.action.name(), "rotate-kpk");
}

#[test]
fn hmk_rotation_reseals_every_row_and_the_trail() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "k", Active);
    let ct = f.ks.encrypt("g", b"before", b"").unwrap();
    let head_before = f.ks.audit_head();
    f.ks.begin_rotate_hmk(&Secret::Passphrase(Zeroizing::new("new hmk".into())), None).unwrap();
    let resealed = f.ks.reseal_audit(&trail(&f)).unwrap();
    assert_eq!(resealed.len(), 3);
    let mut changes = f.ks.finish_rotate_hmk().unwrap();
    changes.upserts.extend(resealed);
    f.persist(changes);
    let new_hmk = Secret::Passphrase(Zeroizing::new("new hmk".into()));
    assert_eq!(kind(f.reopen(&raw(1), &raw(2))), "wrong-passphrase");
    let r = f.reopen(&new_hmk, &raw(2)).unwrap();
    assert_eq!(r.decrypt(&ct, b"").unwrap(), b"before");
    // The chain is unchanged by re-sealing: same hashes, one more entry.
    let f2 = Fixture { ks: r, rows: f.rows.clone(), env: f.env.clone() };
    let (entries, fault) = verify(&f2, &trail(&f2));
    assert_eq!(fault, None);
    assert_eq!(entries[2].hash, head_before.hash);
    assert_eq!(entries[3].entry.action.name(), "rotate-hmk");
    // (`reopen` asserts that every row, the audit head included, opened under the new HMK.)
}

#[test]
fn rotation_is_refused_while_quiesced_and_a_stale_instance_fails_cleanly() {
    let mut f = Fixture::new();
    f.group("g");
    let mut other = f.reopen(&raw(1), &raw(2)).unwrap();
    let c = f.ks.quiesce().unwrap();
    f.persist(c);
    assert_eq!(kind(f.ks.rotate_kpk(&raw(3), None)), "quiesced");
    assert_eq!(kind(f.ks.begin_rotate_hmk(&raw(3), None)), "quiesced");
    let c = f.ks.unquiesce().unwrap();
    f.persist(c);
    let c = f.ks.rotate_kpk(&raw(3), None).unwrap();
    let header = c.upserts.iter().find(|r| r.id == HEADER_ID).unwrap().clone();
    f.persist(c);
    // An instance opened with the old KPK learns of the rotation from the header.
    assert_eq!(kind(other.load(&[header], &[])), "wrong-passphrase");
}
