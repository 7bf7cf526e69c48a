//! Black-box tests of the `keystate` binary: each runs the real executable on
//! a fresh keystore in a temporary directory, and on failure prints the
//! command line with its stdout and stderr.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_keystate");

/// Every variable the binary reads; removed so the caller's environment cannot leak in.
const KEYSTATE_VARS: [&str; 7] = [
    "KEYSTATE_KEYSTORE",
    "KEYSTATE_HMK_PASSPHRASE",
    "KEYSTATE_KPK_PASSPHRASE",
    "KEYSTATE_PASSPHRASE",
    "KEYSTATE_ACTOR",
    "KEYSTATE_NEW_HMK_PASSPHRASE",
    "KEYSTATE_NEW_KPK_PASSPHRASE",
];

// ---- harness --------------------------------------------------------------------------

/// A temporary directory with a keystore path in it (created by `init`).
struct Ks {
    dir: TempDir,
    path: PathBuf,
}

impl Ks {
    /// A directory without a keystore yet.
    fn empty() -> Ks {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys.db");
        Ks { dir, path }
    }

    /// A keystore with random HMK/KPK key files.
    fn new() -> Ks {
        let ks = Ks::empty();
        ks.run(["init"]).ok();
        ks
    }

    /// A keystore with group `g` and active key `k1`.
    fn with_active_key() -> Ks {
        let ks = Ks::new();
        ks.run(["group", "create", "g"]).ok();
        ks.run(["key", "create", "g", "k1", "--state", "active"]).ok();
        ks
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `keystate --keystore <path> <args>`.
    fn run<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Cmd {
        bare().arg("--keystore").arg(&self.path).args(args)
    }
}

/// `keystate` with a clean environment and the shared compiled-component cache.
fn bare() -> Cmd {
    let mut command = Command::new(BIN);
    for var in KEYSTATE_VARS {
        command.env_remove(var);
    }
    command.env("KEYSTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("keystate-cache"));
    Cmd { command, stdin: None, shown: vec!["keystate".into()], envs: Vec::new() }
}

/// A command being built, remembered for the failure message.
struct Cmd {
    command: Command,
    stdin: Option<Vec<u8>>,
    shown: Vec<String>,
    envs: Vec<String>,
}

/// A finished run.
struct Done {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    shown: String,
}

impl Cmd {
    fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.shown.push(format!("{:?}", arg.as_ref()).trim_matches('"').to_string());
        self.command.arg(arg);
        self
    }

    fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.envs.push(format!("{key}={:?}", value.as_ref()));
        self.command.env(key, value);
        self
    }

    fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    fn run(mut self) -> Done {
        let shown =
            format!("{}{}", self.envs.iter().map(|e| format!("{e} ")).collect::<String>(), self.shown.join(" "));
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.command.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = self.command.spawn().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        // Feed stdin from a thread so that large inputs cannot deadlock against stdout.
        let feeder = self.stdin.map(|data| {
            let mut pipe = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
        let output = child.wait_with_output().expect("wait for keystate");
        if let Some(feeder) = feeder {
            feeder.join().expect("stdin feeder");
        }
        Done {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            shown,
        }
    }

    /// Run; it must succeed.
    fn ok(self) -> Done {
        self.run().expect_code(0)
    }

    /// Run; it must fail with `code`.
    fn fails(self, code: i32) -> Done {
        self.run().expect_code(code)
    }
}

impl Done {
    fn expect_code(self, code: i32) -> Done {
        if self.code != Some(code) {
            panic!("expected exit code {code}, got {:?}\n{}", self.code, self.describe());
        }
        self
    }

    fn describe(&self) -> String {
        format!(
            "command: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.shown,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }

    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap_or_else(|_| panic!("stdout is not UTF-8\n{}", self.describe()))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", self.describe()))
    }

    /// stderr holds exactly one error line containing all of `words`.
    fn says(self, words: &[&str]) -> Done {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("keystate: error: ")).collect();
        assert_eq!(lines.len(), 1, "expected one error line\n{}", self.describe());
        for word in words {
            assert!(lines[0].contains(word), "error line lacks {word:?}\n{}", self.describe());
        }
        self
    }
}

/// Deterministic bytes that do not compress or repeat (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn tag_of(ks: &Ks, group: &str, key: &str) -> String {
    ks.run(["--json", "key", "show", group, key]).ok().json()["tag"].as_str().expect("tag").to_string()
}

fn state_of(ks: &Ks, group: &str, key: &str) -> String {
    ks.run(["--json", "key", "show", group, key]).ok().json()["state"].as_str().expect("state").to_string()
}

fn assert_rfc3339(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("not a string: {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"));
}

fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

const KEY_FIELDS: [&str; 8] = ["tag", "name", "group", "state", "description", "created", "modified", "recoverable"];
const GROUP_FIELDS: [&str; 7] = ["tag", "name", "cipher", "description", "created", "modified", "active_key"];

// ---- the lifecycle --------------------------------------------------------------------

#[test]
fn tour_of_the_lifecycle() {
    let ks = Ks::new();
    ks.run(["group", "create", "backups", "--description", "nightly"]).ok();
    let created = ks.run(["key", "create", "backups", "k1"]).ok().text();
    assert!(created.contains("prelive"), "{created}");

    // prelive: no encryption yet (no active key in the group).
    ks.run(["encrypt", "--group", "backups"]).stdin("x").fails(6).says(&["no active key"]);
    ks.run(["key", "set-state", "backups", "k1", "active"]).ok();

    // stdin -> stdout round trip.
    let sealed = ks.run(["encrypt", "--group", "backups"]).stdin("old backup").ok().stdout;
    assert_ne!(sealed, b"old backup");
    assert_eq!(ks.run(["decrypt"]).stdin(sealed.clone()).ok().stdout, b"old backup");

    // A second active key bumps the first to inactive.
    let bump = ks.run(["key", "create", "backups", "k2", "--state", "active"]).ok().text();
    assert!(bump.contains("k1") && bump.contains("inactive"), "{bump}");
    let list = ks.run(["key", "list"]).ok().text();
    let header = list.lines().next().unwrap();
    for column in ["NAME", "GROUP", "STATE", "TAG", "RECOVERABLE", "MODIFIED"] {
        assert!(header.contains(column), "{list}");
    }
    assert!(list.lines().any(|l| l.starts_with("k1 ") && l.contains("inactive")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("k2 ") && l.contains("active")), "{list}");
    let groups = ks.run(["group", "list"]).ok().text();
    assert!(groups.lines().any(|l| l.starts_with("backups ") && l.contains(" k2 ")), "{groups}");

    // Old data still decrypts with the inactive key; new data uses k2.
    assert_eq!(ks.run(["decrypt"]).stdin(sealed.clone()).ok().stdout, b"old backup");

    // Deprecated: every use refused, with the state and the operation named.
    ks.run(["key", "set-state", "backups", "k1", "deprecated"]).ok();
    assert_eq!(state_of(&ks, "backups", "k1"), "deprecated");
    ks.run(["decrypt"]).stdin(sealed.clone()).fails(6).says(&["deprecated", "decrypt"]);
    ks.run(["key", "set-state", "backups", "k1", "inactive"]).ok();
    assert_eq!(ks.run(["decrypt"]).stdin(sealed.clone()).ok().stdout, b"old backup");

    // Two steps to delete: deprecated -> terminated -> delete; then its data is unknown.
    ks.run(["key", "set-state", "backups", "k1", "deprecated"]).ok();
    ks.run(["key", "set-state", "backups", "k1", "terminated"]).ok();
    ks.run(["key", "delete", "backups", "k1"]).ok();
    ks.run(["decrypt"]).stdin(sealed).fails(3).says(&["no key with tag"]);

    // Renames and descriptions.
    ks.run(["key", "modify", "backups", "k2", "--name", "current", "-d", "rotated monthly"]).ok();
    ks.run(["group", "modify", "backups", "--name", "nightly"]).ok();
    let key = ks.run(["--json", "key", "show", "nightly", "current"]).ok().json();
    assert_eq!(key["description"], "rotated monthly");
    assert_eq!(key["group"], "nightly");
}

#[test]
fn files_of_several_mib_round_trip_byte_for_byte() {
    let ks = Ks::with_active_key();
    // 3 MiB and a bit: not a multiple of the 1 MiB streaming block nor of any chunk size.
    let plain = noise(3 * 1024 * 1024 + 12_345, 7);
    let (src, enc, dec) = (ks.file("plain.bin"), ks.file("sealed.bin"), ks.file("plain.out"));
    std::fs::write(&src, &plain).unwrap();

    let done = ks.run(["encrypt", "-g", "g", "--aad", "image-17"]).arg("-i").arg(&src).arg("-o").arg(&enc).ok();
    assert!(done.text().contains("encrypted"), "{}", done.describe());
    ks.run(["decrypt", "--aad", "image-17"]).arg("-i").arg(&enc).arg("-o").arg(&dec).ok();
    assert!(std::fs::read(&dec).unwrap() == plain, "decrypted file differs from the original");

    // The same data through stdin/stdout, and files mixed with pipes.
    let sealed = ks.run(["encrypt", "-g", "g"]).stdin(plain.clone()).ok().stdout;
    assert!(ks.run(["decrypt"]).stdin(sealed).ok().stdout == plain, "stdin/stdout round trip differs");
    let piped = ks.run(["decrypt", "--aad", "image-17", "-o", "-"]).arg("-i").arg(&enc).ok().stdout;
    assert!(piped == plain, "file -> stdout round trip differs");

    // Wrong associated data is an integrity failure.
    ks.run(["decrypt", "--aad", "image-18"]).arg("-i").arg(&enc).fails(9);

    // --json reports the byte counts of a file output.
    let summary = ks.run(["--json", "encrypt", "-g", "g"]).arg("-i").arg(&src).arg("-o").arg(&enc).ok().json();
    assert_eq!(summary["bytes_read"], plain.len() as u64);
    assert_eq!(summary["bytes_written"], std::fs::metadata(&enc).unwrap().len());
}

#[test]
fn empty_input_round_trips() {
    let ks = Ks::with_active_key();
    let sealed = ks.run(["encrypt", "-g", "g"]).stdin("").ok().stdout;
    assert!(!sealed.is_empty());
    assert_eq!(ks.run(["decrypt"]).stdin(sealed).ok().stdout, b"");
}

// ---- JSON -------------------------------------------------------------------------------

#[test]
fn json_groups_have_the_contract_fields() {
    let ks = Ks::new();
    let group = ks.run(["--json", "group", "create", "g", "--cipher", "AES_128_GCM", "-d", "d1"]).ok().json();
    assert_eq!(keys_of(&group), sorted(&GROUP_FIELDS));
    assert_eq!(group["name"], "g");
    assert_eq!(group["cipher"], "AES_128_GCM");
    assert_eq!(group["description"], "d1");
    assert_eq!(group["active_key"], Value::Null);
    assert_eq!(group["tag"].as_str().unwrap().len(), 32);
    assert_rfc3339(&group["created"]);
    assert_rfc3339(&group["modified"]);

    ks.run(["key", "create", "g", "k", "--state", "active"]).ok();
    let shown = ks.run(["group", "show", "g", "--json"]).ok().json();
    assert_eq!(shown["active_key"], "k");
    assert_eq!(shown["tag"], group["tag"]);

    ks.run(["group", "create", "h"]).ok();
    let list = ks.run(["--json", "group", "list"]).ok().json();
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    for g in list {
        assert_eq!(keys_of(g), sorted(&GROUP_FIELDS));
    }

    let deleted = ks.run(["--json", "group", "delete", "h"]).ok().json();
    assert_eq!(deleted, serde_json::json!({ "group": "h", "deleted": true }));
}

#[test]
fn json_keys_have_the_contract_fields() {
    let ks = Ks::new();
    ks.run(["group", "create", "g"]).ok();
    let key = ks.run(["--json", "key", "create", "g", "k1", "-d", "first"]).ok().json();
    assert_eq!(keys_of(&key), sorted(&KEY_FIELDS));
    assert_eq!(key["name"], "k1");
    assert_eq!(key["group"], "g");
    assert_eq!(key["state"], "prelive");
    assert_eq!(key["description"], "first");
    assert_eq!(key["recoverable"], false);
    assert_rfc3339(&key["created"]);
    assert_rfc3339(&key["modified"]);
    let tag = key["tag"].as_str().unwrap().to_string();
    assert!(tag.len() == 32 && tag.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{tag}");

    let moved = ks.run(["--json", "key", "set-state", "g", "k1", "active"]).ok().json();
    assert_eq!(keys_of(&moved), sorted(&KEY_FIELDS));
    assert_eq!(moved["state"], "active");

    let by_tag = ks.run(["--json", "key", "show", "--tag", &tag]).ok().json();
    assert_eq!(by_tag["name"], "k1");
    assert_eq!(by_tag["state"], "active");

    ks.run(["key", "create", "g", "k2"]).ok();
    let list = ks.run(["--json", "key", "list"]).ok().json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["k1", "k2"]);
    let prelive = ks.run(["--json", "key", "list", "--state", "prelive", "--group", "g"]).ok().json();
    assert_eq!(prelive.as_array().unwrap().len(), 1);
    assert_eq!(prelive[0]["name"], "k2");

    let deleted = ks.run(["--json", "key", "delete", "g", "k2"]).ok().json();
    assert_eq!(deleted, serde_json::json!({ "group": "g", "key": "k2", "deleted": true }));
}

#[test]
fn json_stats_and_init() {
    let ks = Ks::empty();
    let init = ks.run(["--json", "init", "--hmk-id", "hmk-test", "--kpk-id", "kpk-test"]).ok().json();
    assert_eq!(init["hmk_id"], "hmk-test");
    assert_eq!(init["kpk_id"], "kpk-test");
    assert_eq!(init["hmk_file"].as_str().unwrap(), format!("{}.hmk", ks.path.display()));

    ks.run(["group", "create", "g"]).ok();
    ks.run(["key", "create", "g", "a", "--state", "active"]).ok();
    ks.run(["key", "create", "g", "b"]).ok();
    let stats = ks.run(["--json", "stats"]).ok().json();
    assert_eq!(stats["groups"], 1);
    assert_eq!(stats["keys"], 2);
    assert_eq!(stats["states"]["active"], 1);
    assert_eq!(stats["states"]["prelive"], 1);
    assert_eq!(stats["quiesced"], false);
    assert_eq!(stats["corrupt_rows"], 0);
    assert_eq!(stats["faults"], serde_json::json!([]));
    assert_eq!(stats["hmk_id"], "hmk-test");

    let text = ks.run(["stats"]).ok().text();
    assert!(text.contains("hmk-test") && text.contains("active 1"), "{text}");
}

#[test]
fn json_errors_go_to_stdout_with_their_code() {
    let ks = Ks::new();
    let done = ks.run(["--json", "group", "show", "nope"]).fails(3).says(&["nope"]);
    let error = done.json();
    assert_eq!(error["error"]["code"], "NOT_FOUND");
    assert!(error["error"]["message"].as_str().unwrap().contains("nope"));
}

// ---- exit codes, one per error kind -----------------------------------------------------

#[test]
fn not_found_exits_3() {
    let ks = Ks::with_active_key();
    ks.run(["group", "show", "nope"]).fails(3).says(&["nope"]);
    ks.run(["key", "show", "g", "nope"]).fails(3);
    ks.run(["key", "show", "--tag", "00000000000000000000000000000000"]).fails(3);
    ks.run(["encrypt", "-g", "nope"]).stdin("x").fails(3);
    ks.run(["decrypt", "-i"]).arg(ks.file("missing")).fails(3);
    // No keystore at that path.
    bare().arg("--keystore").arg(ks.file("other.db")).arg("stats").fails(3).says(&["other.db"]);
}

#[test]
fn already_exists_exits_4() {
    let ks = Ks::with_active_key();
    ks.run(["init"]).fails(4).says(&["already exists"]);
    ks.run(["group", "create", "g"]).fails(4);
    ks.run(["key", "create", "g", "k1"]).fails(4);
}

#[test]
fn invalid_transition_exits_5() {
    let ks = Ks::with_active_key();
    ks.run(["key", "create", "g", "p"]).ok();
    ks.run(["key", "set-state", "g", "p", "inactive"]).fails(5).says(&["prelive", "inactive"]);
    ks.run(["key", "set-state", "g", "k1", "deprecated"]).fails(5).says(&["active", "deprecated"]);
    ks.run(["key", "set-state", "g", "k1", "prelive"]).fails(5);
    ks.run(["key", "create", "g", "x", "--state", "inactive"]).fails(5);
    // Staying put is a no-op, not an error.
    ks.run(["key", "set-state", "g", "k1", "active"]).ok();
}

#[test]
fn key_unusable_exits_6_naming_state_and_operation() {
    let ks = Ks::with_active_key();
    let sealed = ks.run(["encrypt", "-g", "g"]).stdin("data").ok().stdout;
    ks.run(["key", "set-state", "g", "k1", "inactive"]).ok();
    ks.run(["encrypt", "-g", "g"]).stdin("data").fails(6);
    ks.run(["key", "set-state", "g", "k1", "deprecated"]).ok();
    ks.run(["decrypt"]).stdin(sealed.clone()).fails(6).says(&["deprecated", "decrypt"]);
    ks.run(["key", "set-state", "g", "k1", "terminated"]).ok();
    ks.run(["decrypt"]).stdin(sealed).fails(6).says(&["terminated", "decrypt"]);
}

#[test]
fn not_deletable_exits_7() {
    let ks = Ks::with_active_key();
    ks.run(["key", "delete", "g", "k1"]).fails(7).says(&["active"]);
    ks.run(["group", "delete", "g"]).fails(7);
    // prelive keys and terminated keys may go; then the empty group.
    ks.run(["key", "create", "g", "p"]).ok();
    ks.run(["key", "delete", "g", "p"]).ok();
}

#[test]
fn integrity_exits_9_and_decrypt_leaves_no_output_file() {
    let ks = Ks::with_active_key();
    let (src, enc, bad, out) = (ks.file("p"), ks.file("c"), ks.file("bad"), ks.file("out.txt"));
    std::fs::write(&src, noise(2 * 1024 * 1024 + 77, 3)).unwrap();
    ks.run(["encrypt", "-g", "g"]).arg("-i").arg(&src).arg("-o").arg(&enc).ok();

    let mut sealed = std::fs::read(&enc).unwrap();
    let at = sealed.len() - 1000; // in the last chunk: earlier chunks are fine
    sealed[at] ^= 0x40;
    std::fs::write(&bad, &sealed).unwrap();
    ks.run(["decrypt", "-i"]).arg(&bad).arg("-o").arg(&out).fails(9);
    assert!(!out.exists(), "decrypt left a plaintext file behind");

    // Truncated: also refused, and no temporary files left in the directory.
    std::fs::write(&bad, &sealed[..sealed.len() / 2]).unwrap();
    ks.run(["decrypt", "-i"]).arg(&bad).arg("-o").arg(&out).fails(9);
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(ks.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // An existing output file is left as it was when decryption fails.
    std::fs::write(&out, "previous").unwrap();
    ks.run(["decrypt", "-i"]).arg(&bad).arg("-o").arg(&out).fails(9);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
}

#[test]
fn quiesced_exits_10_until_unquiesced() {
    let ks = Ks::with_active_key();
    ks.run(["quiesce"]).ok();
    ks.run(["group", "create", "h"]).fails(10).says(&["quiesced"]);
    ks.run(["key", "set-state", "g", "k1", "inactive"]).fails(10);
    // Reads and data still work.
    ks.run(["key", "list"]).ok();
    let sealed = ks.run(["encrypt", "-g", "g"]).stdin("d").ok().stdout;
    assert_eq!(ks.run(["decrypt"]).stdin(sealed).ok().stdout, b"d");
    assert_eq!(ks.run(["--json", "stats"]).ok().json()["quiesced"], true);
    ks.run(["unquiesce"]).ok();
    ks.run(["group", "create", "h"]).ok();
}

#[test]
fn invalid_arguments_exit_11() {
    let ks = Ks::with_active_key();
    ks.run(["key", "set-state", "g", "k1", "bogus"]).fails(11).says(&["bogus"]);
    ks.run(["key", "list", "--state", "Active!"]).fails(11);
    ks.run(["group", "create", ""]).fails(11).says(&["empty"]);
    ks.run(["group", "create", "h", "--cipher", "DES"]).fails(11).says(&["DES"]);
    ks.run(["key", "create", "g", ""]).fails(11);
    ks.run(["key", "show", "--tag", "not-a-tag"]).fails(11);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'k', 0xff, b'!']);
        ks.run(["key", "create", "g"]).arg(&bad).fails(11).says(&["UTF-8"]);
        ks.run(["group", "create"]).arg(&bad).fails(11).says(&["UTF-8"]);
    }
}

#[test]
fn usage_errors_exit_2() {
    let ks = Ks::new();
    ks.run(["frobnicate"]).fails(2);
    ks.run(["key", "set-state", "g"]).fails(2);
    ks.run(["key", "modify", "g", "k"]).fails(2); // nothing to change
    ks.run(["key", "show", "g", "k", "--tag", "00"]).fails(2);
    bare().arg("stats").fails(2); // no keystore
    bare().arg("--help").ok();
}

#[test]
fn storage_errors_exit_12() {
    let ks = Ks::with_active_key();
    let not_a_dir = ks.file("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    ks.run(["encrypt", "-g", "g", "-o"]).arg(not_a_dir.join("out")).stdin("data").fails(12);
}

// ---- pass phrases -----------------------------------------------------------------------

#[test]
fn passphrase_keystore_reopens_with_the_same_env_and_refuses_a_wrong_one() {
    let ks = Ks::empty();
    let with =
        |cmd: Cmd, hmk: &str, kpk: &str| cmd.env("KEYSTATE_HMK_PASSPHRASE", hmk).env("KEYSTATE_KPK_PASSPHRASE", kpk);
    with(ks.run(["init", "--hmk-passphrase", "--kpk-passphrase"]), "hmk words", "kpk words").ok();
    assert!(!ks.file("keys.db.hmk").exists() && !ks.file("keys.db.kpk").exists(), "no key files for pass phrases");

    with(ks.run(["group", "create", "g"]), "hmk words", "kpk words").ok();
    with(ks.run(["key", "create", "g", "k", "--state", "active"]), "hmk words", "kpk words").ok();
    let sealed = with(ks.run(["encrypt", "-g", "g"]), "hmk words", "kpk words").stdin("x").ok().stdout;
    assert_eq!(with(ks.run(["decrypt"]), "hmk words", "kpk words").stdin(sealed).ok().stdout, b"x");

    with(ks.run(["stats"]), "wrong", "kpk words").fails(8).says(&["HMK"]);
    with(ks.run(["stats"]), "hmk words", "wrong").fails(8).says(&["KPK"]);

    // Without the variables: one line of stdin each, HMK then KPK.
    ks.run(["key", "list"]).stdin("hmk words\nkpk words\n").ok();
    ks.run(["key", "list"]).stdin("wrong\nkpk words\n").fails(8);
    // No variable, no terminal and nothing on stdin: say how to give it.
    ks.run(["key", "list"]).fails(11).says(&["KEYSTATE_HMK_PASSPHRASE"]);
    // Stdin carries the data: the pass phrase must come from the environment.
    ks.run(["encrypt", "-g", "g"]).stdin("hmk words\nkpk words\n").fails(11).says(&["KEYSTATE_HMK_PASSPHRASE"]);
}

#[test]
fn random_keystore_refuses_a_pass_phrase_it_does_not_need() {
    let ks = Ks::new();
    ks.run(["stats"]).env("KEYSTATE_HMK_PASSPHRASE", "x").fails(11).says(&["random key"]);
    // init without --hmk-passphrase while the variable is set: refused, nothing created.
    let other = Ks::empty();
    other.run(["init"]).env("KEYSTATE_HMK_PASSPHRASE", "x").fails(11).says(&["--hmk-passphrase"]);
    assert!(!other.path.exists());
}

#[test]
fn key_passphrase_from_a_stdin_line_and_recovery() {
    let ks = Ks::new();
    ks.run(["group", "create", "g"]).ok();
    let key = ks
        .run(["--json", "key", "create", "g", "pk", "--passphrase", "--state", "active"])
        .stdin("secret\n")
        .ok()
        .json();
    assert_eq!(key["recoverable"], true);
    let tag = key["tag"].as_str().unwrap().to_string();
    let sealed = ks.run(["encrypt", "-g", "g"]).stdin("before deletion").ok().stdout;

    for state in ["inactive", "deprecated", "terminated"] {
        ks.run(["key", "set-state", "g", "pk", state]).ok();
    }
    ks.run(["key", "delete", "g", "pk"]).ok();
    ks.run(["decrypt"]).stdin(sealed.clone()).fails(3);

    // Wrong pass phrase (from the environment, then from stdin): refused with 8.
    ks.run(["key", "recover", "g", "pk", "--tag", &tag]).env("KEYSTATE_PASSPHRASE", "Secret").fails(8);
    ks.run(["key", "recover", "g", "pk", "--tag", &tag]).stdin("nope\n").fails(8);
    // Right one, from stdin: the key is back (inactive by default) and decrypts old data.
    let back = ks.run(["--json", "key", "recover", "g", "pk", "--tag", &tag]).stdin("secret\n").ok().json();
    assert_eq!(back["tag"], tag.as_str());
    assert_eq!(back["state"], "inactive");
    assert_eq!(ks.run(["decrypt"]).stdin(sealed).ok().stdout, b"before deletion");
    // A tag that is still in use cannot be recovered twice.
    ks.run(["key", "recover", "g", "pk2", "--tag", &tag]).env("KEYSTATE_PASSPHRASE", "secret").fails(4);
}

#[test]
fn random_keys_cannot_be_recovered() {
    let ks = Ks::with_active_key();
    let tag = tag_of(&ks, "g", "k1");
    ks.run(["key", "create", "g", "k2", "--state", "active"]).ok();
    for state in ["deprecated", "terminated"] {
        ks.run(["key", "set-state", "g", "k1", state]).ok();
    }
    ks.run(["key", "delete", "g", "k1"]).ok();
    ks.run(["key", "recover", "g", "k1", "--tag", &tag]).env("KEYSTATE_PASSPHRASE", "anything").fails(8);
}

// ---- files and environment ----------------------------------------------------------------

#[cfg(unix)]
#[test]
fn keystore_and_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let ks = Ks::new();
    let text = ks.run(["stats"]).ok().text();
    assert!(text.contains("keys.db"), "{text}");
    for name in ["keys.db", "keys.db.hmk", "keys.db.kpk"] {
        let mode = std::fs::metadata(ks.file(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }
}

#[test]
fn init_says_where_the_key_files_are() {
    let ks = Ks::empty();
    let done = ks.run(["init"]).ok();
    let text = done.text();
    assert!(text.contains("keys.db.hmk") && text.contains("keys.db.kpk"), "{}", done.describe());
    assert!(text.contains("back up"), "{}", done.describe());
}

#[test]
fn keystore_path_from_the_environment() {
    let ks = Ks::empty();
    bare().env("KEYSTATE_KEYSTORE", &ks.path).arg("init").ok();
    bare().env("KEYSTATE_KEYSTORE", &ks.path).args(["group", "create", "g"]).ok();
    let groups = bare().env("KEYSTATE_KEYSTORE", &ks.path).args(["--json", "group", "list"]).ok().json();
    assert_eq!(groups[0]["name"], "g");
    // --keystore wins over the variable.
    let other = Ks::new();
    let groups = other.run(["--json", "group", "list"]).env("KEYSTATE_KEYSTORE", &ks.path).ok().json();
    assert_eq!(groups, serde_json::json!([]));
}

#[test]
fn policy_needs_no_keystore_and_states_the_rules() {
    let text = bare().arg("policy").ok().text();
    assert!(text.contains("prelive") && text.contains("terminated"), "{text}");
    let json = bare().args(["policy", "--json"]).ok().json();
    assert_eq!(json["transitions"]["prelive"], serde_json::json!(["prelive", "active"]));
    assert_eq!(json["transitions"]["inactive"], serde_json::json!(["active", "inactive", "deprecated"]));
    assert_eq!(json["operations"]["active"], serde_json::json!(["encrypt", "decrypt"]));
    assert_eq!(json["operations"]["inactive"], serde_json::json!(["decrypt"]));
    assert_eq!(json["operations"]["deprecated"], serde_json::json!([]));
    assert_eq!(json["operations"]["terminated"], serde_json::json!(["delete"]));
}

#[test]
fn help_documents_the_exit_codes() {
    let text = bare().arg("--help").ok().text();
    for line in ["0  success", "2  usage", "3  not found", "6  key unusable", "9  integrity", "12  storage"] {
        assert!(text.contains(line), "help lacks {line:?}\n{text}");
    }
    assert!(text.contains("KEYSTATE_PASSPHRASE"), "{text}");
}

// ---- administration: audit trail and rotation ------------------------------------------

fn audit_ids(ks: &Ks) -> Vec<String> {
    let conn = rusqlite::Connection::open(&ks.path).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM audit ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn audit_lists_with_filters_and_actor() {
    let ks = Ks::empty();
    ks.run(["--actor", "installer", "init"]).ok();
    ks.run(["--actor", "alice", "group", "create", "g"]).ok();
    ks.run(["key", "create", "g", "k1", "--state", "active"]).env("KEYSTATE_ACTOR", "bob").ok();
    ks.run(["key", "create", "g", "k2", "--state", "active"]).env("KEYSTATE_ACTOR", "bob").ok();
    let all = ks.run(["--json", "audit"]).ok().json();
    let rows: Vec<(String, String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().into(), e["actor"].as_str().unwrap().into(), e["key"].to_string()))
        .collect();
    let want = [
        ("create", "installer", "null"),
        ("create-group", "alice", "null"),
        ("create-key", "bob", "\"k1\""),
        ("create-key", "bob", "\"k2\""),
        ("set-state", "bob", "\"k1\""),
    ];
    assert_eq!(rows, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
    assert_rfc3339(&all[0]["time"]);
    assert_eq!(all[4]["old_state"], "active");
    assert_eq!(all[4]["new_state"], "inactive");
    let k1 = ks.run(["--json", "audit", "--key", "k1"]).ok().json();
    assert_eq!(k1.as_array().unwrap().len(), 2);
    let last = ks.run(["--json", "audit", "--limit", "1", "--action", "create-key"]).ok().json();
    assert_eq!(last[0]["key"], "k2");
    assert_eq!(ks.run(["--json", "audit", "--since", "1h"]).ok().json().as_array().unwrap().len(), 5);
    assert_eq!(ks.run(["--json", "audit", "--since", "2999-01-01"]).ok().json(), serde_json::json!([]));
    ks.run(["audit", "--since", "yesterday-ish"]).fails(11).says(&["--since"]);
    ks.run(["--actor", "bad\u{1}actor", "group", "create", "x"]).fails(11).says(&["actor"]);
    let text = ks.run(["audit"]).ok().text();
    assert!(text.contains("one active key per group") && text.contains("active -> inactive"), "{text}");
    assert_eq!(ks.run(["--json", "stats"]).ok().json()["audit_entries"], 5);
}

#[test]
fn audit_verify_exits_9_naming_an_edited_row() {
    let ks = Ks::with_active_key();
    let intact = ks.run(["--json", "audit", "--verify"]).ok().json();
    assert_eq!(intact["verified"], 3);
    assert_eq!(intact["head_seq"], 3);
    assert_eq!(intact["fault"], Value::Null);
    assert!(ks.run(["audit", "--verify"]).ok().text().contains("intact"));
    let ids = audit_ids(&ks);
    let conn = rusqlite::Connection::open(&ks.path).unwrap();
    conn.execute(
        "UPDATE audit SET body = CAST(substr(body, 1, length(body) - 1) || x'ff' AS BLOB) WHERE id = ?1",
        [&ids[2]],
    )
    .unwrap();
    let done = ks.run(["--json", "audit", "--verify"]).fails(9).says(&["entry 3", "edited", &ids[2]]);
    assert_eq!(done.json()["error"]["code"], "INTEGRITY");
    ks.run(["audit"]).fails(9).says(&["entry 3"]);
    // The keystore itself still works.
    ks.run(["group", "create", "h"]).ok();
}

#[test]
fn rotate_hmk_and_kpk_from_the_command_line() {
    let ks = Ks::with_active_key();
    let ct = ks.file("ct");
    ks.run(["encrypt", "-g", "g", "-o"]).arg(&ct).stdin(b"secret".to_vec()).ok();
    ks.run(["rotate-hmk"]).fails(2);
    ks.run(["rotate-hmk", "--random", "--passphrase"]).fails(2);
    let done =
        ks.run(["--json", "rotate-hmk", "--passphrase", "--id", "hmk-2"]).env("KEYSTATE_NEW_HMK_PASSPHRASE", "h2").ok();
    assert_eq!(done.json()["id"], "hmk-2");
    assert!(!ks.file("keys.db.hmk").exists());
    ks.run(["group", "list"]).env("KEYSTATE_HMK_PASSPHRASE", "wrong").fails(8);
    // The new pass phrase from stdin, after the current one.
    ks.run(["rotate-kpk", "--passphrase"]).env("KEYSTATE_HMK_PASSPHRASE", "h2").stdin(b"k2\n".to_vec()).ok();
    ks.run(["rotate-hmk", "--passphrase-env", "MY_VAR"])
        .env("KEYSTATE_HMK_PASSPHRASE", "h2")
        .env("KEYSTATE_KPK_PASSPHRASE", "k2")
        .env("MY_VAR", "h3")
        .ok();
    let both = |cmd: Cmd| cmd.env("KEYSTATE_HMK_PASSPHRASE", "h3").env("KEYSTATE_KPK_PASSPHRASE", "k2");
    let plain = both(ks.run(["decrypt", "-i"]).arg(&ct)).ok();
    assert_eq!(plain.stdout, b"secret");
    both(ks.run(["rotate-hmk", "--random"])).env("KEYSTATE_HMK_PASSPHRASE", "h3").ok();
    assert!(ks.file("keys.db.hmk").exists());
    let rotations =
        ks.run(["--json", "audit", "--action", "rotate-hmk"]).env("KEYSTATE_KPK_PASSPHRASE", "k2").ok().json();
    assert_eq!(rotations.as_array().unwrap().len(), 3);
    ks.run(["audit", "--verify"]).env("KEYSTATE_KPK_PASSPHRASE", "k2").ok();
    ks.run(["quiesce"]).env("KEYSTATE_KPK_PASSPHRASE", "k2").ok();
    ks.run(["rotate-kpk", "--random"]).env("KEYSTATE_KPK_PASSPHRASE", "k2").fails(10);
}
