//! Fuzz entry points: the bodies of the cargo-fuzz targets in `fuzz/`, kept
//! here so the normal test suite replays the committed corpus and every input
//! that once failed (`fuzz/corpus`, `fuzz/regressions`) through the same code.
//!
//! - [`data_format`]: arbitrary bytes as a ciphertext (one-shot and streamed in
//!   two pieces must agree), and seal/open round trips with tampering.
//! - [`rows`]: a keystore opened on an arbitrary mix of genuine, tampered,
//!   replayed and invented rows: no panic, one active key per group, and every
//!   record that loads is one that was genuinely sealed.
//! - [`ops`]: an arbitrary operation sequence, differential against a plain
//!   model of the rule book, with change sets applied by compare-and-swap and
//!   reopens from the stored rows.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use zeroize::Zeroizing;

use crate::format::{self, Decryptor, MIN_CHUNK_SIZE};
use crate::keystore::{ChangeSet, Keystore, Row};
use crate::store::{HEADER_ID, Secret};
use crate::types::{Cipher, Env, Error, KeyState, Tag};

/// Deterministic time and entropy (SHA-256 of a counter).
#[derive(Clone, Default)]
pub struct FuzzEnv {
    pub(crate) clock: Rc<Cell<u64>>,
    pub(crate) counter: Rc<Cell<u64>>,
}

impl FuzzEnv {
    /// An environment whose random bytes differ from those of every other seed.
    pub fn seeded(seed: u64) -> FuzzEnv {
        let env = FuzzEnv::default();
        env.counter.set(seed << 32);
        env
    }
}

impl Env for FuzzEnv {
    fn now(&self) -> u64 {
        self.clock.set(self.clock.get() + 1000);
        1_700_000_000_000 + self.clock.get()
    }

    fn fill_random(&self, buf: &mut [u8]) {
        use sha2::{Digest, Sha256};
        for chunk in buf.chunks_mut(32) {
            self.counter.set(self.counter.get() + 1);
            let block = Sha256::digest(self.counter.get().to_le_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

fn raw(byte: u8) -> Secret {
    Secret::Raw(Zeroizing::new(vec![byte; 32]))
}

/// Rows as a host stores them, applying change sets with compare-and-swap.
#[derive(Clone, Default)]
struct Rows(BTreeMap<String, Row>);

impl Rows {
    fn persist(&mut self, changes: ChangeSet) {
        for row in changes.upserts {
            let stored = self.0.get(&row.id).map(|r| r.version).unwrap_or(0);
            assert_eq!(stored + 1, row.version, "upsert of {} does not follow the stored version", row.id);
            self.0.insert(row.id.clone(), row);
        }
        for (id, version) in changes.deletes {
            assert_eq!(self.0.remove(&id).map(|r| r.version), Some(version), "delete of {id}");
        }
    }

    fn open(&self, env: &FuzzEnv) -> Keystore {
        let mut ks = Keystore::open(Box::new(env.clone()), &self.0[HEADER_ID], &raw(1), &raw(2)).expect("reopen");
        let rows: Vec<Row> = self.0.values().filter(|r| r.id != HEADER_ID).cloned().collect();
        let faults = ks.load(&rows, &[]).expect("load");
        assert!(faults.is_empty(), "genuine rows failed to load: {faults:?}");
        ks
    }
}

// ---- data format -------------------------------------------------------------------

const FUZZ_KEY: [u8; 32] = [0x42; 32];

/// Arbitrary bytes as a ciphertext, then a round trip built from the bytes.
pub fn data_format(data: &[u8]) {
    let key = |_: &format::Header| Ok(Zeroizing::new(FUZZ_KEY));
    let whole = format::open(data, b"aad", &mut key.clone());
    let split = if data.is_empty() { 0 } else { data[0] as usize * data.len() / 256 };
    let streamed = open_in_two(data, split, b"aad");
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "one-shot and streamed decryption disagree"),
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "{a} / {b}"),
        _ => panic!("one-shot {:?} vs streamed {:?}", whole.map(|_| ()), streamed.map(|_| ())),
    }
    if let Err(e) = &whole {
        assert!(matches!(e, Error::Integrity(_)), "arbitrary bytes gave {e}");
    }
    let _ = format::Header::parse(data);
    round_trip(data);
}

fn open_in_two(data: &[u8], split: usize, aad: &[u8]) -> crate::types::Result<Vec<u8>> {
    let mut key = |_: &format::Header| Ok(Zeroizing::new(FUZZ_KEY));
    let mut d = Decryptor::new(aad);
    let mut out = Vec::new();
    d.update(&data[..split], &mut out, &mut key)?;
    d.update(&data[split..], &mut out, &mut key)?;
    d.finish(&mut out)?;
    Ok(out)
}

/// `[cipher][chunk size: 2 bytes][flip: 2 bytes][aad len][aad][plaintext]`:
/// sealing then opening gives the plaintext back, in one go and streamed; any
/// flipped bit, truncation or other AAD fails with Integrity.
fn round_trip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(aes128), Ok(chunk), Ok(flip), Ok(aad_len)) =
        (u.arbitrary::<bool>(), u.arbitrary::<u16>(), u.arbitrary::<u16>(), u.arbitrary::<u8>())
    else {
        return;
    };
    let cipher = if aes128 { Cipher::Aes128Gcm } else { Cipher::Aes256Gcm };
    let chunk_size = MIN_CHUNK_SIZE + u32::from(chunk) % 512;
    let aad = u.bytes((aad_len as usize).min(u.len())).unwrap_or_default().to_vec();
    let plaintext = u.take_rest();
    let sealed = format::seal(cipher, &FUZZ_KEY, Tag([7; 16]), [9; 32], chunk_size, &aad, plaintext).unwrap();
    assert_eq!(format::sealed_len(plaintext.len() as u64, chunk_size), Some(sealed.len() as u64));
    let key = |_: &format::Header| Ok(Zeroizing::new(FUZZ_KEY));
    assert_eq!(format::open(&sealed, &aad, &mut key.clone()).unwrap(), plaintext);
    let split = flip as usize % (sealed.len() + 1);
    assert_eq!(open_in_two(&sealed, split, &aad).unwrap(), plaintext);

    let mut tampered = sealed.clone();
    let bit = flip as usize % (tampered.len() * 8);
    tampered[bit / 8] ^= 1 << (bit % 8);
    let e = format::open(&tampered, &aad, &mut key.clone()).unwrap_err();
    assert!(matches!(e, Error::Integrity(_)), "a flipped bit gave {e}");
    let e = format::open(&sealed[..split.min(sealed.len() - 1)], &aad, &mut key.clone()).unwrap_err();
    assert!(matches!(e, Error::Integrity(_)), "truncation gave {e}");
    let mut other_aad = aad.clone();
    other_aad.push(1);
    assert!(matches!(format::open(&sealed, &other_aad, &mut key.clone()), Err(Error::Integrity(_))));
}

// ---- keystore rows ------------------------------------------------------------------

/// A genuine keystore's rows, every version of every row ever sealed, and
/// every record (as `Debug` text, by tag) that ever was genuine.
struct Genuine {
    current: Vec<Row>,
    history: Vec<Row>,
    records: BTreeSet<String>,
}

fn genuine() -> &'static Genuine {
    static GENUINE: OnceLock<Genuine> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let env = FuzzEnv::default();
        let (mut ks, changes) = Keystore::create(Box::new(env), &raw(1), None, &raw(2), None).unwrap();
        let mut rows = Rows::default();
        let mut history = Vec::new();
        let mut records = BTreeSet::new();
        let mut step = |ks: &mut Keystore, changes: ChangeSet, rows: &mut Rows| {
            history.extend(changes.upserts.iter().cloned());
            rows.persist(changes);
            records.extend(ks.groups().into_iter().map(|g| format!("{g:?}")));
            records.extend(ks.keys(None, None).unwrap().into_iter().map(key_record));
        };
        step(&mut ks, changes, &mut rows);
        for (group, cipher) in [("g1", Cipher::Aes256Gcm), ("g2", Cipher::Aes128Gcm), ("empty", Cipher::Aes256Gcm)] {
            let (_, c) = ks.create_group(group, cipher, "a group").unwrap();
            step(&mut ks, c, &mut rows);
        }
        for (group, key, state) in
            [("g1", "a", KeyState::Active), ("g1", "b", KeyState::Prelive), ("g2", "c", KeyState::Active)]
        {
            let (_, c) = ks.create_key(group, key, state, None, "").unwrap();
            step(&mut ks, c, &mut rows);
        }
        for (group, key, state) in [
            ("g1", "b", KeyState::Active),
            ("g1", "a", KeyState::Deprecated),
            ("g2", "c", KeyState::Inactive),
            ("g2", "c", KeyState::Active),
        ] {
            let (_, c) = ks.set_state(group, key, state).unwrap();
            step(&mut ks, c, &mut rows);
        }
        let (_, c) = ks.modify_group("g2", Some("renamed"), Some("new text")).unwrap();
        step(&mut ks, c, &mut rows);
        Genuine { current: rows.0.into_values().collect(), history, records }
    })
}

#[derive(Arbitrary, Debug)]
enum RowEdit {
    Keep(u8),
    Flip {
        row: u8,
        bit: u16,
    },
    Version {
        row: u8,
        version: u64,
    },
    Rename {
        row: u8,
        id_of: u8,
    },
    Truncate {
        row: u8,
        len: u16,
    },
    /// An older genuine version of a row.
    Old(u8),
    Invent {
        id: String,
        version: u64,
        body: Vec<u8>,
    },
    Forget(u8),
}

/// Open a keystore on rows derived from genuine ones by `data`.
pub fn rows(data: &[u8]) {
    let g = genuine();
    let mut u = Unstructured::new(data);
    let Ok(edits) = u.arbitrary::<Vec<RowEdit>>() else { return };
    if std::env::var_os("KEYSTATE_FUZZ_DEBUG").is_some() {
        eprintln!("{edits:#?}");
    }
    let header_body: Option<Vec<u8>> = u.arbitrary().ok().flatten();
    let pick = |i: u8, from: &[Row]| from[i as usize % from.len()].clone();
    let mut rows: Vec<Row> = Vec::new();
    let mut deleted = Vec::new();
    for edit in edits {
        match edit {
            RowEdit::Keep(i) => rows.push(pick(i, &g.current)),
            RowEdit::Flip { row, bit } => {
                let mut r = pick(row, &g.current);
                if !r.body.is_empty() {
                    let bit = bit as usize % (r.body.len() * 8);
                    r.body[bit / 8] ^= 1 << (bit % 8);
                }
                rows.push(r);
            }
            RowEdit::Version { row, version } => rows.push(Row { version, ..pick(row, &g.current) }),
            RowEdit::Rename { row, id_of } => {
                rows.push(Row { id: pick(id_of, &g.current).id, ..pick(row, &g.current) })
            }
            RowEdit::Truncate { row, len } => {
                let mut r = pick(row, &g.current);
                r.body.truncate(len as usize % (r.body.len() + 1));
                rows.push(r);
            }
            RowEdit::Old(i) => rows.push(pick(i, &g.history)),
            RowEdit::Invent { id, version, body } => rows.push(Row { id, version, body }),
            RowEdit::Forget(i) => deleted.push(pick(i, &g.current).id),
        }
    }
    let mut header = g.current.iter().find(|r| r.id == HEADER_ID).unwrap().clone();
    if let Some(body) = header_body {
        header.body = body;
    }
    let mut ks = match Keystore::open(Box::new(FuzzEnv::default()), &header, &raw(1), &raw(2)) {
        Ok(ks) => ks,
        Err(e) => {
            assert!(matches!(e, Error::Integrity(_) | Error::WrongPassphrase(_)), "opening a bad header gave {e}");
            return;
        }
    };
    let touched_header = rows.iter().any(|r| r.id == HEADER_ID);
    let faults = match ks.load(&rows, &deleted) {
        Ok(faults) => faults,
        Err(e) => {
            assert!(touched_header, "load failed without a header row: {e}");
            return;
        }
    };
    for f in &faults {
        assert!(rows.iter().any(|r| r.id == f.id), "fault for a row never given: {f:?}");
    }
    check_loaded(&ks, Some(g));
    // The same rows as a catch-up onto the genuine keystore, which is where
    // another process's commits (or rolled-back rows) arrive.
    let genuine_header = g.current.iter().find(|r| r.id == HEADER_ID).unwrap();
    let mut caught_up = Keystore::open(Box::new(FuzzEnv::default()), genuine_header, &raw(1), &raw(2)).unwrap();
    caught_up.load(&g.current, &[]).unwrap();
    if caught_up.load(&rows, &deleted).is_ok() {
        check_loaded(&caught_up, None);
    }
    if std::env::var_os("KEYSTATE_FUZZ_DEBUG").is_some() {
        eprintln!("faults {faults:#?}\ngroups {:#?}\nkeys {:#?}", ks.groups(), ks.keys(None, None));
    }
    exercise(&mut ks);
    check_loaded(&ks, None);
}

/// The one-active rule holds and, right after loading (`genuine` given),
/// every loaded record is one that was genuinely sealed.
fn check_loaded(ks: &Keystore, genuine: Option<&Genuine>) {
    ks.assert_indexes_match_records();
    for group in ks.groups() {
        let active = ks.keys(Some(&group.name), Some(KeyState::Active)).unwrap();
        assert!(active.len() <= 1, "group {} has {} active keys", group.name, active.len());
        assert_eq!(
            group.active_key,
            active.first().map(|k| k.name.clone()),
            "group {} (after {}): its active key index disagrees with its keys",
            group.name,
            if genuine.is_some() { "loading" } else { "operations" }
        );
        let Some(g) = genuine else { continue };
        let known = g.records.iter().any(|r| {
            r.starts_with(&format!(
                "GroupInfo {{ tag: {:?}, name: {:?}, cipher: {:?}",
                group.tag, group.name, group.cipher
            )) && r.contains(&format!(
                "description: {:?}, created: {}, modified: {}, ",
                group.description, group.created, group.modified
            ))
        });
        assert!(known, "a group record that was never sealed loaded: {group:?}");
    }
    // Every listed group and key is the one its name leads to.
    for group in ks.groups() {
        assert_eq!(ks.group(&group.name).unwrap().tag, group.tag, "group {:?} is not found by its name", group.name);
        for key in ks.keys(Some(&group.name), None).unwrap() {
            let found = ks.key(&group.name, &key.name).unwrap();
            assert_eq!(found.tag, key.tag, "two keys named {:?} in group {:?}", key.name, group.name);
        }
    }
    let Some(g) = genuine else { return };
    for key in ks.keys(None, None).unwrap() {
        assert!(g.records.contains(&key_record(key.clone())), "a key record that was never sealed loaded: {key:?}");
    }
}

/// A key's record as sealed: its group shows by name only when the group's
/// row loaded too (and by the name of that row's version), so leave it out.
fn key_record(key: crate::keystore::KeyInfo) -> String {
    format!("{:?}", crate::keystore::KeyInfo { group: String::new(), ..key })
}

/// Every operation on a keystore loaded from hostile rows returns, without
/// panicking, and mutations keep the one-active rule.
fn exercise(ks: &mut Keystore) {
    let groups: Vec<String> = ks.groups().into_iter().map(|g| g.name).collect();
    for group in &groups {
        if let Ok(ct) = ks.encrypt(group, b"x", b"") {
            assert_eq!(ks.decrypt(&ct, b"").unwrap(), b"x");
        }
        for key in ks.keys(Some(group), None).unwrap() {
            for state in KeyState::ALL {
                let _ = ks.set_state(group, &key.name, state);
            }
        }
        let _ = ks.delete_group(group);
    }
    let _ = ks.create_group("new", Cipher::Aes256Gcm, "");
    let _ = ks.stats();
}

// ---- operation sequences ------------------------------------------------------------

const NAMES: [&str; 8] = ["a", "b", "c", "ünï", "", " x", "x\u{7}", "d"];
const DESCRIPTIONS: [&str; 4] = ["", "note", "two\nlines\tand tab", "bell\u{7}"];

fn name(i: u8) -> String {
    match i as usize % (NAMES.len() + 1) {
        n if n < NAMES.len() => NAMES[n].to_string(),
        _ => "n".repeat(256),
    }
}

fn description(i: u8) -> String {
    match i as usize % (DESCRIPTIONS.len() + 1) {
        n if n < DESCRIPTIONS.len() => DESCRIPTIONS[n].to_string(),
        _ => "d".repeat(4097),
    }
}

fn state(i: u8) -> KeyState {
    KeyState::ALL[i as usize % 5]
}

#[derive(Arbitrary, Debug)]
enum FuzzOp {
    CreateGroup { name: u8, aes128: bool, description: u8 },
    ModifyGroup { name: u8, new_name: Option<u8>, description: Option<u8> },
    DeleteGroup { name: u8 },
    CreateKey { group: u8, name: u8, state: u8, passphrase: bool },
    SetState { group: u8, name: u8, state: u8 },
    ModifyKey { group: u8, name: u8, new_name: Option<u8>, description: Option<u8> },
    DeleteKey { group: u8, name: u8 },
    Encrypt { group: u8, len: u16 },
    Decrypt { which: u8, flip: Option<u16> },
    Quiesce(bool),
    Reopen,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelKey {
    tag: Tag,
    state: KeyState,
    description: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelGroup {
    cipher: Cipher,
    description: String,
    keys: BTreeMap<String, ModelKey>,
}

/// The rule book, written out plainly.
#[derive(Default)]
struct Model {
    quiesced: bool,
    groups: BTreeMap<String, ModelGroup>,
}

fn adjacent(from: KeyState, to: KeyState) -> bool {
    use KeyState::*;
    matches!(
        (from, to),
        (Prelive, Active)
            | (Active, Inactive)
            | (Inactive, Active)
            | (Inactive, Deprecated)
            | (Deprecated, Inactive)
            | (Deprecated, Terminated)
            | (Terminated, Deprecated)
    )
}

fn name_ok(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && !n.chars().any(char::is_control) && n.trim() == n
}

fn description_ok(d: &str) -> bool {
    d.len() <= 4096 && !d.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

type Expect = Result<(), &'static str>;

impl Model {
    fn writable(&self) -> Expect {
        if self.quiesced { Err("quiesced") } else { Ok(()) }
    }

    fn group(&self, g: &str) -> Result<&ModelGroup, &'static str> {
        self.groups.get(g).ok_or("not-found")
    }

    fn key(&self, g: &str, k: &str) -> Result<&ModelKey, &'static str> {
        self.group(g)?.keys.get(k).ok_or("not-found")
    }

    fn key_by_tag(&self, tag: &Tag) -> Option<&ModelKey> {
        self.groups.values().flat_map(|g| g.keys.values()).find(|k| &k.tag == tag)
    }

    fn active(&self, g: &str) -> Option<&ModelKey> {
        self.groups.get(g)?.keys.values().find(|k| k.state == KeyState::Active)
    }

    fn bump(&mut self, g: &str) {
        for k in self.groups.get_mut(g).unwrap().keys.values_mut() {
            if k.state == KeyState::Active {
                k.state = KeyState::Inactive;
            }
        }
    }
}

fn kind<T>(r: &crate::types::Result<T>) -> Expect {
    r.as_ref().map(|_| ()).map_err(|e| e.kind())
}

/// Run an arbitrary operation sequence on the model and the keystore.
pub fn ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(ops) = u.arbitrary::<Vec<FuzzOp>>() else { return };
    let env = FuzzEnv::default();
    let (mut ks, changes) = Keystore::create(Box::new(env.clone()), &raw(1), None, &raw(2), None).unwrap();
    let mut rows = Rows::default();
    rows.persist(changes);
    let mut m = Model::default();
    // (ciphertext, key tag, plaintext, associated data)
    type Sealed = (Vec<u8>, Tag, Vec<u8>, Vec<u8>);
    let mut ciphertexts: Vec<Sealed> = Vec::new();
    // Argon2 is slow: at most one pass phrase key per input.
    let mut passphrases_left = 1;
    for op in ops.into_iter().take(200) {
        match op {
            FuzzOp::CreateGroup { name: n, aes128, description: d } => {
                let (n, d) = (name(n), description(d));
                let cipher = if aes128 { Cipher::Aes128Gcm } else { Cipher::Aes256Gcm };
                let expect = m.writable().and_then(|_| {
                    if !name_ok(&n) || !description_ok(&d) {
                        Err("invalid-argument")
                    } else if m.groups.contains_key(&n) {
                        Err("already-exists")
                    } else {
                        Ok(())
                    }
                });
                let r = ks.create_group(&n, cipher, &d);
                assert_eq!(kind(&r), expect, "create group {n:?}");
                if let Ok((info, c)) = r {
                    assert_eq!((info.name.as_str(), info.cipher, info.active_key), (n.as_str(), cipher, None));
                    rows.persist(c);
                    m.groups.insert(n, ModelGroup { cipher, description: d, keys: BTreeMap::new() });
                }
            }
            FuzzOp::ModifyGroup { name: n, new_name, description: d } => {
                let (n, new_name, d) = (name(n), new_name.map(name), d.map(description));
                let expect = m.writable().and_then(|_| m.group(&n).map(|_| ())).and_then(|_| {
                    match new_name.as_ref().filter(|nn| **nn != n) {
                        Some(nn) if !name_ok(nn) => return Err("invalid-argument"),
                        Some(nn) if m.groups.contains_key(nn) => return Err("already-exists"),
                        _ => {}
                    }
                    if d.as_ref().is_some_and(|d| !description_ok(d)) { Err("invalid-argument") } else { Ok(()) }
                });
                let r = ks.modify_group(&n, new_name.as_deref(), d.as_deref());
                assert_eq!(kind(&r), expect, "modify group {n:?}");
                if let Ok((info, c)) = r {
                    rows.persist(c);
                    let mut group = m.groups.remove(&n).unwrap();
                    if let Some(d) = d {
                        group.description = d;
                    }
                    let new = new_name.unwrap_or(n);
                    assert_eq!((&info.name, &info.description), (&new, &group.description));
                    m.groups.insert(new, group);
                }
            }
            FuzzOp::DeleteGroup { name: n } => {
                let n = name(n);
                let expect = m
                    .writable()
                    .and_then(|_| m.group(&n))
                    .and_then(|g| if g.keys.is_empty() { Ok(()) } else { Err("not-deletable") });
                let r = ks.delete_group(&n);
                assert_eq!(kind(&r), expect, "delete group {n:?}");
                if let Ok(c) = r {
                    rows.persist(c);
                    m.groups.remove(&n);
                }
            }
            FuzzOp::CreateKey { group, name: n, state: s, passphrase } => {
                let (g, n, s) = (name(group), name(n), state(s));
                let passphrase = (passphrase && passphrases_left > 0).then(|| format!("pass {n}"));
                let expect = m.writable().and_then(|_| m.group(&g)).and_then(|group| {
                    if !name_ok(&n) {
                        Err("invalid-argument")
                    } else if !matches!(s, KeyState::Prelive | KeyState::Active) {
                        Err("invalid-transition")
                    } else if group.keys.contains_key(&n) {
                        Err("already-exists")
                    } else {
                        Ok(())
                    }
                });
                if expect.is_ok() && passphrase.is_some() {
                    passphrases_left -= 1;
                }
                let r = ks.create_key(&g, &n, s, passphrase.as_deref(), "");
                assert_eq!(kind(&r), expect, "create key {g:?}/{n:?} as {s}");
                if let Ok((info, c)) = r {
                    assert_eq!((info.state, info.recoverable), (s, passphrase.is_some()));
                    assert!(m.key_by_tag(&info.tag).is_none(), "a new key reuses tag {}", info.tag);
                    rows.persist(c);
                    if s == KeyState::Active {
                        m.bump(&g);
                    }
                    let key = ModelKey { tag: info.tag, state: s, description: String::new() };
                    m.groups.get_mut(&g).unwrap().keys.insert(n, key);
                }
            }
            FuzzOp::SetState { group, name: n, state: s } => {
                let (g, n, s) = (name(group), name(n), state(s));
                let expect = m.writable().and_then(|_| m.key(&g, &n)).and_then(|k| {
                    if k.state == s || adjacent(k.state, s) { Ok(()) } else { Err("invalid-transition") }
                });
                let r = ks.set_state(&g, &n, s);
                assert_eq!(kind(&r), expect, "set {g:?}/{n:?} to {s}");
                if let Ok((info, c)) = r {
                    assert_eq!(info.state, s);
                    rows.persist(c);
                    if s == KeyState::Active {
                        m.bump(&g);
                    }
                    m.groups.get_mut(&g).unwrap().keys.get_mut(&n).unwrap().state = s;
                }
            }
            FuzzOp::ModifyKey { group, name: n, new_name, description: d } => {
                let (g, n, new_name, d) = (name(group), name(n), new_name.map(name), d.map(description));
                let expect = m.writable().and_then(|_| m.key(&g, &n).map(|_| ())).and_then(|_| {
                    match new_name.as_ref().filter(|nn| **nn != n) {
                        Some(nn) if !name_ok(nn) => return Err("invalid-argument"),
                        Some(nn) if m.groups[&g].keys.contains_key(nn) => return Err("already-exists"),
                        _ => {}
                    }
                    if d.as_ref().is_some_and(|d| !description_ok(d)) { Err("invalid-argument") } else { Ok(()) }
                });
                let r = ks.modify_key(&g, &n, new_name.as_deref(), d.as_deref());
                assert_eq!(kind(&r), expect, "modify key {g:?}/{n:?}");
                if let Ok((info, c)) = r {
                    rows.persist(c);
                    let keys = &mut m.groups.get_mut(&g).unwrap().keys;
                    let mut key = keys.remove(&n).unwrap();
                    if let Some(d) = d {
                        key.description = d;
                    }
                    let new = new_name.unwrap_or(n);
                    assert_eq!((&info.name, &info.description, info.tag), (&new, &key.description, key.tag));
                    keys.insert(new, key);
                }
            }
            FuzzOp::DeleteKey { group, name: n } => {
                let (g, n) = (name(group), name(n));
                let expect = m.writable().and_then(|_| m.key(&g, &n)).and_then(|k| {
                    if matches!(k.state, KeyState::Prelive | KeyState::Terminated) {
                        Ok(())
                    } else {
                        Err("not-deletable")
                    }
                });
                let r = ks.delete_key(&g, &n);
                assert_eq!(kind(&r), expect, "delete key {g:?}/{n:?}");
                if let Ok(c) = r {
                    rows.persist(c);
                    m.groups.get_mut(&g).unwrap().keys.remove(&n);
                }
            }
            FuzzOp::Encrypt { group, len } => {
                let g = name(group);
                let plaintext = vec![len as u8; len as usize % 300];
                let expect = m.group(&g).and_then(|_| m.active(&g).map(|_| ()).ok_or("key-unusable"));
                let r = ks.encrypt(&g, &plaintext, g.as_bytes());
                assert_eq!(kind(&r), expect, "encrypt in {g:?}");
                if let Ok(ct) = r {
                    let header = format::Header::parse(&ct).unwrap();
                    assert_eq!(header.key_tag, m.active(&g).unwrap().tag, "encrypted with a key that is not active");
                    assert_eq!(header.cipher, m.groups[&g].cipher);
                    // The group name is the AAD (rename-proof: it is kept with the ciphertext).
                    ciphertexts.push((ct, header.key_tag, plaintext, g.into_bytes()));
                }
            }
            FuzzOp::Decrypt { which, flip } => {
                if ciphertexts.is_empty() {
                    continue;
                }
                let i = which as usize % ciphertexts.len();
                let (ct, tag, plaintext, aad) = &ciphertexts[i];
                let mut ct = ct.clone();
                if let Some(bit) = flip {
                    let bit = bit as usize % (ct.len() * 8);
                    ct[bit / 8] ^= 1 << (bit % 8);
                }
                let r = ks.decrypt(&ct, aad);
                if flip.is_some() {
                    assert!(r.is_err(), "a tampered ciphertext decrypted");
                    continue;
                }
                let expect = match m.key_by_tag(tag) {
                    None => Err("not-found"),
                    Some(k) if matches!(k.state, KeyState::Active | KeyState::Inactive) => Ok(()),
                    Some(_) => Err("key-unusable"),
                };
                assert_eq!(kind(&r), expect, "decrypt with {tag}");
                if let Ok(p) = r {
                    assert_eq!(&p, plaintext);
                }
            }
            FuzzOp::Quiesce(on) => {
                let r = if on { ks.quiesce() } else { ks.unquiesce() };
                rows.persist(r.expect("quiesce"));
                m.quiesced = on;
            }
            FuzzOp::Reopen => ks = rows.open(&env),
        }
        compare(&ks, &m);
    }
    compare(&rows.open(&env), &m);
}

/// The keystore holds exactly what the model says.
fn compare(ks: &Keystore, m: &Model) {
    assert_eq!(ks.stats().quiesced, m.quiesced);
    let groups = ks.groups();
    assert_eq!(groups.iter().map(|g| &g.name).collect::<Vec<_>>(), m.groups.keys().collect::<Vec<_>>());
    for g in groups {
        let mg = &m.groups[&g.name];
        assert_eq!((g.cipher, &g.description), (mg.cipher, &mg.description), "group {:?}", g.name);
        let active = mg.keys.iter().find(|(_, k)| k.state == KeyState::Active).map(|(n, _)| n.clone());
        assert_eq!(g.active_key, active, "active key of {:?}", g.name);
        let keys: BTreeMap<String, ModelKey> = ks
            .keys(Some(&g.name), None)
            .unwrap()
            .into_iter()
            .map(|k| (k.name, ModelKey { tag: k.tag, state: k.state, description: k.description }))
            .collect();
        assert_eq!(&keys, &mg.keys, "keys of {:?}", g.name);
    }
}

/// The committed seed corpus and every input that once failed, replayed
/// through the entry points on every `cargo test`.
#[cfg(test)]
mod replay {
    use std::path::Path;

    fn replay(target: &str, run: fn(&[u8])) {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut count = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{} fails again", path.display());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for fuzz target {target}");
    }

    /// The seed that reaches past authentication: a genuine ciphertext under
    /// the fuzz key (and a check that the format's output has not drifted).
    #[test]
    fn the_sealed_seed_is_what_seal_makes() {
        use crate::types::{Cipher, Tag};
        let sealed =
            crate::format::seal(Cipher::Aes256Gcm, &super::FUZZ_KEY, Tag([7; 16]), [9; 32], 64, b"aad", &[0x61; 150])
                .unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/data_format/sealed-aes256");
        if std::env::var_os("KEYSTATE_REGENERATE_VECTORS").is_some() {
            std::fs::write(&path, &sealed).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), sealed);
    }

    #[test]
    fn data_format_corpus() {
        replay("data_format", super::data_format);
    }

    #[test]
    fn rows_corpus() {
        replay("rows", super::rows);
    }

    #[test]
    fn ops_corpus() {
        replay("ops", super::ops);
    }
}
