//! Several processes on one keystore file: the one-active rule holds across
//! them, and no process acts on a stale view.
//!
//! The child processes are this test binary itself, started on the
//! `activation_worker` test with `KEYSTATE_TEST_WORKER` set.

mod common;

use std::path::Path;
use std::process::Command;

use common::Scratch;
use keystate::{Cipher, KeyState, Keystore};

const WORKER_ENV: &str = "KEYSTATE_TEST_WORKER";
const ROUNDS: usize = 200;

/// Activate `key` in group "g" `rounds` times (deactivating it first when it
/// is still active), checking after every step that the group never has two
/// active keys. Returns how often the key had been bumped by someone else.
fn activate_repeatedly(ks: &Keystore, key: &str, rounds: usize) -> usize {
    let mut bumped = 0;
    for round in 0..rounds {
        match ks.key("g", key).unwrap().state {
            KeyState::Active => {
                ks.set_state("g", key, KeyState::Inactive).unwrap();
            }
            _ => bumped += 1,
        }
        let info = ks.set_state("g", key, KeyState::Active).unwrap();
        assert_eq!(info.state, KeyState::Active);
        let active = ks.keys(Some("g"), Some(KeyState::Active)).unwrap();
        assert!(active.len() <= 1, "round {round} of {key}: two active keys {active:?}");
        // Leave the other writer a moment: back-to-back writes would starve it.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    bumped
}

/// Wait for the parent's start signal so the workers really overlap.
fn wait_for(go: &Path) {
    let start = std::time::Instant::now();
    while !go.exists() {
        assert!(start.elapsed().as_secs() < 30, "no start signal");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn prepare(path: &Path) {
    let ks = Keystore::create(path, None, None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_key("g", "k1", KeyState::Active, None, "").unwrap();
    ks.create_key("g", "k2", KeyState::Prelive, None, "").unwrap();
    ks.set_state("g", "k2", KeyState::Active).unwrap();
}

fn one_active_at_the_end(path: &Path) {
    let ks = Keystore::open(path, None, None).unwrap();
    let active = ks.keys(Some("g"), Some(KeyState::Active)).unwrap().len();
    let inactive = ks.keys(Some("g"), Some(KeyState::Inactive)).unwrap().len();
    assert!(active <= 1 && active + inactive == 2, "{active} active, {inactive} inactive");
    // The audit chain written by both writers is whole, and it accounts for
    // every activation: entries into active minus entries out of it is the
    // number of active keys now.
    let report = ks.verify_audit().unwrap();
    assert!(report.is_intact(), "{:?}", report.fault);
    let entries = ks.audit(&keystate::AuditFilter::default()).unwrap();
    assert_eq!(entries.len() as u64, report.head_seq);
    let into = entries.iter().filter(|e| e.new_state == Some(KeyState::Active)).count();
    let out_of = entries.iter().filter(|e| e.old_state == Some(KeyState::Active)).count();
    assert_eq!(into - out_of, active, "{into} activations, {out_of} deactivations");
}

/// Run in a child process by the test below; on its own, the same race
/// between two handles (two connections, two sandboxes) in two threads.
#[test]
fn activation_worker() {
    if let Ok(spec) = std::env::var(WORKER_ENV) {
        let (path, key) = spec.split_once('|').expect("path|key");
        let ks = Keystore::open(path, None, None).unwrap();
        std::fs::write(Path::new(path).with_extension(format!("ready-{key}")), b"").unwrap();
        wait_for(&Path::new(path).with_extension("go"));
        let bumped = activate_repeatedly(&ks, key, ROUNDS);
        println!("worker {key} done: {bumped} times bumped by the other");
        return;
    }
    let s = Scratch::new();
    let path = s.path("threads.db");
    prepare(&path);
    std::thread::scope(|scope| {
        for key in ["k1", "k2"] {
            let path = &path;
            scope.spawn(move || {
                let ks = Keystore::open(path, None, None).unwrap();
                let bumped = activate_repeatedly(&ks, key, ROUNDS);
                eprintln!("thread {key}: bumped {bumped}");
            });
        }
    });
    one_active_at_the_end(&path);
}

#[test]
fn two_processes_activating_in_one_group_keep_one_active() {
    let s = Scratch::new();
    let path = s.path("procs.db");
    prepare(&path);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["k1", "k2"]
        .into_iter()
        .map(|key| {
            Command::new(&exe)
                .args(["activation_worker", "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, format!("{}|{key}", path.display()))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for key in ["k1", "k2"] {
        wait_for(&path.with_extension(format!("ready-{key}")));
    }
    std::fs::write(path.with_extension("go"), b"").unwrap();
    let mut total_bumps = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "worker failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let line = stdout.lines().find_map(|l| l.split_once("worker ").map(|(_, r)| r)).expect("worker report");
        total_bumps += line.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse::<usize>().unwrap();
    }
    // Each bump is one process seeing at once what the other committed.
    eprintln!("bumps seen across the two processes: {total_bumps}");
    assert!(total_bumps > 10, "the workers never raced ({total_bumps} bumps)");
    one_active_at_the_end(&path);
}
