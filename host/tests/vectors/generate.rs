//! Makes the conformance vectors. Every script runs live against the real
//! component (`keystate::raw`) with the deterministic host environment, and
//! each call is recorded with exactly what it returned. Arguments that depend
//! on earlier results (a tag, a ciphertext, a tampered copy of it, a stored
//! row) are written out literally, so a runner needs no references: it calls,
//! and compares.
//!
//! The generator also checks that each call did what the script means it to
//! (`ok`, `fails`): a component that changed its behaviour stops the
//! generator instead of writing vectors that enshrine the change.

use std::collections::BTreeMap;

use keystate::raw::Instance;
use serde_json::{Value, json};

use super::env_from_json;

/// The files written, in the order `all` returns them.
pub const FILES: [&str; 7] =
    ["policy.json", "lifecycle.json", "passphrase.json", "data.json", "tamper.json", "rows.json", "admin.json"];

const CLOCK_START: u64 = 1_700_000_000_000;
const CLOCK_STEP: u64 = 1000;
const HMK: u8 = 0x11;
const KPK: u8 = 0x22;
const STATES: [&str; 5] = ["prelive", "active", "inactive", "deprecated", "terminated"];

/// Every vector file, by name.
pub fn all() -> Vec<(&'static str, Value)> {
    let out = vec![
        ("policy.json", policy()),
        ("lifecycle.json", lifecycle()),
        ("passphrase.json", passphrase()),
        ("data.json", data()),
        ("tamper.json", tamper()),
        ("rows.json", rows()),
        ("admin.json", admin()),
    ];
    assert_eq!(out.iter().map(|(f, _)| *f).collect::<Vec<_>>(), FILES);
    out
}

fn file(about: &str, scripts: Vec<Script>) -> Value {
    json!({
        "about": about,
        "format": 1,
        "scripts": scripts.into_iter().map(Script::done).collect::<Vec<_>>(),
    })
}

/// One script: a fresh instance with its own deterministic environment.
struct Script {
    name: String,
    about: String,
    env: Value,
    steps: Vec<Value>,
    instance: Instance,
}

impl Script {
    fn new(name: &str, about: &str) -> Script {
        let seed = format!("keystate vectors: {name}");
        let env = json!({ "clock-start": CLOCK_START, "clock-step": CLOCK_STEP, "seed": hex::encode(seed) });
        let instance = Instance::new(env_from_json(&env)).expect("instantiate the component");
        Script { name: name.into(), about: about.into(), env, steps: Vec::new(), instance }
    }

    /// Call, record, return what the component returned.
    fn call(&mut self, note: &str, call: &str, args: Value) -> Value {
        let expect = self.instance.call(call, &args).unwrap_or_else(|e| panic!("{}: {call} {args}: {e}", self.name));
        let mut step = json!({ "call": call, "args": args, "expect": expect });
        if !note.is_empty() {
            step["note"] = json!(note);
        }
        self.steps.push(step);
        expect
    }

    /// A call that must succeed; returns its `ok` value.
    fn ok(&mut self, note: &str, call: &str, args: Value) -> Value {
        let r = self.call(note, call, args);
        match r.get("ok") {
            Some(v) if r.as_object().is_some_and(|o| o.len() == 1) => v.clone(),
            _ => panic!("{}: {call} ({note}) was meant to succeed, got {r}", self.name),
        }
    }

    /// A call that must fail with `kind`.
    fn fails(&mut self, kind: &str, note: &str, call: &str, args: Value) {
        let r = self.call(note, call, args);
        assert!(
            r["error"].get(kind).is_some(),
            "{}: {call} ({note}) was meant to fail with {kind}, got {r}",
            self.name
        );
    }

    fn done(self) -> Value {
        json!({ "name": self.name, "about": self.about, "env": self.env, "steps": self.steps })
    }

    // ---- common steps --------------------------------------------------------------

    /// A new keystore with raw HMK and KPK (no Argon2id) and fixed labels.
    fn create_keystore(&mut self, hmk: u8, kpk: u8) -> Value {
        self.ok("a new keystore: raw HMK and KPK", "keystore.create", create_args(hmk, kpk))
    }

    fn create_group(&mut self, name: &str, cipher: &str) -> Value {
        self.ok(
            "",
            "keystore.create-group",
            json!({ "name": name, "cipher": cipher, "description": format!("group {name}") }),
        )
    }

    /// Returns the key-info.
    fn create_key(&mut self, group: &str, name: &str, state: &str, passphrase: Option<&str>) -> Value {
        let args = json!({ "group": group, "name": name, "state": state, "passphrase": passphrase, "description": "" });
        self.ok("", "keystore.create-key", args)[0].clone()
    }

    fn set_state(&mut self, note: &str, group: &str, name: &str, state: &str) -> Value {
        self.ok(note, "keystore.set-state", json!({ "group": group, "name": name, "state": state }))[0].clone()
    }

    fn encrypt(&mut self, note: &str, group: &str, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let args = json!({ "group": group, "plaintext": hex::encode(plaintext), "aad": hex::encode(aad) });
        unhex(&self.ok(note, "keystore.encrypt", args))
    }

    fn decrypt_ok(&mut self, note: &str, ciphertext: &[u8], aad: &[u8], plaintext: &[u8]) {
        let got = self.ok(note, "keystore.decrypt", decrypt_args(ciphertext, aad));
        assert_eq!(unhex(&got), plaintext, "{}: {note}: decrypted to something else", self.name);
    }

    fn decrypt_fails(&mut self, kind: &str, note: &str, ciphertext: &[u8], aad: &[u8]) {
        self.fails(kind, note, "keystore.decrypt", decrypt_args(ciphertext, aad));
    }

    /// Streaming encryption in `pieces`; returns the whole ciphertext.
    fn stream_encrypt(&mut self, group: &str, aad: &[u8], chunk_size: u32, pieces: &[&[u8]]) -> Vec<u8> {
        let handle = self.ok(
            &format!("streaming encryption, {chunk_size}-byte chunks"),
            "keystore.begin-encrypt",
            json!({ "group": group, "aad": hex::encode(aad), "chunk-size": chunk_size }),
        );
        let header = unhex(&self.call("its header", "keystore.[method]encryptor.header", json!({ "self": handle })));
        let mut out = Vec::new();
        for piece in pieces {
            let args = json!({ "self": handle, "plaintext": hex::encode(piece) });
            out.extend(unhex(&self.ok("", "keystore.[method]encryptor.update", args)));
        }
        out.extend(unhex(&self.ok("", "keystore.[method]encryptor.finish", json!({ "self": handle }))));
        assert_eq!(out[..60], header, "the encryptor writes the header it reports");
        out
    }
}

fn create_args(hmk: u8, kpk: u8) -> Value {
    json!({
        "hmk": { "raw": hex::encode([hmk; 32]) },
        "hmk-id": "hmk-vectors",
        "kpk": { "raw": hex::encode([kpk; 32]) },
        "kpk-id": "kpk-vectors",
    })
}

fn decrypt_args(ciphertext: &[u8], aad: &[u8]) -> Value {
    json!({ "ciphertext": hex::encode(ciphertext), "aad": hex::encode(aad) })
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"))).expect("hex")
}

/// `b"keystate test vector: "` repeated and cut to `len` bytes (docs/format.md).
fn text(len: usize) -> Vec<u8> {
    b"keystate test vector: ".iter().copied().cycle().take(len).collect()
}

fn with_byte(data: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at] = value;
    out
}

fn flip(data: &[u8], at: usize) -> Vec<u8> {
    with_byte(data, at, data[at] ^ 0x01)
}

// ---- policy.json ----------------------------------------------------------------------

fn policy() -> Value {
    let mut t = Script::new("transition-table", "policy.can-transition for every ordered pair of states");
    for from in STATES {
        for to in STATES {
            t.call("", "policy.can-transition", json!({ "from-state": from, "to-state": to }));
        }
    }
    let mut u = Script::new("usage-table", "policy.allowed-operations for every state");
    for state in STATES {
        u.call("", "policy.allowed-operations", json!({ "state": state }));
    }
    file("The lifecycle rules as pure functions: the transition table and the usage table.", vec![t, u])
}

// ---- lifecycle.json -------------------------------------------------------------------

fn lifecycle() -> Value {
    file(
        "Operation scripts on one keystore: create, activate, bump, deprecate, delete, quiesce; and every \
         (state, state) and (state, operation) pair through the keystore.",
        vec![rule_book(), every_transition(), every_use()],
    )
}

fn rule_book() -> Script {
    let mut s = Script::new("rule-book", "A key's life in one group: one active key, bumping, deletion rules");
    s.create_keystore(HMK, KPK);
    s.create_group("backups", "aes-256-gcm");
    s.create_key("backups", "k1", "prelive", None);
    s.fails(
        "key-unusable",
        "no active key to encrypt with",
        "keystore.encrypt",
        json!({ "group": "backups", "plaintext": "00", "aad": "" }),
    );
    s.fails(
        "invalid-transition",
        "keys are born prelive or active only",
        "keystore.create-key",
        json!({ "group": "backups", "name": "k0", "state": "inactive", "passphrase": null, "description": "" }),
    );
    s.fails(
        "already-exists",
        "names are unique in a group",
        "keystore.create-key",
        json!({ "group": "backups", "name": "k1", "state": "prelive", "passphrase": null, "description": "" }),
    );
    s.set_state("activate", "backups", "k1", "active");
    let sealed = s.encrypt("k1 encrypts", "backups", b"image 1", b"img-1");
    s.ok(
        "a second active key bumps k1 to inactive",
        "keystore.create-key",
        json!({ "group": "backups", "name": "k2", "state": "active", "passphrase": null, "description": "second" }),
    );
    let k1 = s.ok("k1 was bumped", "keystore.key", json!({ "group": "backups", "name": "k1" }));
    assert_eq!(k1["state"], "inactive");
    s.ok("the group names its active key", "keystore.group", json!({ "name": "backups" }));
    s.fails(
        "invalid-transition",
        "one adjacent step at a time",
        "keystore.set-state",
        json!({ "group": "backups", "name": "k2", "state": "deprecated" }),
    );
    s.fails(
        "invalid-transition",
        "nothing returns to prelive",
        "keystore.set-state",
        json!({ "group": "backups", "name": "k2", "state": "prelive" }),
    );
    s.ok(
        "same state: a no-op with an empty change set",
        "keystore.set-state",
        json!({ "group": "backups", "name": "k2", "state": "active" }),
    );
    s.decrypt_ok("an inactive key still decrypts", &sealed, b"img-1", b"image 1");
    s.set_state("suspected compromise", "backups", "k1", "deprecated");
    s.decrypt_fails("key-unusable", "a deprecated key refuses every use", &sealed, b"img-1");
    s.fails(
        "not-deletable",
        "only prelive and terminated keys may be deleted",
        "keystore.delete-key",
        json!({ "group": "backups", "name": "k1" }),
    );
    s.set_state("", "backups", "k1", "terminated");
    s.ok("delete the terminated key", "keystore.delete-key", json!({ "group": "backups", "name": "k1" }));
    s.fails("not-found", "", "keystore.key", json!({ "group": "backups", "name": "k1" }));
    s.decrypt_fails("not-found", "data whose key was deleted", &sealed, b"img-1");
    s.fails(
        "not-deletable",
        "only an empty group may be deleted",
        "keystore.delete-group",
        json!({ "name": "backups" }),
    );
    s.ok(
        "rename and describe",
        "keystore.modify-key",
        json!({ "group": "backups", "name": "k2", "new-name": "k2-renamed", "description": "rotated in" }),
    );
    s.ok(
        "a key by its tag",
        "keystore.key-by-tag",
        json!({ "tag": s.steps.last().unwrap()["expect"]["ok"][0]["tag"].clone() }),
    );
    s.ok("", "keystore.quiesce", json!({}));
    s.fails(
        "quiesced",
        "a quiesced keystore refuses changes",
        "keystore.create-group",
        json!({ "name": "archive", "cipher": "aes-128-gcm", "description": "" }),
    );
    s.encrypt("reads and data still work while quiesced", "backups", b"during quiesce", b"");
    s.ok("", "keystore.unquiesce", json!({}));
    s.create_group("archive", "aes-128-gcm");
    s.call("", "keystore.keys", json!({ "group": null, "state": null }));
    s.call("", "keystore.groups", json!({}));
    s.call("", "keystore.stats", json!({}));
    s
}

/// The moves that walk a new prelive key to `state`.
fn path_to(state: &str) -> &'static [&'static str] {
    match state {
        "prelive" => &[],
        "active" => &["active"],
        "inactive" => &["active", "inactive"],
        "deprecated" => &["active", "inactive", "deprecated"],
        "terminated" => &["active", "inactive", "deprecated", "terminated"],
        _ => unreachable!(),
    }
}

fn every_transition() -> Script {
    let mut s = Script::new("every-transition", "set-state for every (from, to) pair, one group per pair");
    s.create_keystore(HMK, KPK);
    for from in STATES {
        for to in STATES {
            let group = format!("{from}-{to}");
            s.create_group(&group, "aes-256-gcm");
            s.create_key(&group, "k", "prelive", None);
            for step in path_to(from) {
                s.set_state("", &group, "k", step);
            }
            let r = s.call(
                &format!("{from} -> {to}"),
                "keystore.set-state",
                json!({ "group": group, "name": "k", "state": to }),
            );
            let allowed = from == to
                || matches!(
                    (from, to),
                    ("prelive", "active")
                        | ("active", "inactive")
                        | ("inactive", "active" | "deprecated")
                        | ("deprecated", "inactive" | "terminated")
                        | ("terminated", "deprecated")
                );
            assert_eq!(r.get("ok").is_some(), allowed, "{from} -> {to}: {r}");
            if !allowed {
                assert!(r["error"].get("invalid-transition").is_some(), "{r}");
            }
        }
    }
    s
}

fn every_use() -> Script {
    let mut s = Script::new("every-use", "encrypt, decrypt and delete with a key in each state");
    s.create_keystore(HMK, KPK);
    for state in STATES {
        let group = format!("uses-{state}");
        s.create_group(&group, "aes-256-gcm");
        s.create_key(&group, "k", "prelive", None);
        let mut sealed = None;
        for step in path_to(state) {
            s.set_state("", &group, "k", step);
            if *step == "active" {
                sealed = Some(s.encrypt("made while the key was active", &group, b"payload", b""));
            }
        }
        let enc = s.call(
            &format!("encrypt with the group's key in {state}"),
            "keystore.encrypt",
            json!({ "group": group, "plaintext": hex::encode(b"more"), "aad": "" }),
        );
        assert_eq!(enc.get("ok").is_some(), state == "active", "{state}: {enc}");
        if let Some(sealed) = sealed {
            let dec = s.call(&format!("decrypt in {state}"), "keystore.decrypt", decrypt_args(&sealed, b""));
            assert_eq!(dec.get("ok").is_some(), matches!(state, "active" | "inactive"), "{state}: {dec}");
        }
        let del = s.call(&format!("delete in {state}"), "keystore.delete-key", json!({ "group": group, "name": "k" }));
        assert_eq!(del.get("ok").is_some(), matches!(state, "prelive" | "terminated"), "{state}: {del}");
    }
    s
}

// ---- passphrase.json ------------------------------------------------------------------

const PHRASE: &str = "tape 7 offsite";
const PHRASE_128: &str = "correct horse battery staple";

fn passphrase() -> Value {
    // Argon2id runs 4 times in this file (~0.1 s each): two keys made, one
    // wrong pass phrase, one recovery. Keep it that way.
    let mut s = Script::new("create-and-recover", "Pass phrase keys: tags, deletion, recovery");
    s.create_keystore(HMK, KPK);
    s.create_group("weekly", "aes-256-gcm");
    let key = s.create_key("weekly", "w1", "active", Some(PHRASE));
    assert_eq!(key["recoverable"], true);
    let tag = key["tag"].as_str().unwrap().to_string();
    let sealed = s.encrypt("", "weekly", b"weekly backup", b"img-2");
    s.create_group("small", "aes-128-gcm");
    s.create_key("small", "s1", "active", Some(PHRASE_128));
    s.encrypt("a pass phrase key of an AES-128-GCM group", "small", b"small backup", b"");
    for state in ["inactive", "deprecated", "terminated"] {
        s.set_state("", "weekly", "w1", state);
    }
    s.ok("", "keystore.delete-key", json!({ "group": "weekly", "name": "w1" }));
    s.decrypt_fails("not-found", "its key is gone", &sealed, b"img-2");
    s.fails(
        "invalid-transition",
        "nothing is recovered into prelive",
        "keystore.recover-key",
        json!({ "group": "weekly", "name": "w1", "tag": tag, "passphrase": PHRASE, "state": "prelive" }),
    );
    s.fails("invalid-argument", "a tag is 32 lowercase hex digits", "keystore.recover-key",
        json!({ "group": "weekly", "name": "w1", "tag": tag.to_uppercase(), "passphrase": PHRASE, "state": "inactive" }));
    s.fails(
        "wrong-passphrase",
        "",
        "keystore.recover-key",
        json!({ "group": "weekly", "name": "w1", "tag": tag, "passphrase": "tape 8 offsite", "state": "inactive" }),
    );
    let back = s.ok(
        "tag and pass phrase re-create the key",
        "keystore.recover-key",
        json!({ "group": "weekly", "name": "w1", "tag": tag, "passphrase": PHRASE, "state": "inactive" }),
    );
    assert_eq!(back[0]["tag"], tag.as_str());
    s.decrypt_ok("", &sealed, b"img-2", b"weekly backup");
    s.fails(
        "already-exists",
        "the key is back",
        "keystore.recover-key",
        json!({ "group": "weekly", "name": "w1", "tag": tag, "passphrase": PHRASE, "state": "inactive" }),
    );

    let mut o = Script::new("recover-elsewhere", "The same pass phrase key in another keystore decrypts the same data");
    o.create_keystore(0x33, 0x44);
    o.create_group("restored", "aes-256-gcm");
    let again = o.ok(
        "",
        "keystore.recover-key",
        json!({ "group": "restored", "name": "w1", "tag": tag, "passphrase": PHRASE, "state": "active" }),
    );
    assert_eq!(again[0]["tag"], tag.as_str());
    o.decrypt_ok("data sealed by the first keystore", &sealed, b"img-2", b"weekly backup");
    file("Key tags from pass phrases (Argon2id), and recovery of deleted pass phrase keys.", vec![s, o])
}

// ---- data.json ------------------------------------------------------------------------

fn data() -> Value {
    let mut scripts = Vec::new();
    for (cipher, group) in [("aes-256-gcm", "g256"), ("aes-128-gcm", "g128"), ("chacha20-poly1305", "gchacha")] {
        let mut s = Script::new(&format!("data-{cipher}"), &format!("Ciphertexts of {cipher}: one shot and streamed"));
        s.create_keystore(HMK, KPK);
        s.create_group(group, cipher);
        s.create_key(group, "k", "active", None);
        for (note, plaintext, aad) in [
            ("empty plaintext, no associated data", Vec::new(), Vec::new()),
            ("short, with associated data", b"hello".to_vec(), b"backup-42".to_vec()),
            ("100 bytes: one chunk at the default 64 KiB", text(100), b"backup-42".to_vec()),
        ] {
            let sealed = s.encrypt(note, group, &plaintext, &aad);
            assert_eq!(sealed.len(), 60 + plaintext.len() + 16);
            s.decrypt_ok("", &sealed, &aad, &plaintext);
        }
        // Multi-chunk: 64-byte chunks, fed in uneven pieces.
        let p = text(150);
        let sealed = s.stream_encrypt(group, b"backup-42", 64, &[&p[..10], &p[10..100], &p[100..]]);
        assert_eq!(sealed.len(), 60 + 150 + 3 * 16);
        s.decrypt_ok("a streamed ciphertext, decrypted in one shot", &sealed, b"backup-42", &p);
        // The same chunks sealed and opened as two runs, as two instances would.
        let header = hex::encode(&sealed[..60]);
        let run = |first: u64, data: &[u8], last: bool, field: &str| json!({ "header": header, "aad": hex::encode(b"backup-42"), "first-index": first, field: hex::encode(data), "last": last });
        let mut runs = sealed[..60].to_vec();
        runs.extend(unhex(&s.ok("run of chunk 0", "keystore.seal-chunks", run(0, &p[..64], false, "plaintext"))));
        runs.extend(unhex(&s.ok("run of chunks 1, 2", "keystore.seal-chunks", run(1, &p[64..], true, "plaintext"))));
        assert_eq!(runs, sealed, "runs sealed apart are the streamed message");
        let mut opened = unhex(&s.ok("", "keystore.open-chunks", run(0, &sealed[60..140], false, "ciphertext")));
        opened.extend(unhex(&s.ok("", "keystore.open-chunks", run(1, &sealed[140..], true, "ciphertext"))));
        assert_eq!(opened, p);
        s.fails(
            "integrity",
            "a run opened at the wrong position",
            "keystore.open-chunks",
            run(1, &sealed[60..140], false, "ciphertext"),
        );
        let dec = s.call("streaming decryption", "keystore.begin-decrypt", json!({ "aad": hex::encode(b"backup-42") }));
        let dec = json!({ "self": dec });
        let mut out = Vec::new();
        for piece in [&sealed[..30], &sealed[30..150], &sealed[150..]] {
            let mut args = dec.clone();
            args["ciphertext"] = json!(hex::encode(piece));
            out.extend(unhex(&s.ok("", "keystore.[method]decryptor.update", args)));
        }
        out.extend(unhex(&s.ok("", "keystore.[method]decryptor.finish", dec.clone())));
        assert_eq!(out, p);
        // A plaintext that fills its chunks exactly ends with an empty final chunk.
        let p128 = text(128);
        let exact = s.stream_encrypt(group, b"", 64, &[&p128]);
        assert_eq!(exact.len(), 60 + 128 + 3 * 16);
        s.decrypt_ok("two full chunks and an empty final one", &exact, b"", &p128);
        if cipher == "aes-256-gcm" {
            let deflt = s.stream_encrypt(group, b"", 0, &[b"abc"]);
            s.decrypt_ok("chunk size 0 means the default, 64 KiB", &deflt, b"", b"abc");
            s.fails(
                "invalid-argument",
                "chunk size below 64",
                "keystore.begin-encrypt",
                json!({ "group": group, "aad": "", "chunk-size": 63 }),
            );
            s.fails(
                "invalid-argument",
                "chunk size above 16 MiB",
                "keystore.begin-encrypt",
                json!({ "group": group, "aad": "", "chunk-size": 16 * 1024 * 1024 + 1 }),
            );
            let spent = json!({ "self": { "resource": 0 }, "plaintext": "00" });
            s.fails("invalid-argument", "a finished encryptor is spent", "keystore.[method]encryptor.update", spent);
        }
        scripts.push(s);
    }
    file(
        "Ciphertexts (data format v1, docs/format.md) for given keys, plaintexts, associated data and chunk sizes.",
        scripts,
    )
}

// ---- tamper.json ----------------------------------------------------------------------

fn tamper() -> Value {
    let mut s = Script::new("tampered-ciphertexts", "Every byte class of a ciphertext changed, cut or moved");
    s.create_keystore(HMK, KPK);
    s.create_group("g", "aes-256-gcm");
    s.create_key("g", "k", "active", None);
    let aad = b"backup-42";
    // 150 bytes at 64-byte chunks: header 0..60, chunk 0 60..140, chunk 1 140..220, final chunk 220..258.
    let ct = s.stream_encrypt("g", aad, 64, &[&text(150)]);
    assert_eq!(ct.len(), 258);
    s.decrypt_ok("the untouched ciphertext", &ct, aad, &text(150));
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("integrity", "magic", flip(&ct, 0)),
        ("integrity", "version 2", with_byte(&ct, 4, 2)),
        ("integrity", "cipher code 2 (AES-128-GCM) for an AES-256-GCM key", with_byte(&ct, 5, 2)),
        ("integrity", "cipher code 3 (ChaCha20-Poly1305) for an AES-256-GCM key", with_byte(&ct, 5, 3)),
        ("integrity", "unknown cipher code 4", with_byte(&ct, 5, 4)),
        ("integrity", "reserved byte", with_byte(&ct, 6, 1)),
        ("integrity", "chunk size 63", with_byte(&ct, 8, 63)),
        ("integrity", "chunk size 65", with_byte(&ct, 8, 65)),
        ("not-found", "key tag of no key", flip(&ct, 12)),
        ("integrity", "salt", flip(&ct, 28)),
        ("integrity", "chunk 0 ciphertext", flip(&ct, 60)),
        ("integrity", "chunk 0 GCM tag", flip(&ct, 139)),
        ("integrity", "chunk 1 ciphertext", flip(&ct, 140)),
        ("integrity", "final chunk ciphertext", flip(&ct, 220)),
        ("integrity", "final chunk GCM tag", flip(&ct, 257)),
        ("integrity", "empty", Vec::new()),
        ("integrity", "59 of the 60 header bytes", ct[..59].to_vec()),
        ("integrity", "header only", ct[..60].to_vec()),
        ("integrity", "cut after a full chunk", ct[..140].to_vec()),
        ("integrity", "cut after two full chunks", ct[..220].to_vec()),
        ("integrity", "final chunk shorter than its tag", ct[..230].to_vec()),
        ("integrity", "last byte cut", ct[..257].to_vec()),
        ("integrity", "a byte appended", [ct.as_slice(), &[0]].concat()),
        ("integrity", "chunks 0 and 1 swapped", [&ct[..60], &ct[140..220], &ct[60..140], &ct[220..]].concat()),
        ("integrity", "chunk 1 dropped", [&ct[..140], &ct[220..]].concat()),
        ("integrity", "chunk 0 repeated", [&ct[..140], &ct[60..]].concat()),
    ];
    for (kind, note, bad) in &cases {
        s.decrypt_fails(kind, note, bad, aad);
    }
    s.decrypt_fails("integrity", "other associated data", &ct, b"backup-43");
    s.decrypt_fails("integrity", "no associated data", &ct, b"");
    // Streaming: a tampered chunk fails at the update that completes it; a cut stream fails at finish.
    let d = s.call("", "keystore.begin-decrypt", json!({ "aad": hex::encode(aad) }));
    s.fails(
        "integrity",
        "streamed, chunk 0 tampered",
        "keystore.[method]decryptor.update",
        json!({ "self": d, "ciphertext": hex::encode(flip(&ct, 70)) }),
    );
    let d = s.call("", "keystore.begin-decrypt", json!({ "aad": hex::encode(aad) }));
    s.ok(
        "streamed, cut after a full chunk: chunk 0 is released",
        "keystore.[method]decryptor.update",
        json!({ "self": d, "ciphertext": hex::encode(&ct[..140]) }),
    );
    s.fails("integrity", "the end proves the cut", "keystore.[method]decryptor.finish", json!({ "self": d }));
    file("The expected error for tampered, truncated and reordered ciphertexts (docs/format.md, Errors).", vec![s])
}

// ---- rows.json ------------------------------------------------------------------------

/// What a host's storage holds: change sets applied as the WIT says.
#[derive(Default)]
struct Storage {
    rows: BTreeMap<String, Value>,
}

impl Storage {
    fn apply(&mut self, changes: &Value) {
        for row in changes["upserts"].as_array().expect("upserts") {
            self.rows.insert(row["id"].as_str().unwrap().to_string(), row.clone());
        }
        for gone in changes["deletes"].as_array().expect("deletes") {
            self.rows.remove(gone["id"].as_str().unwrap());
        }
    }

    fn row(&self, prefix: &str, nth: usize) -> Value {
        self.rows.iter().filter(|(id, _)| id.starts_with(prefix)).nth(nth).expect("row").1.clone()
    }
}

fn rows() -> Value {
    let mut s = Script::new("open-and-load", "A host's storage contract: rows, open, load, row faults");
    let mut db = Storage::default();
    db.apply(&s.create_keystore(HMK, KPK));
    let g = s.create_group("g", "aes-256-gcm");
    db.apply(&g[1]);
    let key_row = |s: &mut Script, db: &mut Storage, name: &str, state: &str| {
        let args = json!({ "group": "g", "name": name, "state": state, "passphrase": null, "description": "" });
        let made = s.ok("", "keystore.create-key", args);
        db.apply(&made[1]);
        format!("k:{}:{}", g[0]["tag"].as_str().unwrap(), made[0]["tag"].as_str().unwrap())
    };
    let k1_id = key_row(&mut s, &mut db, "k1", "active");
    let k2_id = key_row(&mut s, &mut db, "k2", "prelive");
    db.apply(&s.set_state_changes("k1 moves: its row gets version 2", "g", "k1", "inactive"));
    let header = db.rows["header"].clone();
    let group = db.row("g:", 0);
    let k1 = db.rows[&k1_id].clone();
    let k2 = db.rows[&k2_id].clone();
    assert_eq!(k1["version"], 2);
    s.ok("the header is readable without keys", "keystore.inspect-header", json!({ "header": header["body"] }));
    s.fails("integrity", "not a header", "keystore.inspect-header", json!({ "header": "00" }));
    let open = |hmk: u8, kpk: u8, header: &Value| json!({ "header": header, "hmk": { "raw": hex::encode([hmk; 32]) }, "kpk": { "raw": hex::encode([kpk; 32]) } });
    s.fails("wrong-passphrase", "wrong HMK", "keystore.open", open(0x33, KPK, &header));
    s.fails("wrong-passphrase", "wrong KPK", "keystore.open", open(HMK, 0x44, &header));
    let body = unhex(&header["body"]);
    let mut bad = header.clone();
    bad["body"] = json!(hex::encode(flip(&body, body.len() - 1)));
    s.fails("integrity", "tampered header (its MAC)", "keystore.open", open(HMK, KPK, &bad));
    let mut old = header.clone();
    old["version"] = json!(header["version"].as_u64().unwrap() + 1);
    s.fails("integrity", "header under another version", "keystore.open", open(HMK, KPK, &old));
    s.ok("open from the header row", "keystore.open", open(HMK, KPK, &header));
    s.ok("nothing loaded yet", "keystore.keys", json!({ "group": null, "state": null }));
    let mut tampered = k2.clone();
    let k2_body = unhex(&k2["body"]);
    tampered["body"] = json!(hex::encode(flip(&k2_body, k2_body.len() / 2)));
    let faults = s.ok(
        "a tampered key row is a fault; the rest loads",
        "keystore.load",
        json!({ "rows": [group, k1, tampered], "deleted": [] }),
    );
    assert_eq!(faults.as_array().unwrap().len(), 1);
    s.ok("", "keystore.keys", json!({ "group": "g", "state": null }));
    s.call("", "keystore.stats", json!({}));
    let mut swapped = k1.clone();
    swapped["id"] = k2["id"].clone();
    swapped["version"] = k2["version"].clone();
    let faults =
        s.ok("a row moved to another id is a fault", "keystore.load", json!({ "rows": [swapped], "deleted": [] }));
    assert_eq!(faults.as_array().unwrap().len(), 1);
    let mut replayed = k1.clone();
    replayed["version"] = json!(1);
    let faults =
        s.ok("a row under another version is a fault", "keystore.load", json!({ "rows": [replayed], "deleted": [] }));
    assert_eq!(faults.as_array().unwrap().len(), 1);
    let faults = s.ok("the real rows load", "keystore.load", json!({ "rows": [k1, k2], "deleted": [] }));
    assert_eq!(faults, json!([]));
    s.ok("", "keystore.keys", json!({ "group": "g", "state": null }));
    s.ok("a row deleted in storage", "keystore.load", json!({ "rows": [], "deleted": [k2["id"]] }));
    s.ok("", "keystore.keys", json!({ "group": "g", "state": null }));
    file("The storage contract: rows and change sets, open, load, and tampered rows and headers.", vec![s])
}

impl Script {
    fn set_state_changes(&mut self, note: &str, group: &str, name: &str, state: &str) -> Value {
        self.ok(note, "keystore.set-state", json!({ "group": group, "name": name, "state": state }))[1].clone()
    }
}

// ---- admin.json -----------------------------------------------------------------------

fn admin() -> Value {
    file(
        "Administration: the actor and audit entries every mutation appends, reading and verifying the trail \
         (edited, removed, reordered), and HMK/KPK rotation.",
        vec![audit_trail(), rotation()],
    )
}

fn audit_trail() -> Script {
    let mut s = Script::new("audit-trail", "Audit entries in change sets, read back and verified, tampering named");
    s.ok("the actor every following entry names", "keystore.set-actor", json!({ "actor": "ops@vectors" }));
    s.fails("invalid-argument", "an actor with a control character", "keystore.set-actor", json!({ "actor": "a\nb" }));
    let mut db = Storage::default();
    db.apply(&s.create_keystore(HMK, KPK));
    db.apply(&s.create_group("g", "aes-256-gcm")[1]);
    for name in ["k1", "k2"] {
        db.apply(&s.create_key_changes(name));
    }
    db.apply(&s.set_state_changes("", "g", "k1", "deprecated"));
    s.ok("the chain head", "keystore.audit-head", json!({}));
    let trail: Vec<Value> = db.rows.iter().filter(|(id, _)| id.starts_with("a:")).map(|(_, r)| r.clone()).collect();
    assert_eq!(trail.len(), 6);
    let start = json!({ "next-seq": 1, "prev-hash": hex::encode([0u8; 32]) });
    let first = s.ok("the first three entries", "keystore.read-audit", json!({ "rows": trail[..3], "cursor": start }));
    let rest = s.ok(
        "the rest, continuing from the cursor",
        "keystore.read-audit",
        json!({ "rows": trail[3..], "cursor": first["cursor"] }),
    );
    assert_eq!(rest["fault"], Value::Null);
    s.ok("the trail ends at its head", "keystore.audit-end", json!({ "cursor": rest["cursor"] }));
    let mut edited = trail.clone();
    let body = unhex(&edited[2]["body"]);
    edited[2]["body"] = json!(hex::encode(flip(&body, body.len() - 1)));
    s.ok("an edited entry", "keystore.read-audit", json!({ "rows": edited, "cursor": start }));
    let mut removed = trail.clone();
    removed.remove(3);
    s.ok("a removed entry", "keystore.read-audit", json!({ "rows": removed, "cursor": start }));
    let mut swapped = trail.clone();
    let (a, b) = (swapped[1]["body"].clone(), swapped[4]["body"].clone());
    swapped[1]["body"] = b;
    swapped[4]["body"] = a;
    s.ok("two swapped entries", "keystore.read-audit", json!({ "rows": swapped, "cursor": start }));
    let short = s.ok("the last entry missing", "keystore.read-audit", json!({ "rows": trail[..5], "cursor": start }));
    s.ok("... is found at the end", "keystore.audit-end", json!({ "cursor": short["cursor"] }));
    s.call("the number of entries", "keystore.stats", json!({}));
    s
}

impl Script {
    /// An active random key in group "g"; returns its change set.
    fn create_key_changes(&mut self, name: &str) -> Value {
        let args = json!({ "group": "g", "name": name, "state": "active", "passphrase": null, "description": "" });
        self.ok("", "keystore.create-key", args)[1].clone()
    }
}

fn rotation() -> Script {
    let mut s = Script::new("rotation", "KPK and HMK rotation: one change set each, old data still decrypts");
    let mut db = Storage::default();
    db.apply(&s.create_keystore(HMK, KPK));
    db.apply(&s.create_group("g", "aes-256-gcm")[1]);
    db.apply(&s.create_key_changes("k"));
    let ct = s.encrypt("", "g", b"before rotation", b"");
    let raw = |b: u8| json!({ "raw": hex::encode([b; 32]) });
    db.apply(&s.ok("every key re-wrapped", "keystore.rotate-kpk", json!({ "kpk": raw(0x33), "kpk-id": "kpk-2" })));
    s.decrypt_ok("old data, new KPK", &ct, b"", b"before rotation");
    s.ok("", "keystore.begin-rotate-hmk", json!({ "hmk": raw(0x44), "hmk-id": "hmk-2" }));
    let trail: Vec<Value> = db.rows.iter().filter(|(id, _)| id.starts_with("a:")).map(|(_, r)| r.clone()).collect();
    let resealed = s.ok("audit entries sealed again", "keystore.reseal-audit", json!({ "rows": trail }));
    for row in resealed.as_array().unwrap() {
        db.rows.insert(row["id"].as_str().unwrap().to_string(), row.clone());
    }
    db.apply(&s.ok("every other row sealed again", "keystore.finish-rotate-hmk", json!({})));
    s.decrypt_ok("old data, new HMK", &ct, b"", b"before rotation");
    let header = db.rows["header"].clone();
    let open = |hmk: u8, kpk: u8| json!({ "header": header, "hmk": raw(hmk), "kpk": raw(kpk) });
    s.fails("wrong-passphrase", "the old HMK", "keystore.open", open(HMK, 0x33));
    s.fails("wrong-passphrase", "the old KPK", "keystore.open", open(0x44, KPK));
    s.ok("the new keys", "keystore.open", open(0x44, 0x33));
    let rows: Vec<Value> = db.rows.iter().filter(|(id, _)| *id != "header").map(|(_, r)| r.clone()).collect();
    let faults = s.ok("every row opens under the new HMK", "keystore.load", json!({ "rows": rows, "deleted": [] }));
    assert_eq!(faults, json!([]));
    s.decrypt_ok("", &ct, b"", b"before rotation");
    s.ok("", "keystore.quiesce", json!({}));
    s.fails(
        "quiesced",
        "no rotation while quiesced",
        "keystore.rotate-kpk",
        json!({ "kpk": raw(0x55), "kpk-id": null }),
    );
    s
}
