//! The conformance vectors (`tests/vectors/*.json`) replayed through the real
//! component with the deterministic clock and entropy they were made with,
//! compared value for value and byte for byte. A change in anything the
//! component returns (a ciphertext, a sealed row, a message, a time) fails
//! here until the vectors are regenerated on purpose:
//!
//! ```sh
//! KEYSTATE_REGENERATE_VECTORS=1 cargo test -p keystate --test vectors
//! ```
//!
//! The format, the value encoding and the deterministic host environment are
//! documented in `tests/vectors/README.md`; the generator is `vectors/generate.rs`.

#[path = "vectors/generate.rs"]
mod generate;

use std::path::PathBuf;

use keystate::raw::{HostEnv, Instance, VectorEnv};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The vector folder at the repository's root.
fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// The deterministic host environment of a script, from its `"env"` object
/// (README: "The host environment"; the type is [`keystate::raw::VectorEnv`]).
pub fn env_from_json(env: &Value) -> VectorEnv {
    let num = |k: &str| env[k].as_u64().unwrap_or_else(|| panic!("env.{k} is not a number: {env}"));
    let seed = hex::decode(env["seed"].as_str().expect("env.seed is a hex string")).expect("env.seed is hex");
    VectorEnv::new(&seed, num("clock-start"), num("clock-step"))
}

/// The known answer the README gives, so a foreign host can check its own
/// implementation of the stream before replaying anything.
#[test]
fn deterministic_environment_known_answer() {
    let mut env = VectorEnv::new(b"keystate", 1_700_000_000_000, 1000);
    assert_eq!([env.now(), env.now(), env.now()], [1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000]);
    let mut a = [0u8; 5];
    let mut b = [0u8; 35];
    env.fill(&mut a).unwrap();
    env.fill(&mut b).unwrap();
    let stream = [a.as_slice(), b.as_slice()].concat();
    let block0 = Sha256::digest([b"keystate".as_slice(), &0u64.to_le_bytes()].concat());
    let block1 = Sha256::digest([b"keystate".as_slice(), &1u64.to_le_bytes()].concat());
    assert_eq!(&stream[..32], block0.as_slice());
    assert_eq!(&stream[32..], &block1[..8]);
    assert_eq!(
        hex::encode(&stream),
        "9cf62882cd419efaba0fe965aac83e846adae8636a48643523b9e804ebe4f4686e6728f4fa93a35f",
        "the README's known answer"
    );
}

/// Replay one vector file; every mismatch is reported, one per script.
fn replay(file: &str) {
    if regenerating() {
        eprintln!("{file}: not replayed while the vectors are being regenerated; run the tests again");
        return;
    }
    let path = vector_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let scripts = doc["scripts"].as_array().unwrap_or_else(|| panic!("{file}: no scripts"));
    assert!(!scripts.is_empty(), "{file}: no scripts");
    let mut failures = Vec::new();
    let mut steps_run = 0;
    for script in scripts {
        let name = script["name"].as_str().unwrap_or("?");
        let mut instance = Instance::new(env_from_json(&script["env"])).expect("instantiate the component");
        for (i, step) in script["steps"].as_array().expect("steps").iter().enumerate() {
            let call = step["call"].as_str().expect("step.call");
            steps_run += 1;
            let got = match instance.call(call, &step["args"]) {
                Ok(v) => v,
                Err(e) => json!({ "call failed": e.to_string() }),
            };
            if got != step["expect"] {
                failures.push(format!(
                    "{file}: script {name:?}, step {i} ({call}){}\n  args:     {}\n  expected: {}\n  got:      {}",
                    step.get("note").and_then(Value::as_str).map(|n| format!(" [{n}]")).unwrap_or_default(),
                    step["args"],
                    step["expect"],
                    got
                ));
                break; // later steps depend on this one
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts drifted from the vectors. If the change is intended, regenerate with\n  \
         KEYSTATE_REGENERATE_VECTORS=1 cargo test -p keystate --test vectors\n\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n\n")
    );
    assert!(steps_run > 0, "{file}: no steps");
}

#[test]
fn policy_vectors() {
    replay("policy.json");
}

#[test]
fn lifecycle_vectors() {
    replay("lifecycle.json");
}

#[test]
fn passphrase_vectors() {
    replay("passphrase.json");
}

#[test]
fn data_vectors() {
    replay("data.json");
}

#[test]
fn tamper_vectors() {
    replay("tamper.json");
}

#[test]
fn rows_vectors() {
    replay("rows.json");
}

#[test]
fn admin_vectors() {
    replay("admin.json");
}

/// `functions.json` is the component's own export table (foreign runners
/// convert values with it).
#[test]
fn functions_table_matches_the_component() {
    let table = keystate::raw::functions().unwrap();
    check_or_write("functions.json", &table);
    for name in ["policy.can-transition", "keystore.create-key", "keystore.[method]encryptor.update"] {
        assert!(table.get(name).is_some(), "{name} is not in the export table");
    }
}

/// The committed vectors are exactly what the generator makes from the
/// component now; with `KEYSTATE_REGENERATE_VECTORS=1` it rewrites them.
#[test]
fn vectors_are_what_the_generator_makes() {
    for (file, doc) in generate::all() {
        check_or_write(file, &doc);
    }
}

fn regenerating() -> bool {
    std::env::var_os("KEYSTATE_REGENERATE_VECTORS").is_some_and(|v| v == "1")
}

fn check_or_write(file: &str, doc: &Value) {
    let path = vector_dir().join(file);
    let text = serde_json::to_string_pretty(doc).unwrap() + "\n";
    if regenerating() {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is not what the generator makes now (missing, edited by hand, or the generator or the component \
         changed). Regenerate with\n  KEYSTATE_REGENERATE_VECTORS=1 cargo test -p keystate --test vectors",
        path.display()
    );
}

#[test]
fn every_vector_file_is_replayed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(vector_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && n != "functions.json")
        .collect();
    on_disk.sort();
    let mut known: Vec<String> = generate::FILES.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(on_disk, known, "a vector file that no test replays, or one the generator does not write");
}
