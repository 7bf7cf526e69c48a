//! Export containers and imports, natively against the model.

use std::collections::BTreeMap;

use super::{Fixture, TestEnv, kind, raw};
use crate::crypto;
use crate::keystore::Keystore;
use crate::keystore::transfer::{self, ExportedGroup, ExportedKey, ImportReport, Payload, SkipReason};
use crate::types::{Cipher, KeyState::*};

/// A fixture whose random bytes differ from every other fixture's.
fn target(seed: u64) -> Fixture {
    let env = TestEnv::seeded(seed);
    let (ks, changes) = Keystore::create(Box::new(env.clone()), &raw(11), None, &raw(12), None).unwrap();
    let mut f = Fixture { ks, rows: BTreeMap::new(), env };
    f.persist(changes);
    f
}

/// A source keystore: group "g" (AES-256) with keys in four states, one of
/// them made from a pass phrase, and group "small" (AES-128) with one active key.
fn source() -> (Fixture, Vec<u8>, Vec<u8>) {
    let mut f = Fixture::new();
    f.group("g");
    f.key_in("old", Inactive);
    f.key_in("gone", Terminated);
    let r = f.ks.create_key("g", "phrase", Active, Some("tape 7 offsite"), "from a pass phrase");
    f.ok(r);
    f.key("g", "next", Prelive);
    let r = f.ks.create_group("small", Cipher::Aes128Gcm, "short keys");
    f.ok(r);
    f.key("small", "s1", Active);
    let ct_g = f.ks.encrypt("g", b"made in the source", b"aad").unwrap();
    let ct_small = f.ks.encrypt("small", b"small data", b"").unwrap();
    (f, ct_g, ct_small)
}

fn import(f: &mut Fixture, container: &[u8], preserve: bool) -> ImportReport {
    let (report, changes) = f.ks.import(container, "export pass", preserve, false).unwrap();
    f.persist(changes);
    report
}

fn imported(report: &ImportReport) -> usize {
    report.keys.iter().filter(|k| k.skipped.is_none()).count()
}

fn payload_with(keys: Vec<ExportedKey>) -> Payload {
    let group = ExportedGroup {
        name: "forged".into(),
        cipher: Cipher::Aes256Gcm,
        description: String::new(),
        created: 1,
        modified: 2,
        keys,
    };
    Payload { exported: 3, groups: vec![group] }
}

fn exported_key(name: &str, salt: [u8; 8], material: [u8; 32], state: crate::types::KeyState) -> ExportedKey {
    ExportedKey {
        tag: crypto::key_tag(salt, &material),
        name: name.into(),
        state,
        description: String::new(),
        created: 1,
        modified: 2,
        recoverable: false,
        material,
    }
}

#[test]
fn container_layout_and_every_changed_byte() {
    let payload = payload_with(vec![exported_key("k", [1; 8], [7; 32], Active)]);
    let sealed = transfer::seal(&payload, "export pass", [0x40; 16], [0x50; 12]).unwrap();
    assert_eq!(&sealed[..4], b"KSTX");
    assert_eq!(sealed[4..8], [1, 1, 0, 0]);
    assert_eq!(u32::from_le_bytes(sealed[8..12].try_into().unwrap()), 19456);
    assert_eq!(u32::from_le_bytes(sealed[12..16].try_into().unwrap()), 2);
    assert_eq!(u32::from_le_bytes(sealed[16..20].try_into().unwrap()), 1);
    assert_eq!(sealed[20..36], [0x40; 16]);
    assert_eq!(sealed[36..48], [0x50; 12]);
    // The body is the postcard payload plus a 16-byte GCM tag.
    let plain_len = postcard::to_allocvec(&payload).unwrap().len();
    assert_eq!(sealed.len(), transfer::HEADER_LEN + plain_len + 16);
    // The check value and the seal follow docs/format.md, rebuilt from the primitives.
    let stretched = crypto::derive_from_passphrase("export pass", &[0x40; 16]).unwrap();
    assert_eq!(sealed[48..64], crypto::check_value(&stretched, "EXPORT"));
    let key = crypto::subkey(stretched.as_ref(), b"keystate/export/v1");
    let mut body = sealed[36..48].to_vec();
    body.extend_from_slice(&sealed[64..]);
    let plain = crypto::open(&key, &sealed[..64], &body).unwrap();
    assert_eq!(plain.as_slice(), postcard::to_allocvec(&payload).unwrap());

    let opened = transfer::open(&sealed, "export pass").unwrap();
    assert_eq!(opened.groups[0].keys[0].material, [7; 32]);
    assert_eq!(kind(transfer::open(&sealed, "export pasS").map(|_| ())), "wrong-passphrase");
    assert_eq!(kind(transfer::open(&sealed, "").map(|_| ())), "invalid-argument");
    for at in 0..sealed.len() {
        let mut t = sealed.clone();
        t[at] ^= 0x01;
        let got = kind(transfer::open(&t, "export pass").map(|_| ()));
        // A changed salt or check value cannot be told from a wrong pass phrase.
        let expected = if (20..36).contains(&at) || (48..64).contains(&at) { "wrong-passphrase" } else { "integrity" };
        assert_eq!(got, expected, "byte {at}");
    }
    for len in [0, 3, 4, 63, 64, 79, sealed.len() - 1] {
        assert_eq!(kind(transfer::open(&sealed[..len], "export pass").map(|_| ())), "integrity", "cut to {len}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(kind(transfer::open(&longer, "export pass").map(|_| ())), "integrity");
    assert_eq!(kind(transfer::open(b"KSTD not a container at all", "export pass").map(|_| ())), "integrity");
    assert_eq!(kind(transfer::seal(&payload, "", [0; 16], [0; 12]).map(|_| ())), "invalid-argument");
}

#[test]
fn inconsistent_containers_are_refused() {
    let two_active =
        payload_with(vec![exported_key("a", [1; 8], [1; 32], Active), exported_key("b", [2; 8], [2; 32], Active)]);
    let mut wrong_tag = payload_with(vec![exported_key("a", [1; 8], [1; 32], Active)]);
    wrong_tag.groups[0].keys[0].material[0] ^= 1;
    let same_name =
        payload_with(vec![exported_key("a", [1; 8], [1; 32], Active), exported_key("a", [2; 8], [2; 32], Prelive)]);
    let mut bad_name = payload_with(vec![]);
    bad_name.groups[0].name = " padded".into();
    for (what, p) in
        [("two active", two_active), ("wrong tag", wrong_tag), ("same name", same_name), ("bad name", bad_name)]
    {
        let sealed = transfer::seal(&p, "export pass", [3; 16], [4; 12]).unwrap();
        let mut t = target(1);
        let err = t.ks.import(&sealed, "export pass", false, false).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), "integrity", "{what}: {err}");
        assert!(t.ks.groups().is_empty(), "{what}: nothing imported");
    }
}

#[test]
fn round_trip_keeps_keys_states_tags_and_old_data() {
    let (src, ct_g, ct_small) = source();
    let before = src.rows.clone();
    let container = src.ks.export(None, "export pass").unwrap();
    assert_eq!(src.rows, before, "export changes nothing");
    // Nothing that opens the source: no row body, no wrapped key.
    for row in before.values() {
        let probe = &row.body[row.body.len() - 16..];
        assert!(!container.windows(16).any(|w| w == probe), "row {} leaked into the container", row.id);
    }

    let mut t = target(1);
    let report = import(&mut t, &container, false);
    assert_eq!(report.groups.len(), 2);
    assert!(report.groups.iter().all(|g| g.skipped.is_none()));
    assert_eq!(imported(&report), 5);
    let stamp = report.groups[0].name.rsplit_once('_').unwrap().1.to_string();
    assert_eq!(stamp.len(), 16, "{stamp}");
    assert_eq!(report.groups[0].name, format!("g_{stamp}"));
    assert_eq!(report.groups[1].name, format!("small_{stamp}"));
    let g = t.ks.group(&report.groups[0].name).unwrap();
    assert_eq!(g.active_key.as_deref(), Some("phrase"));
    assert_eq!(t.ks.group(&report.groups[1].name).unwrap().cipher, Cipher::Aes128Gcm);
    for key in src.ks.keys(None, None).unwrap() {
        let there = t.ks.key_by_tag(&key.tag.to_string()).unwrap();
        assert_eq!(
            (&there.name, there.state, &there.description, there.created, there.modified, there.recoverable),
            (&key.name, key.state, &key.description, key.created, key.modified, key.recoverable)
        );
    }
    assert_eq!(t.ks.decrypt(&ct_g, b"aad").unwrap(), b"made in the source");
    assert_eq!(t.ks.decrypt(&ct_small, b"").unwrap(), b"small data");
    // Rows are the target's: a fresh model over them (target HMK and KPK) sees the same.
    let reopened = t.reopen(&raw(11), &raw(12)).unwrap();
    assert_eq!(reopened.keys(None, None).unwrap(), t.ks.keys(None, None).unwrap());
    assert_eq!(reopened.decrypt(&ct_g, b"aad").unwrap(), b"made in the source");
    assert!(t.reopen(&raw(1), &raw(2)).is_err(), "the source's keys do not open the target");
}

#[test]
fn importing_twice_skips_every_key_and_creates_no_group() {
    let (src, ..) = source();
    let container = src.ks.export(None, "export pass").unwrap();
    let mut t = target(1);
    import(&mut t, &container, false);
    let rows = t.rows.clone();
    let (report, changes) = t.ks.import(&container, "export pass", false, false).unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(t.rows, rows);
    assert_eq!(imported(&report), 0);
    assert!(report.keys.iter().all(|k| k.skipped.as_ref().unwrap().reason == SkipReason::TagExists));
    assert!(report.groups.iter().all(|g| g.skipped.as_ref().unwrap().reason == SkipReason::NoNewKeys));
    assert_eq!(t.ks.groups().len(), 2);

    // With names preserved the groups exist: skipped as such, keys as duplicates.
    let mut t = target(2);
    import(&mut t, &container, true);
    assert!(t.ks.group("g").is_ok() && t.ks.group("small").is_ok());
    let (report, changes) = t.ks.import(&container, "export pass", true, false).unwrap();
    assert!(changes.is_empty());
    assert!(report.groups.iter().all(|g| g.skipped.as_ref().unwrap().reason == SkipReason::GroupExists));
    assert!(report.keys.iter().all(|k| k.skipped.as_ref().unwrap().reason == SkipReason::TagExists));
}

#[test]
fn preserved_names_never_merge_groups() {
    let (src, ..) = source();
    let container = src.ks.export(Some(&["g".into()]), "export pass").unwrap();
    let mut t = target(1);
    t.group("g");
    t.key("g", "mine", Active);
    let report = import(&mut t, &container, true);
    assert_eq!(report.groups[0].skipped.as_ref().unwrap().reason, SkipReason::GroupExists);
    assert!(report.keys.iter().all(|k| k.skipped.as_ref().unwrap().reason == SkipReason::GroupExists));
    assert_eq!(t.ks.keys(Some("g"), None).unwrap().len(), 1, "nothing merged into the existing group");
    // Without --preserve-names the same container goes into a new group beside it.
    let report = import(&mut t, &container, false);
    assert_eq!(imported(&report), 4);
    assert_eq!(t.ks.groups().len(), 2);
    assert_eq!(t.ks.group("g").unwrap().active_key.as_deref(), Some("mine"));
}

#[test]
fn same_material_under_another_tag_is_skipped() {
    // The target holds a key; a container brings the same material under another salt.
    let mut t = target(1);
    t.group("g");
    t.key("g", "k", Active);
    let own = t.ks.export(None, "export pass").unwrap();
    let material = transfer::open(&own, "export pass").unwrap().groups[0].keys[0].material;
    let p = payload_with(vec![
        exported_key("copy", [9; 8], material, Active),
        exported_key("fresh", [8; 8], [5; 32], Prelive),
        exported_key("fresh-twin", [7; 8], [5; 32], Prelive),
    ]);
    let sealed = transfer::seal(&p, "export pass", [3; 16], [4; 12]).unwrap();
    let report = import(&mut t, &sealed, false);
    let reasons: Vec<_> = report.keys.iter().map(|k| k.skipped.as_ref().map(|s| s.reason)).collect();
    assert_eq!(reasons, [Some(SkipReason::MaterialExists), None, Some(SkipReason::MaterialExists)]);
    assert!(report.keys[0].skipped.as_ref().unwrap().detail.contains("\"k\""), "names the existing key");
    assert!(!report.keys[0].skipped.as_ref().unwrap().detail.contains(&format!("{:02x}", material[0]).repeat(4)));
    assert_eq!(t.ks.keys(Some(&report.groups[0].name), None).unwrap().len(), 1);
}

#[test]
fn preview_decides_the_same_and_changes_nothing() {
    let (src, ..) = source();
    let container = src.ks.export(None, "export pass").unwrap();
    let mut t = target(1);
    t.group("g");
    let rows = t.rows.clone();
    let (preview, changes) = t.ks.import(&container, "export pass", true, true).unwrap();
    assert!(changes.is_empty());
    assert_eq!(t.rows, rows);
    assert_eq!(t.ks.groups().len(), 1);
    assert!(t.ks.keys(None, None).unwrap().is_empty());
    let real = import(&mut t, &container, true);
    assert_eq!(preview, real);
    assert_eq!(imported(&real), 1, "only small's key; g exists");
}

#[test]
fn import_refusals_change_nothing() {
    let (src, ..) = source();
    let container = src.ks.export(None, "export pass").unwrap();
    let mut t = target(1);
    let c = t.ks.quiesce().unwrap();
    t.persist(c);
    assert_eq!(kind(t.ks.import(&container, "export pass", false, false)), "quiesced");
    assert_eq!(kind(t.ks.import(&container, "export pass", false, true)), "quiesced");
    let c = t.ks.unquiesce().unwrap();
    t.persist(c);
    assert_eq!(kind(t.ks.import(&container, "wrong", false, false)), "wrong-passphrase");
    let mut tampered = container.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    assert_eq!(kind(t.ks.import(&tampered, "export pass", false, false)), "integrity");
    assert!(t.ks.groups().is_empty());
}

#[test]
fn export_selects_groups_and_refuses_unreadable_rows() {
    let (mut src, ..) = source();
    let only = src.ks.export(Some(&["small".into(), "small".into()]), "export pass").unwrap();
    let payload = transfer::open(&only, "export pass").unwrap();
    assert_eq!(payload.groups.len(), 1);
    assert_eq!(payload.groups[0].name, "small");
    assert_eq!(payload.groups[0].keys.len(), 1);
    assert_eq!(kind(src.ks.export(Some(&["nope".into()]), "export pass")), "not-found");
    assert_eq!(kind(src.ks.export(Some(&[]), "export pass")), "invalid-argument");
    assert_eq!(kind(src.ks.export(None, "")), "invalid-argument");
    // An empty group travels too.
    src.group("empty");
    let all = transfer::open(&src.ks.export(None, "export pass").unwrap(), "export pass").unwrap();
    let names: Vec<_> = all.groups.iter().map(|g| (g.name.as_str(), g.keys.len())).collect();
    assert_eq!(names, [("empty", 0), ("g", 4), ("small", 1)]);

    // A corrupt key row in "g": g (and "all") cannot be exported, "small" still can.
    let tag = src.ks.key("g", "old").unwrap().tag.to_string();
    let mut rows = src.rows.clone();
    let id = rows.keys().find(|id| id.ends_with(&tag)).unwrap().clone();
    rows.get_mut(&id).unwrap().body[5] ^= 1;
    let mut ks = Keystore::open(Box::new(src.env.clone()), &rows["header"], &raw(1), &raw(2)).unwrap();
    let list: Vec<_> = rows.values().filter(|r| r.id != "header").cloned().collect();
    assert_eq!(ks.load(&list, &[]).unwrap().len(), 1);
    assert_eq!(kind(ks.export(None, "export pass")), "integrity");
    assert_eq!(kind(ks.export(Some(&["g".into()]), "export pass")), "integrity");
    ks.export(Some(&["small".into()]), "export pass").unwrap();
}

#[test]
fn imported_passphrase_key_is_recoverable_after_deletion() {
    let (src, ..) = source();
    let container = src.ks.export(None, "export pass").unwrap();
    let mut t = target(1);
    let report = import(&mut t, &container, true);
    assert_eq!(imported(&report), 5);
    let info = t.ks.key("g", "phrase").unwrap();
    assert!(info.recoverable);
    t.set("g", "phrase", Inactive).unwrap();
    t.set("g", "phrase", Deprecated).unwrap();
    t.set("g", "phrase", Terminated).unwrap();
    t.delete("g", "phrase").unwrap();
    let r = t.ks.recover_key("g", "phrase", &info.tag.to_string(), "tape 7 offsite", Inactive);
    let back = t.ok(r);
    assert_eq!(back.tag, info.tag);
}

#[test]
fn one_active_key_per_group_after_import() {
    let (src, ..) = source();
    let container = src.ks.export(None, "export pass").unwrap();
    let mut t = target(1);
    import(&mut t, &container, false);
    import(&mut t, &container, true);
    for g in t.ks.groups() {
        assert!(t.ks.keys(Some(&g.name), Some(Active)).unwrap().len() <= 1, "{}", g.name);
    }
}

#[test]
fn group_names_get_a_utc_stamp_and_stay_valid() {
    assert_eq!(transfer::name_stamp(0), "19700101T000000Z");
    assert_eq!(transfer::name_stamp(1_700_000_000_999), "20231114T221320Z");
    assert_eq!(transfer::name_stamp(951_782_400_000), "20000229T000000Z");
    assert_eq!(transfer::name_stamp(4_102_444_799_000), "20991231T235959Z");

    // A 255-byte name (multi-byte characters at the cut) is shortened to fit;
    // a second import in the same second gets "-2".
    let long = "é".repeat(127) + "x";
    assert_eq!(long.len(), 255);
    let mut src = Fixture::new();
    src.group(&long);
    src.key(&long, "k", Active);
    let container = src.ks.export(None, "export pass").unwrap();
    let mut t = target(1);
    let clock = t.env.clock.get();
    let first = import(&mut t, &container, false).groups[0].name.clone();
    // The same second again, with a container holding only an empty group of that name.
    t.env.clock.set(clock);
    let p = Payload {
        exported: 0,
        groups: vec![ExportedGroup {
            name: long.clone(),
            cipher: Cipher::Aes256Gcm,
            description: String::new(),
            created: 1,
            modified: 1,
            keys: vec![],
        }],
    };
    let sealed = transfer::seal(&p, "export pass", [3; 16], [4; 12]).unwrap();
    let second = import(&mut t, &sealed, false).groups[0].name.clone();
    for name in [&first, &second] {
        assert!(name.len() <= 255 && name.starts_with("éé"), "{name}");
        t.ks.group(name).unwrap();
    }
    assert!(second.ends_with("Z-2"), "{second} after {first}");
}
