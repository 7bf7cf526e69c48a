//! The rule book, run natively against the model with a deterministic
//! environment and an in-memory row store that applies change sets exactly as
//! a host must (compare-and-swap on versions).

use std::collections::BTreeMap;

use zeroize::Zeroizing;

/// Deterministic time and entropy, shared with the fuzz entry points.
use crate::fuzzing::FuzzEnv as TestEnv;
use crate::keystore::{ChangeSet, Keystore, Row};
use crate::rules;
use crate::store::{HEADER_ID, Secret};
use crate::types::{Cipher, Error, KeyState, Operation, Result};
use KeyState::*;

mod admin;

fn raw(byte: u8) -> Secret {
    Secret::Raw(Zeroizing::new(vec![byte; 32]))
}

/// A keystore plus the rows a host would have stored for it.
struct Fixture {
    ks: Keystore,
    rows: BTreeMap<String, Row>,
    env: TestEnv,
}

impl Fixture {
    fn new() -> Fixture {
        let env = TestEnv::default();
        let (ks, changes) = Keystore::create(Box::new(env.clone()), &raw(1), None, &raw(2), None).unwrap();
        let mut f = Fixture { ks, rows: BTreeMap::new(), env };
        f.persist(changes);
        f
    }

    /// Apply a change set the way a host must: versions are compared first.
    fn persist(&mut self, changes: ChangeSet) {
        for row in changes.upserts {
            let stored = self.rows.get(&row.id).map(|r| r.version).unwrap_or(0);
            assert_eq!(stored + 1, row.version, "upsert of {} expects version {}", row.id, row.version - 1);
            self.rows.insert(row.id.clone(), row);
        }
        for (id, version) in changes.deletes {
            assert_eq!(self.rows.remove(&id).map(|r| r.version), Some(version), "delete of {id}");
        }
    }

    fn ok<T>(&mut self, r: Result<(T, ChangeSet)>) -> T {
        let (value, changes) = r.unwrap();
        self.persist(changes);
        value
    }

    fn group(&mut self, name: &str) {
        let r = self.ks.create_group(name, Cipher::Aes256Gcm, "");
        self.ok(r);
    }

    fn key(&mut self, group: &str, name: &str, state: KeyState) {
        let r = self.ks.create_key(group, name, state, None, "");
        self.ok(r);
    }

    fn set(&mut self, group: &str, name: &str, state: KeyState) -> Result<()> {
        let (_, changes) = self.ks.set_state(group, name, state)?;
        self.persist(changes);
        Ok(())
    }

    fn delete(&mut self, group: &str, name: &str) -> Result<()> {
        let changes = self.ks.delete_key(group, name)?;
        self.persist(changes);
        Ok(())
    }

    fn state(&self, group: &str, name: &str) -> KeyState {
        self.ks.key(group, name).unwrap().state
    }

    /// Open a second model from the stored rows, as a new process would.
    fn reopen(&self, hmk: &Secret, kpk: &Secret) -> Result<Keystore> {
        let mut ks = Keystore::open(Box::new(self.env.clone()), &self.rows[HEADER_ID], hmk, kpk)?;
        let rows: Vec<Row> = self.rows.values().filter(|r| r.id != HEADER_ID).cloned().collect();
        let faults = ks.load(&rows, &[])?;
        assert!(faults.is_empty(), "{faults:?}");
        Ok(ks)
    }

    /// Walk a fresh key in group "g" to `state` along allowed moves.
    fn key_in(&mut self, name: &str, state: KeyState) {
        let path: &[KeyState] = match state {
            Prelive => &[],
            Active => &[Active],
            Inactive => &[Active, Inactive],
            Deprecated => &[Active, Inactive, Deprecated],
            Terminated => &[Active, Inactive, Deprecated, Terminated],
        };
        self.key("g", name, Prelive);
        for &s in path {
            self.set("g", name, s).unwrap();
        }
        assert_eq!(self.state("g", name), state);
    }
}

fn kind<T>(r: Result<T>) -> &'static str {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

#[test]
fn every_transition_through_the_model() {
    for from in KeyState::ALL {
        for to in KeyState::ALL {
            let mut f = Fixture::new();
            f.group("g");
            f.key_in("k", from);
            let result = f.set("g", "k", to);
            if rules::can_transition(from, to) {
                result.unwrap();
                assert_eq!(f.state("g", "k"), to);
            } else {
                let err = result.unwrap_err();
                assert!(matches!(err, Error::InvalidTransition(_)), "{from}->{to}: {err}");
                assert!(err.message().contains(from.name()) && err.message().contains(to.name()), "{err}");
                assert_eq!(f.state("g", "k"), from, "a refused move changes nothing");
            }
        }
    }
}

#[test]
fn creation_only_prelive_or_active() {
    for state in KeyState::ALL {
        let mut f = Fixture::new();
        f.group("g");
        let r = f.ks.create_key("g", "k", state, None, "");
        if matches!(state, Prelive | Active) {
            assert_eq!(r.unwrap().0.state, state);
        } else {
            let err = r.unwrap_err();
            assert!(matches!(err, Error::InvalidTransition(_)) && err.message().contains(state.name()), "{err}");
            assert!(f.ks.keys(None, None).unwrap().is_empty());
        }
    }
}

#[test]
fn every_state_and_operation_through_the_model() {
    for state in KeyState::ALL {
        // Encrypt: the group's only key is in `state`.
        let mut f = Fixture::new();
        f.group("g");
        f.key_in("k", state);
        let enc = f.ks.encrypt("g", b"data", b"");
        assert_eq!(enc.is_ok(), rules::allows(state, Operation::Encrypt), "encrypt with {state}");
        if let Err(e) = enc {
            assert_eq!(e.kind(), "key-unusable");
        }

        // Decrypt: data made while the key was active, then the key moved to `state`.
        let mut f = Fixture::new();
        f.group("g");
        f.key_in("k", Active);
        let ct = f.ks.encrypt("g", b"data", b"").unwrap();
        let path: &[KeyState] = match state {
            Prelive => &[],
            Active => &[],
            Inactive => &[Inactive],
            Deprecated => &[Inactive, Deprecated],
            Terminated => &[Inactive, Deprecated, Terminated],
        };
        for &s in path {
            f.set("g", "k", s).unwrap();
        }
        if state != Prelive {
            let dec = f.ks.decrypt(&ct, b"");
            assert_eq!(dec.is_ok(), rules::allows(state, Operation::Decrypt), "decrypt with {state}");
            match dec {
                Ok(p) => assert_eq!(p, b"data"),
                Err(e) => {
                    assert_eq!(e.kind(), "key-unusable");
                    assert!(e.message().contains(state.name()) && e.message().contains("decrypt"), "{e}");
                }
            }
        }

        // Delete.
        let mut f = Fixture::new();
        f.group("g");
        f.key_in("k", state);
        let del = f.delete("g", "k");
        assert_eq!(del.is_ok(), rules::allows(state, Operation::Delete), "delete {state}");
        if let Err(e) = del {
            assert_eq!(e.kind(), "not-deletable");
            assert_eq!(f.state("g", "k"), state);
        }
    }
}

#[test]
fn prelive_key_refuses_decrypt_of_its_own_tag() {
    // A prelive key never encrypted anything, but data naming its tag must still be refused.
    let mut f = Fixture::new();
    f.group("g");
    f.key_in("k", Active);
    let ct = f.ks.encrypt("g", b"x", b"").unwrap();
    let tag = f.ks.key("g", "k").unwrap().tag;
    f.key_in("p", Prelive);
    let prelive_tag = f.ks.key("g", "p").unwrap().tag;
    let mut forged = ct.clone();
    forged[12..28].copy_from_slice(&prelive_tag.0);
    assert_ne!(tag, prelive_tag);
    let err = f.ks.decrypt(&forged, b"").unwrap_err();
    assert_eq!(err.kind(), "key-unusable", "{err}");
    assert!(err.message().contains("prelive"));
}

#[test]
fn activating_bumps_the_active_key() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "k1", Active);
    f.key("g", "k2", Active); // create-as-active
    assert_eq!((f.state("g", "k1"), f.state("g", "k2")), (Inactive, Active));
    f.key("g", "k3", Prelive);
    f.set("g", "k3", Active).unwrap(); // prelive -> active
    assert_eq!((f.state("g", "k2"), f.state("g", "k3")), (Inactive, Active));
    f.set("g", "k1", Active).unwrap(); // inactive -> active
    assert_eq!((f.state("g", "k1"), f.state("g", "k3")), (Active, Inactive));
    assert_eq!(f.ks.keys(Some("g"), Some(Active)).unwrap().len(), 1);
    assert_eq!(f.ks.group("g").unwrap().active_key.as_deref(), Some("k1"));

    // Other groups are not touched.
    f.group("h");
    f.key("h", "x", Active);
    assert_eq!(f.state("g", "k1"), Active);

    let reopened = f.reopen(&raw(1), &raw(2)).unwrap();
    let actives: Vec<_> = reopened.keys(Some("g"), Some(Active)).unwrap();
    assert_eq!(actives.len(), 1);
    assert_eq!(actives[0].name, "k1");
    assert_eq!(reopened.key("g", "k3").unwrap().state, Inactive);
}

#[test]
fn staying_put_is_a_no_op() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "k", Active);
    let before = f.ks.key("g", "k").unwrap();
    let (info, changes) = f.ks.set_state("g", "k", Active).unwrap();
    assert!(changes.is_empty());
    assert_eq!(info, before);
}

#[test]
fn delete_rules_and_group_deletion() {
    let mut f = Fixture::new();
    f.group("g");
    f.key_in("k", Deprecated);
    assert_eq!(kind(f.delete("g", "k")), "not-deletable");
    f.set("g", "k", Terminated).unwrap();
    assert_eq!(kind(f.ks.delete_group("g")), "not-deletable");
    f.delete("g", "k").unwrap();
    assert_eq!(kind(f.ks.key("g", "k")), "not-found");
    let changes = f.ks.delete_group("g").unwrap();
    f.persist(changes);
    assert_eq!(kind(f.ks.group("g")), "not-found");
    assert_eq!(kind(f.ks.delete_group("g")), "not-found");
    let model_rows: Vec<&String> = f.rows.keys().filter(|id| !id.starts_with("a:") && *id != "audit-head").collect();
    assert_eq!(model_rows, ["header"], "only the header (and the audit trail) is left");
}

#[test]
fn recover_a_deleted_passphrase_key() {
    let mut f = Fixture::new();
    f.group("g");
    let r = f.ks.create_key("g", "pp", Active, Some("tape 7 offsite"), "weekly");
    let info = f.ok(r);
    assert!(info.recoverable);
    let ct = f.ks.encrypt("g", b"old backup", b"img-1").unwrap();
    for s in [Inactive, Deprecated, Terminated] {
        f.set("g", "pp", s).unwrap();
    }
    f.delete("g", "pp").unwrap();
    assert_eq!(kind(f.ks.decrypt(&ct, b"img-1")), "not-found");

    let tag = info.tag.to_string();
    assert_eq!(kind(f.ks.recover_key("g", "pp", &tag, "tape 7 offsitE", Inactive)), "wrong-passphrase");
    assert_eq!(kind(f.ks.recover_key("g", "pp", &tag, "tape 7 offsite", Prelive)), "invalid-transition");
    assert_eq!(kind(f.ks.recover_key("g", "pp", "nothex", "tape 7 offsite", Inactive)), "invalid-argument");
    assert_eq!(kind(f.ks.recover_key("nogroup", "pp", &tag, "tape 7 offsite", Inactive)), "not-found");

    let r = f.ks.recover_key("g", "again", &tag, "tape 7 offsite", Inactive);
    let back = f.ok(r);
    assert_eq!((back.tag, back.state, back.recoverable), (info.tag, Inactive, true));
    assert_eq!(f.ks.decrypt(&ct, b"img-1").unwrap(), b"old backup");
    // The tag still exists now.
    assert_eq!(kind(f.ks.recover_key("g", "third", &tag, "tape 7 offsite", Inactive)), "already-exists");
}

#[test]
fn random_keys_are_not_recoverable() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "r", Prelive);
    let info = f.ks.key("g", "r").unwrap();
    assert!(!info.recoverable);
    f.delete("g", "r").unwrap();
    let err = f.ks.recover_key("g", "r", &info.tag.to_string(), "anything", Inactive).unwrap_err();
    assert_eq!(err.kind(), "wrong-passphrase");
}

#[test]
fn names_are_unique_and_renames_keep_them_so() {
    let mut f = Fixture::new();
    f.group("g");
    f.group("h");
    assert_eq!(kind(f.ks.create_group("g", Cipher::Aes128Gcm, "")), "already-exists");
    assert_eq!(kind(f.ks.modify_group("h", Some("g"), None)), "already-exists");
    f.key("g", "a", Prelive);
    f.key("g", "b", Prelive);
    f.key("h", "a", Prelive); // same name, other group: fine
    assert_eq!(kind(f.ks.create_key("g", "a", Prelive, None, "")), "already-exists");
    assert_eq!(kind(f.ks.modify_key("g", "b", Some("a"), None)), "already-exists");

    let tag = f.ks.key("g", "b").unwrap().tag;
    let r = f.ks.modify_key("g", "b", Some("c"), Some("renamed"));
    let info = f.ok(r);
    assert_eq!((info.name.as_str(), info.description.as_str(), info.tag), ("c", "renamed", tag));
    assert!(info.modified > info.created);
    let r = f.ks.modify_group("g", Some("g2"), Some("new"));
    let g = f.ok(r);
    assert_eq!(g.name, "g2");
    assert_eq!(f.ks.key("g2", "c").unwrap().group, "g2");
    assert_eq!(kind(f.ks.group("g")), "not-found");

    let reopened = f.reopen(&raw(1), &raw(2)).unwrap();
    assert_eq!(reopened.key("g2", "c").unwrap().tag, tag);
}

#[test]
fn bad_names_and_descriptions() {
    let mut f = Fixture::new();
    for bad in ["", " lead", "trail ", "bell\u{7}", "new\nline", &"x".repeat(256)] {
        assert_eq!(kind(f.ks.create_group(bad, Cipher::Aes256Gcm, "")), "invalid-argument", "{bad:?}");
    }
    assert_eq!(kind(f.ks.create_group("g", Cipher::Aes256Gcm, &"d".repeat(4097))), "invalid-argument");
    assert_eq!(kind(f.ks.create_group("g", Cipher::Aes256Gcm, "esc\u{1b}")), "invalid-argument");
    f.group("ünïcödé ok");
    assert_eq!(f.ks.groups().len(), 1);
}

#[test]
fn reopen_gives_the_same_state_after_every_mutation() {
    let mut f = Fixture::new();
    let check = |f: &Fixture| {
        let r = f.reopen(&raw(1), &raw(2)).unwrap();
        assert_eq!(r.groups(), f.ks.groups());
        assert_eq!(r.keys(None, None).unwrap(), f.ks.keys(None, None).unwrap());
        assert_eq!(r.stats(), f.ks.stats());
    };
    f.group("g");
    check(&f);
    f.key("g", "a", Active);
    check(&f);
    let r = f.ks.create_key("g", "b", Prelive, Some("pass"), "d");
    f.ok(r);
    check(&f);
    f.set("g", "b", Active).unwrap();
    check(&f);
    let r = f.ks.modify_key("g", "a", Some("a2"), Some("x"));
    f.ok(r);
    check(&f);
    let r = f.ks.modify_group("g", None, Some("desc"));
    f.ok(r);
    check(&f);
    for s in [Deprecated, Terminated] {
        f.set("g", "a2", s).unwrap();
        check(&f);
    }
    f.delete("g", "a2").unwrap();
    check(&f);
    let c = f.ks.quiesce().unwrap();
    f.persist(c);
    check(&f);
}

#[test]
fn wrong_protection_keys_are_wrong_passphrase() {
    let f = Fixture::new();
    assert_eq!(kind(f.reopen(&raw(9), &raw(2))), "wrong-passphrase");
    assert_eq!(kind(f.reopen(&raw(1), &raw(9))), "wrong-passphrase");
    let phrase = Secret::Passphrase(Zeroizing::new("guess".into()));
    assert_eq!(kind(f.reopen(&phrase, &raw(2))), "wrong-passphrase");
    f.reopen(&raw(1), &raw(2)).unwrap();
}

#[test]
fn passphrase_protection_keys() {
    let env = TestEnv::default();
    let hmk = Secret::Passphrase(Zeroizing::new("host master".into()));
    let kpk = Secret::Passphrase(Zeroizing::new("key protection".into()));
    let (ks, changes) = Keystore::create(Box::new(env.clone()), &hmk, Some("hmk-prod".into()), &kpk, None).unwrap();
    assert_eq!(ks.stats().hmk_id, "hmk-prod");
    let header = changes.upserts[0].clone();
    Keystore::open(Box::new(env.clone()), &header, &hmk, &kpk).unwrap();
    let wrong = Secret::Passphrase(Zeroizing::new("key protectioN".into()));
    assert_eq!(kind(Keystore::open(Box::new(env.clone()), &header, &hmk, &wrong)), "wrong-passphrase");
    let empty = Secret::Passphrase(Zeroizing::new(String::new()));
    assert_eq!(kind(Keystore::create(Box::new(env), &empty, None, &kpk, None)), "invalid-argument");
}

#[test]
fn tampered_rows_are_integrity_and_the_rest_stays_usable() {
    let mut f = Fixture::new();
    f.group("g");
    f.group("h");
    f.key("g", "k", Active);
    f.key("h", "k", Active);
    let ct_g = f.ks.encrypt("g", b"g data", b"").unwrap();
    let ct_h = f.ks.encrypt("h", b"h data", b"").unwrap();
    let g_tag = f.ks.key("g", "k").unwrap().tag.to_string();
    let g_key_id = f.rows.keys().find(|id| id.ends_with(&g_tag)).unwrap().clone();
    let mut rows = f.rows.clone();
    let body = &mut rows.get_mut(&g_key_id).unwrap().body;
    let last = body.len() - 1;
    body[last] ^= 0x40;

    let mut ks = Keystore::open(Box::new(f.env.clone()), &rows[HEADER_ID], &raw(1), &raw(2)).unwrap();
    let list: Vec<Row> = rows.values().filter(|r| r.id != HEADER_ID).cloned().collect();
    let faults = ks.load(&list, &[]).unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].id, g_key_id);
    assert_eq!(ks.stats().corrupt_rows, 1);
    assert_eq!(kind(ks.decrypt(&ct_g, b"")), "integrity");
    assert_eq!(ks.decrypt(&ct_h, b"").unwrap(), b"h data");
    // The corrupt row may be g's active key: no activation there.
    let (_, c) = ks.create_key("g", "k2", Prelive, None, "").unwrap();
    assert!(!c.is_empty());
    assert_eq!(kind(ks.set_state("g", "k2", Active)), "integrity");
    assert_eq!(kind(ks.delete_group("g")), "not-deletable");

    // A row moved under another id is refused too (id is bound to the seal).
    let mut rows = f.rows.clone();
    let g_row = rows.keys().find(|id| id.starts_with("g:")).unwrap().clone();
    let moved = Row { id: "g:00000000000000000000000000000000".into(), ..rows[&g_row].clone() };
    rows.insert(moved.id.clone(), moved);
    let mut ks = Keystore::open(Box::new(f.env.clone()), &rows[HEADER_ID], &raw(1), &raw(2)).unwrap();
    let list: Vec<Row> = rows.values().filter(|r| r.id != HEADER_ID).cloned().collect();
    let faults = ks.load(&list, &[]).unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].id, "g:00000000000000000000000000000000");
}

#[test]
fn tampered_header_is_integrity() {
    let f = Fixture::new();
    let mut header = f.rows[HEADER_ID].clone();
    // Flip the quiesce flag region: the last byte before the MAC.
    let at = header.body.len() - 33;
    header.body[at] ^= 1;
    let err = Keystore::open(Box::new(f.env.clone()), &header, &raw(1), &raw(2)).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
    // A replayed header version is refused as well.
    let mut header = f.rows[HEADER_ID].clone();
    header.version += 1;
    assert_eq!(kind(Keystore::open(Box::new(f.env.clone()), &header, &raw(1), &raw(2)).map(|_| ())), "integrity");
}

#[test]
fn quiesce_blocks_mutations_but_not_data() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "k", Active);
    let c = f.ks.quiesce().unwrap();
    f.persist(c);
    assert!(f.ks.stats().quiesced);
    assert_eq!(kind(f.ks.create_group("h", Cipher::Aes256Gcm, "")), "quiesced");
    assert_eq!(kind(f.ks.set_state("g", "k", Inactive)), "quiesced");
    assert_eq!(kind(f.ks.delete_key("g", "k")), "quiesced");
    let ct = f.ks.encrypt("g", b"still works", b"").unwrap();
    assert_eq!(f.ks.decrypt(&ct, b"").unwrap(), b"still works");
    let reopened = f.reopen(&raw(1), &raw(2)).unwrap();
    assert!(reopened.stats().quiesced, "the flag is persisted");
    let c = f.ks.unquiesce().unwrap();
    f.persist(c);
    f.set("g", "k", Inactive).unwrap();
}

#[test]
fn catch_up_sees_changes_made_elsewhere() {
    // Two models over one row store: what one writes, the other loads.
    let mut a = Fixture::new();
    a.group("g");
    a.key("g", "k1", Active);
    let mut b = a.reopen(&raw(1), &raw(2)).unwrap();
    a.key("g", "k2", Active);
    a.set("g", "k1", Deprecated).unwrap();
    let changed: Vec<Row> = a.rows.values().filter(|r| r.id.starts_with("k:")).cloned().collect();
    b.load(&changed, &[]).unwrap();
    assert_eq!(b.key("g", "k1").unwrap().state, Deprecated);
    assert_eq!(b.group("g").unwrap().active_key.as_deref(), Some("k2"));
    let tag = b.key("g", "k1").unwrap().tag;
    let deleted = vec![a.rows.keys().find(|id| id.ends_with(&tag.to_string())).unwrap().clone()];
    b.load(&[], &deleted).unwrap();
    assert_eq!(kind(b.key("g", "k1")), "not-found");
}

#[test]
fn aes_128_groups_round_trip_and_ciphers_do_not_mix() {
    let mut f = Fixture::new();
    let r = f.ks.create_group("small", Cipher::Aes128Gcm, "");
    f.ok(r);
    f.key("small", "k", Active);
    let ct = f.ks.encrypt("small", b"abc", b"").unwrap();
    assert_eq!(ct[5], Cipher::Aes128Gcm.code());
    assert_eq!(f.ks.decrypt(&ct, b"").unwrap(), b"abc");
    let mut other = ct.clone();
    other[5] = Cipher::Aes256Gcm.code();
    assert_eq!(kind(f.ks.decrypt(&other, b"")), "integrity");
}

#[test]
fn chacha20_groups_round_trip() {
    let mut f = Fixture::new();
    let r = f.ks.create_group("fast", Cipher::ChaCha20Poly1305, "");
    f.ok(r);
    f.key("fast", "k", Active);
    let pt = vec![7u8; 200_000];
    let ct = f.ks.encrypt("fast", &pt, b"aad").unwrap();
    assert_eq!(ct[5], Cipher::ChaCha20Poly1305.code());
    assert_eq!(f.ks.decrypt(&ct, b"aad").unwrap(), pt);
    assert_eq!(kind(f.ks.decrypt(&ct, b"other")), "integrity");
}

#[test]
fn chunk_runs_follow_the_key_state_and_match_one_encryptor() {
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "k", Active);
    let pt = vec![3u8; 3 * 65536 + 100];
    let enc = f.ks.begin_encrypt("g", b"a", 0).unwrap();
    let header = enc.header_bytes().to_vec();
    let mut whole = Vec::new();
    let mut enc2 = enc;
    enc2.update(&pt, &mut whole).unwrap();
    enc2.finish(&mut whole).unwrap();
    // The same message sealed as two runs, as two instances would.
    let mut runs = header.clone();
    runs.extend(f.ks.seal_chunks(&header, b"a", 0, &pt[..2 * 65536], false).unwrap());
    runs.extend(f.ks.seal_chunks(&header, b"a", 2, &pt[2 * 65536..], true).unwrap());
    assert_eq!(runs, whole);
    let sealed = &whole[header.len()..];
    let split = 65536 + 16;
    let mut opened = f.ks.open_chunks(&header, b"a", 0, &sealed[..split], false).unwrap();
    opened.extend(f.ks.open_chunks(&header, b"a", 1, &sealed[split..], true).unwrap());
    assert_eq!(opened, pt);

    // A key bumped to inactive seals no more runs but still opens them; deprecated, not even that.
    f.key("g", "k2", Active);
    assert_eq!(kind(f.ks.seal_chunks(&header, b"a", 0, &pt[..65536], false)), "key-unusable");
    assert_eq!(f.ks.open_chunks(&header, b"a", 0, &sealed[..split], false).unwrap(), &pt[..65536]);
    f.set("g", "k", Deprecated).unwrap();
    assert_eq!(kind(f.ks.open_chunks(&header, b"a", 0, &sealed[..split], false)), "key-unusable");
    // Garbage for a header.
    assert_eq!(kind(f.ks.seal_chunks(&[0u8; 60], b"a", 0, &[], true)), "integrity");
    assert_eq!(kind(f.ks.open_chunks(&[], b"a", 0, &[], true)), "integrity");
}

#[test]
fn encrypt_needs_an_active_key_and_a_known_group() {
    let mut f = Fixture::new();
    f.group("g");
    assert_eq!(kind(f.ks.encrypt("g", b"x", b"")), "key-unusable");
    assert_eq!(kind(f.ks.encrypt("nope", b"x", b"")), "not-found");
}

#[test]
fn catch_up_keeps_a_name_that_moved_to_another_key_in_the_same_batch() {
    // Elsewhere: key "a" renamed to "b", then a new key "a", and group "g"
    // renamed to "h", then a new group "g". Loaded in one batch, in either
    // row order, every name still leads to its holder.
    for reverse in [false, true] {
        let mut a = Fixture::new();
        a.group("g");
        a.key("g", "a", Prelive);
        let mut b = a.reopen(&raw(1), &raw(2)).unwrap();
        let r = a.ks.modify_key("g", "a", Some("b"), None);
        a.ok(r);
        a.key("g", "a", Prelive);
        let r = a.ks.modify_group("g", Some("h"), None);
        a.ok(r);
        a.group("g");
        let mut changed: Vec<Row> = a.rows.values().filter(|r| r.id != HEADER_ID).cloned().collect();
        if reverse {
            changed.reverse();
        }
        assert!(b.load(&changed, &[]).unwrap().is_empty());
        for (group, name) in [("h", "a"), ("h", "b")] {
            assert_eq!(b.key(group, name).unwrap().tag, a.ks.key(group, name).unwrap().tag, "{group}/{name}");
        }
        assert_eq!(b.group("g").unwrap().tag, a.ks.group("g").unwrap().tag);
        assert_eq!(b.group("h").unwrap().tag, a.ks.group("h").unwrap().tag);
    }
}

#[test]
fn rows_rolled_back_one_by_one_cannot_make_two_active_keys() {
    // Key "a" was active, then "b" was activated (bumping "a"). Putting back
    // the old, genuinely sealed row of "a" would make two active keys: both
    // rows are reported and kept out, and nothing is activated there.
    let mut f = Fixture::new();
    f.group("g");
    f.key("g", "a", Active);
    let old_a = f.rows.values().find(|r| r.id.starts_with("k:")).unwrap().clone();
    f.key("g", "b", Prelive);
    f.set("g", "b", Active).unwrap();
    let ct = f.ks.encrypt("g", b"x", b"").unwrap();
    let mut rows = f.rows.clone();
    rows.insert(old_a.id.clone(), old_a);
    let mut ks = Keystore::open(Box::new(f.env.clone()), &rows[HEADER_ID], &raw(1), &raw(2)).unwrap();
    let list: Vec<Row> = rows.values().filter(|r| r.id != HEADER_ID).cloned().collect();
    let faults = ks.load(&list, &[]).unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults.iter().all(|f| f.message.contains("claim to be active")), "{faults:?}");
    assert_eq!(ks.group("g").unwrap().active_key, None);
    assert_eq!(kind(ks.encrypt("g", b"x", b"")), "key-unusable");
    assert_eq!(kind(ks.decrypt(&ct, b"")), "integrity");
    let (_, c) = ks.create_key("g", "c", Prelive, None, "").unwrap();
    assert!(!c.is_empty());
    assert_eq!(kind(ks.set_state("g", "c", Active)), "integrity");
}
/// Export and import (`keystore::transfer`).
#[path = "tests/transfer.rs"]
mod transfer;

#[test]
fn contradictions_arriving_in_a_catch_up_are_kept_out_and_the_indexes_stay_exact() {
    // The keystore is loaded whole; later batches (another process's commits,
    // or rows put back one by one) must be checked as well as the first load.
    let mut f = Fixture::new();
    f.group("g");
    let group = f.ks.group("g").unwrap().tag;
    let row_of =
        |f: &Fixture, name: &str| f.rows[&crate::store::key_row_id(&group, &f.ks.key("g", name).unwrap().tag)].clone();
    f.key("g", "a", Active);
    let old_a = row_of(&f, "a");
    f.key("g", "b", Prelive);
    f.set("g", "b", Active).unwrap();
    f.key("g", "c", Prelive);
    let old_c = row_of(&f, "c");
    let renamed = f.ks.modify_key("g", "c", Some("d"), None);
    f.ok(renamed);
    f.key("g", "c", Prelive); // a new key takes the old name of the renamed one
    let new_c = row_of(&f, "c");
    let corrupt = |row: &Row| Row { body: vec![0xff], ..row.clone() };
    let open = |f: &Fixture| {
        let mut ks = Keystore::open(Box::new(f.env.clone()), &f.rows[HEADER_ID], &raw(1), &raw(2)).unwrap();
        let all: Vec<Row> = f.rows.values().filter(|r| r.id != HEADER_ID).cloned().collect();
        assert!(ks.load(&all, &[]).unwrap().is_empty());
        ks.assert_indexes_match_records();
        ks
    };

    // The old "a" (active) comes back: two active keys.
    let mut ks = open(&f);
    let faults = ks.load(std::slice::from_ref(&old_a), &[]).unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults.iter().all(|f| f.message.contains("claim to be active")), "{faults:?}");
    assert_eq!(ks.group("g").unwrap().active_key, None);
    ks.assert_indexes_match_records();

    // The old "c" (from before its rename to "d") comes back and shares its
    // name with the new "c".
    let mut ks = open(&f);
    let faults = ks.load(std::slice::from_ref(&old_c), &[]).unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults.iter().all(|f| f.message.contains("are named \"c\"")), "{faults:?}");
    assert_eq!(kind(ks.key("g", "c")), "not-found");
    ks.assert_indexes_match_records();

    // Later in the same batch the new "c" turns out corrupt: no contradiction
    // is left, and "c" is the old one.
    let mut ks = open(&f);
    let faults = ks.load(&[old_c.clone(), corrupt(&new_c)], &[]).unwrap();
    assert_eq!(faults.len(), 1, "only the corrupt row: {faults:?}");
    assert_eq!(ks.key("g", "c").unwrap().tag, f.ks.key("g", "d").unwrap().tag);
    ks.assert_indexes_match_records();

    // Or the old "c" itself turns out corrupt after taking the name: the new
    // "c" gets its name back.
    let mut ks = open(&f);
    let faults = ks.load(&[old_c.clone(), corrupt(&old_c)], &[]).unwrap();
    assert_eq!(faults.len(), 1, "only the corrupt row: {faults:?}");
    assert_eq!(ks.key("g", "c").unwrap().tag, f.ks.key("g", "c").unwrap().tag);
    assert_eq!(kind(ks.key("g", "d")), "not-found");
    ks.assert_indexes_match_records();
}
