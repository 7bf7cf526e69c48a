//! Hostile and bad input: wrong pass phrases and key files, empty and absurd
//! sizes, names with control characters, tampered, truncated, spliced and
//! foreign ciphertexts, ciphertexts of deleted or retired keys. Each case gets
//! its documented error kind and leaves the keystore's stored rows
//! byte-for-byte as they were. (Non-UTF-8 names through the CLI: see the end.)

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::Scratch;
use keystate::{Cipher, ErrorKind, KeyState, Keystore};

const HMK: &str = "correct horse battery staple";
const KPK: &str = "another long pass phrase";
const KEY_PASSPHRASE: &str = "the key's own pass phrase";

/// Every stored row and the sequence number, exactly as on disk.
fn rows(path: &Path) -> Vec<(String, i64, i64, Option<Vec<u8>>)> {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = db.prepare("SELECT id, version, seq, body FROM rows ORDER BY id").unwrap();
    let mut out: Vec<_> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect();
    let seq: i64 = db.query_row("SELECT value FROM meta WHERE name = 'seq'", [], |r| r.get(0)).unwrap();
    out.push(("<seq>".into(), seq, 0, None));
    out
}

/// The cases, run one by one against the same keystore.
struct Matrix<'a> {
    path: &'a Path,
    cases: usize,
}

impl Matrix<'_> {
    fn case<T>(&mut self, what: &str, expected: ErrorKind, run: impl FnOnce() -> keystate::Result<T>) {
        let before = rows(self.path);
        match run() {
            Ok(_) => panic!("{what}: succeeded, expected {expected:?}"),
            Err(e) => {
                assert_eq!(e.kind(), expected, "{what}: {e}");
                assert!(!e.message().is_empty(), "{what}: empty message");
                for secret in [HMK, KPK, KEY_PASSPHRASE, "wrong pass phrase"] {
                    assert!(!e.message().contains(secret), "{what}: the message shows a pass phrase: {e}");
                    assert!(!format!("{e:?}").contains(secret), "{what}: Debug shows a pass phrase: {e:?}");
                }
            }
        }
        assert_eq!(rows(self.path), before, "{what}: the stored rows changed");
        self.cases += 1;
    }
}

fn flip(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    bytes[at] ^= 0x01;
    bytes
}

#[test]
fn every_bad_input_gets_its_error_kind_and_changes_nothing() {
    let s = Scratch::new();
    let path = s.path("hostile.db");
    let ks = Keystore::create(&path, Some(HMK), Some(KPK)).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_group("g128", Cipher::Aes128Gcm, "").unwrap();
    ks.create_group("idle", Cipher::Aes256Gcm, "").unwrap();
    let k = ks.create_key("g", "k", KeyState::Active, None, "").unwrap();
    ks.create_key("g128", "k", KeyState::Active, None, "").unwrap();
    let pk = ks.create_key("g", "pk", KeyState::Prelive, Some(KEY_PASSPHRASE), "").unwrap();
    ks.create_key("idle", "waiting", KeyState::Prelive, None, "").unwrap();
    let ct = ks.encrypt("g", &[0x5a; 200_000], b"aad of g").unwrap();
    let ct_small = ks.encrypt("g", b"short", b"aad of g").unwrap();
    let ct128 = ks.encrypt("g128", b"other group", b"aad of g128").unwrap();
    // Keys to retire: a ciphertext of each, then deprecated / deleted.
    ks.create_key("g", "retired", KeyState::Active, None, "").unwrap();
    let ct_retired = ks.encrypt("g", b"retired", b"").unwrap();
    ks.create_key("g", "gone", KeyState::Active, None, "").unwrap();
    let ct_gone = ks.encrypt("g", b"gone", b"").unwrap();
    ks.set_state("g", "k", KeyState::Active).unwrap();
    ks.set_state("g", "retired", KeyState::Deprecated).unwrap();
    for state in [KeyState::Deprecated, KeyState::Terminated] {
        ks.set_state("g", "gone", state).unwrap();
    }
    ks.delete_key("g", "gone").unwrap();
    ks.set_state("g", "pk", KeyState::Active).unwrap();
    for state in [KeyState::Inactive, KeyState::Deprecated, KeyState::Terminated] {
        ks.set_state("g", "pk", state).unwrap();
    }
    ks.delete_key("g", "pk").unwrap();
    ks.set_state("g", "k", KeyState::Active).unwrap();
    let other = Keystore::create(s.path("other.db"), None, None).unwrap();
    other.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    other.create_key("g", "k", KeyState::Active, None, "").unwrap();
    let ct_foreign = other.encrypt("g", b"foreign", b"aad of g").unwrap();

    let mut m = Matrix { path: &path, cases: 0 };
    use ErrorKind::*;

    // Pass phrases and key files.
    m.case("wrong HMK pass phrase", WrongPassphrase, || Keystore::open(&path, Some("wrong pass phrase"), Some(KPK)));
    m.case("wrong KPK pass phrase", WrongPassphrase, || Keystore::open(&path, Some(HMK), Some("wrong pass phrase")));
    m.case("empty HMK pass phrase", WrongPassphrase, || Keystore::open(&path, Some(""), Some(KPK)));
    m.case("HMK pass phrase with a trailing newline", WrongPassphrase, || {
        Keystore::open(&path, Some(&format!("{HMK}\n")), Some(KPK))
    });
    m.case("no HMK pass phrase", InvalidArgument, || Keystore::open(&path, None, Some(KPK)));
    m.case("no KPK pass phrase", InvalidArgument, || Keystore::open(&path, Some(HMK), None));
    m.case("wrong key pass phrase on recovery", WrongPassphrase, || {
        ks.recover_key("g", "pk", &pk.tag, "wrong pass phrase", KeyState::Inactive)
    });
    m.case("recovering a random key", WrongPassphrase, || {
        ks.recover_key("g", "again", &k.tag.replace('0', "1"), KEY_PASSPHRASE, KeyState::Inactive)
    });
    m.case("recovering a key that still exists", AlreadyExists, || {
        ks.recover_key("g", "again", &k.tag, KEY_PASSPHRASE, KeyState::Inactive)
    });
    m.case("empty key pass phrase", InvalidArgument, || ks.create_key("g", "new", KeyState::Prelive, Some(""), ""));

    // Names, descriptions, tags.
    let long = "n".repeat(256);
    let absurd = "n".repeat(16 << 20);
    let bad_names: [(&str, &str); 10] = [
        ("empty name", ""),
        ("256-byte name", &long),
        ("16 MiB name", &absurd),
        ("name with a newline", "a\nb"),
        ("name with NUL", "a\0b"),
        ("name with an escape sequence", "\u{1b}[31mred"),
        ("name with DEL", "a\u{7f}"),
        ("name with C1 control", "a\u{85}b"),
        ("leading space", " a"),
        ("trailing tab", "a\t"),
    ];
    for (what, name) in bad_names {
        m.case(&format!("group: {what}"), InvalidArgument, || ks.create_group(name, Cipher::Aes256Gcm, ""));
        m.case(&format!("key: {what}"), InvalidArgument, || ks.create_key("g", name, KeyState::Prelive, None, ""));
        m.case(&format!("rename group: {what}"), InvalidArgument, || ks.modify_group("g", Some(name), None));
        m.case(&format!("rename key: {what}"), InvalidArgument, || ks.modify_key("g", "k", Some(name), None));
    }
    let long_description = "d".repeat(4097);
    let absurd_description = "d".repeat(32 << 20);
    for (what, d) in [("4097-byte", long_description.as_str()), ("32 MiB", &absurd_description), ("bell", "\u{7}")] {
        m.case(&format!("{what} description"), InvalidArgument, || ks.create_group("x", Cipher::Aes256Gcm, d));
        m.case(&format!("{what} key description"), InvalidArgument, || ks.modify_key("g", "k", None, Some(d)));
    }
    for (what, tag) in [
        ("empty tag", String::new()),
        ("short tag", "abc".into()),
        ("upper-case tag", k.tag.to_uppercase()),
        ("tag with a non-hex digit", format!("{}g", &k.tag[..31])),
        ("33-digit tag", format!("{}0", k.tag)),
        ("multi-byte tag", "é".repeat(16)),
    ] {
        m.case(&format!("lookup: {what}"), InvalidArgument, || ks.key_by_tag(&tag));
        m.case(&format!("recover: {what}"), InvalidArgument, || {
            ks.recover_key("g", "r", &tag, KEY_PASSPHRASE, KeyState::Inactive)
        });
    }
    m.case("unknown group", NotFound, || ks.create_key("nope", "k", KeyState::Prelive, None, ""));
    m.case("unknown key", NotFound, || ks.set_state("g", "nope", KeyState::Active));
    m.case("unknown tag", NotFound, || ks.key_by_tag(&"0".repeat(32)));
    m.case("encrypt in a group without an active key", KeyUnusable, || ks.encrypt("idle", b"x", b""));
    m.case("encrypt in an unknown group", NotFound, || ks.encrypt("nope", b"x", b""));

    // Ciphertexts.
    let header = 60;
    let spliced = [&ct_small[..header], &ct[header..]].concat();
    let other_header = [&ct[..header], &ct_small[header..]].concat();
    let mut retagged = ct_small.clone();
    retagged[12..28].copy_from_slice(&ct128[12..28]);
    let mut recipher = ct_small.clone();
    recipher[5] = 2;
    let mut rechunk = ct.clone();
    rechunk[8..12].copy_from_slice(&128u32.to_le_bytes());
    let bad_ciphertexts: Vec<(&str, Vec<u8>, &[u8], ErrorKind)> = vec![
        ("empty ciphertext", vec![], b"aad of g", Integrity),
        ("59 bytes", ct[..59].to_vec(), b"aad of g", Integrity),
        ("header only", ct[..header].to_vec(), b"aad of g", Integrity),
        ("truncated in the first chunk", ct[..header + 100].to_vec(), b"aad of g", Integrity),
        ("truncated at a chunk boundary", ct[..header + 65536 + 16].to_vec(), b"aad of g", Integrity),
        ("last byte missing", ct[..ct.len() - 1].to_vec(), b"aad of g", Integrity),
        ("trailing garbage", [ct_small.clone(), vec![0]].concat(), b"aad of g", Integrity),
        ("two ciphertexts concatenated", [ct_small.clone(), ct_small.clone()].concat(), b"aad of g", Integrity),
        ("flipped bit in a body", flip(ct.clone(), header + 70_000), b"aad of g", Integrity),
        ("flipped bit in the salt", flip(ct_small.clone(), 40), b"aad of g", Integrity),
        ("flipped bit in the GCM tag", flip(ct_small.clone(), ct_small.len() - 1), b"aad of g", Integrity),
        ("bad magic", flip(ct_small.clone(), 0), b"aad of g", Integrity),
        ("unknown version", flip(ct_small.clone(), 4), b"aad of g", Integrity),
        ("reserved bytes set", flip(ct_small.clone(), 6), b"aad of g", Integrity),
        ("other chunk size in the header", rechunk, b"aad of g", Integrity),
        ("cipher byte of the other group", recipher, b"aad of g", Integrity),
        ("header of one message, body of another", spliced, b"aad of g", Integrity),
        ("body of one message, header of another", other_header, b"aad of g", Integrity),
        ("key tag of another group's key", retagged, b"aad of g", Integrity),
        ("wrong associated data", ct_small.clone(), b"aad of g128", Integrity),
        ("empty associated data", ct_small.clone(), b"", Integrity),
        ("from another keystore", ct_foreign.clone(), b"aad of g", NotFound),
        ("from a deleted key", ct_gone.clone(), b"", NotFound),
        ("from a deprecated key", ct_retired.clone(), b"", KeyUnusable),
        ("random bytes", (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(), b"", Integrity),
    ];
    for (what, bytes, aad, expected) in &bad_ciphertexts {
        m.case(what, *expected, || ks.decrypt(bytes, aad));
        m.case(&format!("{what} (streamed)"), *expected, || {
            ks.decrypt_stream(&mut &bytes[..], &mut Vec::new(), aad, &mut |_| {})
        });
    }
    // What does decrypt: the genuine messages, whichever group is asked about.
    assert_eq!(ks.decrypt(&ct128, b"aad of g128").unwrap(), b"other group");
    assert_eq!(ks.decrypt(&ct, b"aad of g").unwrap(), vec![0x5a; 200_000]);

    // Key files of a keystore with random HMK/KPK.
    let kf = s.path("kf.db");
    drop(Keystore::create(&kf, None, None).unwrap());
    let other_hmk = std::fs::read(s.path("other.db.hmk")).unwrap();
    let own_hmk = std::fs::read(s.path("kf.db.hmk")).unwrap();
    let mut kf_m = Matrix { path: &kf, cases: 0 };
    kf_m.case("a pass phrase for a key-file HMK", InvalidArgument, || Keystore::open(&kf, Some(HMK), None));
    std::fs::write(s.path("kf.db.hmk"), &other_hmk).unwrap();
    kf_m.case("another keystore's HMK file", WrongPassphrase, || Keystore::open(&kf, None, None));
    std::fs::write(s.path("kf.db.hmk"), &own_hmk[..20]).unwrap();
    kf_m.case("truncated HMK file", Integrity, || Keystore::open(&kf, None, None));
    std::fs::write(s.path("kf.db.hmk"), b"").unwrap();
    kf_m.case("empty HMK file", Integrity, || Keystore::open(&kf, None, None));
    std::fs::remove_file(s.path("kf.db.hmk")).unwrap();
    kf_m.case("missing HMK file", NotFound, || Keystore::open(&kf, None, None));
    std::fs::write(s.path("kf.db.hmk"), &own_hmk).unwrap();
    Keystore::open(&kf, None, None).unwrap();

    let total = m.cases + kf_m.cases;
    eprintln!("hostile input: {total} cases through the API, each with its error kind and nothing changed");
    assert!(total > 100);
}

/// Names that are not UTF-8 or hold control characters, through the CLI:
/// exit code 11 (invalid argument) and nothing changed.
#[test]
fn the_cli_refuses_non_utf8_and_control_character_names() {
    let bin = env!("CARGO_BIN_EXE_keystate");
    let s = Scratch::new();
    let path = s.path("cli.db");
    let ks = Keystore::create(&path, None, None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_key("g", "k", KeyState::Prelive, None, "").unwrap();
    drop(ks);
    let bad: [&OsStr; 5] = [
        OsStr::from_bytes(b"\xff\xfe"),
        OsStr::from_bytes(b"caf\xe9"),
        OsStr::new("line\nbreak"),
        OsStr::new("\u{1b}]0;title\u{7}"),
        OsStr::new(""),
    ];
    let mut cases = 0;
    for name in bad {
        for args in [
            vec![OsStr::new("group"), OsStr::new("create"), name],
            vec![OsStr::new("key"), OsStr::new("create"), OsStr::new("g"), name],
            vec![OsStr::new("group"), OsStr::new("modify"), OsStr::new("g"), OsStr::new("--name"), name],
            vec![OsStr::new("key"), OsStr::new("modify"), OsStr::new("g"), OsStr::new("k"), OsStr::new("--name"), name],
            vec![OsStr::new("group"), OsStr::new("create"), OsStr::new("ok"), OsStr::new("--description"), name],
        ] {
            let fine_description = [OsStr::new(""), OsStr::new("line\nbreak")].contains(&name);
            if fine_description && args.contains(&OsStr::new("--description")) {
                continue; // descriptions may be empty and hold newlines
            }
            let before = rows(&path);
            let out = Command::new(bin).arg("--keystore").arg(&path).args(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(11), "{args:?}: {stderr}");
            assert!(!stderr.trim().is_empty(), "{args:?}: no message");
            assert!(!stderr.contains('\u{1b}'), "{args:?}: the message echoes a raw escape character");
            assert_eq!(rows(&path), before, "{args:?} changed the keystore");
            cases += 1;
        }
    }
    eprintln!("hostile input: {cases} bad names through the CLI");
}
