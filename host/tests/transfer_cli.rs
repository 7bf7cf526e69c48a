//! `keystate export` and `keystate import` as a user runs them, and the proof
//! that an import killed at any moment leaves the target unchanged or fully
//! imported, never in between.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::Scratch;
use keystate::{Cipher, KeyState, Keystore};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_keystate");
const PASS_VAR: &str = "KEYSTATE_EXPORT_PASSPHRASE";
const PASS: &str = "carry these keys";

/// `keystate --keystore <db> <args>` with a clean environment and `env` set.
fn keystate(db: &Path, args: &[&dyn AsRef<OsStr>], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    for var in
        ["KEYSTATE_KEYSTORE", "KEYSTATE_HMK_PASSPHRASE", "KEYSTATE_KPK_PASSPHRASE", "KEYSTATE_PASSPHRASE", PASS_VAR]
    {
        c.env_remove(var);
    }
    c.env("KEYSTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("keystate-cache"));
    c.arg("--keystore").arg(db);
    for a in args {
        c.arg(a);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

fn run(mut c: Command, stdin: Option<&str>, code: i32) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().expect("run keystate");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{c:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", out.stdout))
}

fn with_pass() -> [(&'static str, &'static str); 1] {
    [(PASS_VAR, PASS)]
}

/// A source keystore with groups "g" (two keys, one active) and "h" (one key).
fn source(s: &Scratch) -> PathBuf {
    let path = s.path("source.db");
    let ks = Keystore::create(&path, None, None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_key("g", "k1", KeyState::Active, None, "").unwrap();
    ks.create_key("g", "k2", KeyState::Prelive, Some("phrase two"), "").unwrap();
    ks.create_group("h", Cipher::Aes128Gcm, "").unwrap();
    ks.create_key("h", "k1", KeyState::Active, None, "").unwrap();
    path
}

fn target(s: &Scratch, name: &str) -> PathBuf {
    let path = s.path(name);
    Keystore::create(&path, None, None).unwrap();
    path
}

#[test]
fn export_then_import_round_trip_with_report() {
    let s = Scratch::new();
    let src = source(&s);
    let data = Keystore::open(&src, None, None).unwrap().encrypt("g", b"old backup", b"").unwrap();
    let file = s.path("out.ksx");
    let out = run(keystate(&src, &[&"--json", &"export", &file], &with_pass()), None, 0);
    let done = json(&out);
    assert_eq!(done["groups"], serde_json::json!(["g", "h"]));
    assert_eq!(done["keys"], 3);
    assert_eq!(done["bytes"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let dst = target(&s, "target.db");
    // Preview: the report, and nothing changed.
    let preview = json(&run(keystate(&dst, &[&"--json", &"import", &file, &"--preview"], &with_pass()), None, 0));
    assert_eq!((preview["preview"].clone(), preview["keys_imported"].clone()), (Value::Bool(true), 3.into()));
    let out = run(keystate(&dst, &[&"import", &file, &"--preview"], &with_pass()), None, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("preview, nothing changed: 2 group(s) would be created, 3 key(s) would be imported"),
        "{text}"
    );
    assert!(Keystore::open(&dst, None, None).unwrap().groups().unwrap().is_empty());

    let out = run(keystate(&dst, &[&"import", &file], &with_pass()), None, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("2 group(s) created, 3 key(s) imported, 0 key(s) skipped"), "{text}");
    assert!(text.contains("group \"g\" as \"g_") && text.contains("Z\": created"), "{text}");
    let ks = Keystore::open(&dst, None, None).unwrap();
    assert_eq!(ks.decrypt(&data, b"").unwrap(), b"old backup");

    // Again: every key skipped with its reason, no group created.
    let again = json(&run(keystate(&dst, &[&"--json", &"import", &file], &with_pass()), None, 0));
    assert_eq!((again["groups_created"].clone(), again["keys_skipped"].clone()), (0.into(), 3.into()));
    assert_eq!(again["keys"][0]["skipped"]["reason"], "tag-exists");
    let out = run(keystate(&dst, &[&"import", &file], &with_pass()), None, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("skipped (tag-exists)") && text.contains("skipped (no-new-keys)"), "{text}");
}

#[test]
fn selected_groups_preserved_names_and_pass_phrase_sources() {
    let s = Scratch::new();
    let src = source(&s);
    let file = s.path("h.ksx");
    // The pass phrase from a named variable.
    run(
        keystate(&src, &[&"export", &file, &"--group", &"h", &"--passphrase-env", &"MY_PASS"], &[("MY_PASS", PASS)]),
        None,
        0,
    );
    let dst = target(&s, "target.db");
    // ... and on import from a line of standard input.
    run(keystate(&dst, &[&"import", &file, &"--preserve-names"], &[]), Some(&format!("{PASS}\n")), 0);
    let ks = Keystore::open(&dst, None, None).unwrap();
    let names: Vec<_> = ks.groups().unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["h"]);
    // The name is taken now: the group is skipped and reported, nothing merged.
    let report = json(&run(keystate(&dst, &[&"--json", &"import", &file, &"--preserve-names"], &with_pass()), None, 0));
    assert_eq!(report["groups"][0]["skipped"]["reason"], "group-exists");
    assert_eq!(ks.keys(None, None).unwrap().len(), 1);
    // Unknown group: not found (3), no file written.
    let none = s.path("none.ksx");
    run(keystate(&src, &[&"export", &none, &"--group", &"nope"], &with_pass()), None, 3);
    assert!(!none.exists());
    // No pass phrase anywhere: invalid argument (11).
    run(keystate(&src, &[&"export", &none], &[]), None, 11);
}

#[test]
fn import_errors_have_their_exit_codes_and_change_nothing() {
    let s = Scratch::new();
    let src = source(&s);
    let file = s.path("out.ksx");
    run(keystate(&src, &[&"export", &file], &with_pass()), None, 0);
    let dst = target(&s, "target.db");
    let wrong = run(keystate(&dst, &[&"--json", &"import", &file], &[(PASS_VAR, "not it")]), None, 8);
    assert_eq!(json(&wrong)["error"]["code"], "WRONG_PASSPHRASE");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 1;
    let tampered = s.path("tampered.ksx");
    std::fs::write(&tampered, &bytes).unwrap();
    run(keystate(&dst, &[&"import", &tampered], &with_pass()), None, 9);
    run(keystate(&dst, &[&"import", &src], &with_pass()), None, 9); // a keystore is no container
    run(keystate(&dst, &[&"import", &s.path("missing.ksx")], &with_pass()), None, 3);
    run(keystate(&dst, &[&"quiesce"], &[]), None, 0);
    run(keystate(&dst, &[&"import", &file], &with_pass()), None, 10);
    run(keystate(&dst, &[&"unquiesce"], &[]), None, 0);
    assert!(Keystore::open(&dst, None, None).unwrap().groups().unwrap().is_empty());
}

/// Kill importing processes at random moments: each target must be either
/// exactly as before or hold the whole import.
#[test]
fn import_killed_midway_leaves_the_target_unchanged_or_complete() {
    const GROUPS: usize = 30;
    const KEYS_PER_GROUP: usize = 40;
    const TRIES: usize = 10;
    let s = Scratch::new();
    let src = s.path("big.db");
    let ks = Keystore::create(&src, None, None).unwrap();
    for g in 0..GROUPS {
        let group = format!("group-{g:02}");
        ks.create_group(&group, Cipher::Aes256Gcm, "").unwrap();
        for k in 0..KEYS_PER_GROUP {
            let state = if k == 0 { KeyState::Active } else { KeyState::Prelive };
            ks.create_key(&group, &format!("key-{k:02}"), state, None, "").unwrap();
        }
    }
    let file = s.path("big.ksx");
    ks.export_to_file(&file, None, PASS).unwrap();

    // A template target with something in it already.
    let template = s.path("template");
    std::fs::create_dir(&template).unwrap();
    let template_db = template.join("t.db");
    let t = Keystore::create(&template_db, None, None).unwrap();
    t.create_group("mine", Cipher::Aes256Gcm, "").unwrap();
    t.create_key("mine", "k", KeyState::Active, None, "").unwrap();
    let before = (t.groups().unwrap(), t.keys(None, None).unwrap());
    drop(t);
    let fresh = |i: usize| -> PathBuf {
        let dir = s.path(&format!("try-{i}"));
        std::fs::create_dir(&dir).unwrap();
        for ext in ["db", "db.hmk", "db.kpk"] {
            std::fs::copy(template.join(format!("t.{ext}")), dir.join(format!("t.{ext}"))).unwrap();
        }
        dir.join("t.db")
    };

    // How long a whole import takes here, to spread the kills over it.
    let db = fresh(TRIES);
    let started = Instant::now();
    run(keystate(&db, &[&"import", &file], &with_pass()), None, 0);
    let full = started.elapsed();

    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let (mut unchanged, mut complete, mut killed) = (0, 0, 0);
    for i in 0..TRIES {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Most of a run is start-up and Argon2id; the commit is at its end, so aim late.
        let delay = full.mul_f64(0.4 + 0.7 * (seed % 1000) as f64 / 1000.0);
        let db = fresh(i);
        let mut child = keystate(&db, &[&"import", &file], &with_pass())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL: no destructor, no rollback by the process itself
        let status = child.wait().unwrap();
        killed += usize::from(!status.success());

        let ks = Keystore::open(&db, None, None).unwrap();
        let (groups, keys) = (ks.groups().unwrap(), ks.keys(None, None).unwrap());
        if (groups.clone(), keys.clone()) == before {
            unchanged += 1;
        } else {
            assert_eq!(groups.len(), 1 + GROUPS, "try {i} (killed after {delay:?}): partial import");
            assert_eq!(keys.len(), 1 + GROUPS * KEYS_PER_GROUP, "try {i} (killed after {delay:?}): partial import");
            assert!(ks.faults().unwrap().is_empty());
            complete += 1;
        }
        for g in &groups {
            assert!(ks.keys(Some(&g.name), Some(KeyState::Active)).unwrap().len() <= 1);
        }
    }
    println!("full import {full:?}; {TRIES} tries: {killed} killed, {unchanged} unchanged, {complete} complete");
    assert!(killed > 0, "no try was killed before it finished: the test proved nothing");
}
