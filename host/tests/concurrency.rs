//! Concurrency: N processes x M operations on one keystore file, activating,
//! deactivating and deprecating keys in the same two groups while encrypting
//! and decrypting. Every operation is logged with its result and the storage
//! sequence number it ran against (`Keystore::committed_seq`: for a mutation
//! that changed rows, the number of its own commit). The checker then replays
//! the commits in order on a model of the rule book and proves:
//!
//! - each commit is claimed by exactly one acknowledged mutation (none lost,
//!   none unexplained), and applying it to the model gives what it returned;
//! - at every committed point the model, which is the keystore's state, has at
//!   most one active key per group (and every read a worker made of a group
//!   equals the model at the point it read);
//! - every refusal is what the rules say at the point it was judged, and every
//!   encryption used the key active at its point;
//! - the final state read by a fresh handle is the model's last state.
//!
//! Workers are this test binary, started on `concurrency_worker` with
//! `KEYSTATE_CONCURRENCY_WORKER` set. `KEYSTATE_CONCURRENCY_WORKERS` (default 4)
//! and `KEYSTATE_CONCURRENCY_OPS` (operations per worker, default 400) scale it.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Scratch;
use keystate::{Cipher, ErrorKind, KeyState, Keystore, can_transition};
use serde::{Deserialize, Serialize};

const WORKER_ENV: &str = "KEYSTATE_CONCURRENCY_WORKER";
const GROUPS: [&str; 2] = ["a", "b"];
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// Where the key tag sits in a ciphertext header (docs/format.md).
const TAG_RANGE: std::ops::Range<usize> = 12..28;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Event {
    /// `set_state(group, key, to)`; `error` is the error kind's code, if any.
    Set { group: String, key: String, to: KeyState, returned: Option<KeyState>, error: Option<String>, seq: u64 },
    /// The states of a group's keys, read right after an acknowledged change.
    Read { group: String, states: BTreeMap<String, KeyState>, seq: u64 },
    /// An encryption: the tag of the key it used, or the error.
    Encrypt { group: String, tag: Option<String>, error: Option<String>, seq: u64 },
    /// A decryption of an earlier ciphertext made with `tag`.
    Decrypt { tag: String, error: Option<String>, seq: u64 },
}

impl Event {
    fn seq(&self) -> u64 {
        match self {
            Event::Set { seq, .. }
            | Event::Read { seq, .. }
            | Event::Encrypt { seq, .. }
            | Event::Decrypt { seq, .. } => *seq,
        }
    }
}

/// Key states by (group, key).
type State = BTreeMap<(String, String), KeyState>;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn concurrency_worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let mut parts = spec.split('|');
    let (path, ops, seed) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mut rng = fastrand::Rng::with_seed(seed.parse().unwrap());
    let ks = Keystore::open(path, None, None).unwrap();
    let go = Path::new(path).with_extension("go");
    while !go.exists() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut out = std::io::stdout().lock();
    // A line of its own: the test harness has written "test concurrency_worker ... " before.
    writeln!(out).unwrap();
    let mut log = |event: Event| writeln!(out, "{}", serde_json::to_string(&event).unwrap()).unwrap();
    let mut ciphertexts: Vec<(String, Vec<u8>)> = Vec::new();
    let code = |e: keystate::Error| Some(e.kind().code().to_string());
    for i in 0..ops.parse::<usize>().unwrap() {
        let group = GROUPS[rng.usize(..GROUPS.len())].to_string();
        let key = KEYS[rng.usize(..KEYS.len())].to_string();
        let plaintext = format!("message {i} of {seed}");
        let mut choice = rng.u32(0..100);
        if choice >= 88 && ciphertexts.is_empty() {
            choice = 70; // nothing to decrypt yet: encrypt instead
        }
        match choice {
            0..70 => {
                let to = match rng.u32(0..100) {
                    0..60 => KeyState::Active,
                    60..80 => KeyState::Inactive,
                    _ => KeyState::Deprecated,
                };
                let result = ks.set_state(&group, &key, to);
                let seq = ks.committed_seq();
                let ok = result.is_ok();
                let (returned, error) = match result {
                    Ok(info) => (Some(info.state), None),
                    Err(e) => (None, code(e)),
                };
                log(Event::Set { group: group.clone(), key, to, returned, error, seq });
                if ok {
                    let keys = ks.keys(Some(&group), None).unwrap();
                    let seq = ks.committed_seq();
                    let states = keys.into_iter().map(|k| (k.name, k.state)).collect();
                    log(Event::Read { group, states, seq });
                }
            }
            70..88 => {
                let result = ks.encrypt(&group, plaintext.as_bytes(), b"aad");
                let seq = ks.committed_seq();
                match result {
                    Ok(ct) => {
                        let tag = hex::encode(&ct[TAG_RANGE]);
                        log(Event::Encrypt { group, tag: Some(tag.clone()), error: None, seq });
                        ciphertexts.push((plaintext, ct));
                    }
                    Err(e) => log(Event::Encrypt { group, tag: None, error: code(e), seq }),
                }
            }
            _ => {
                let (plaintext, ct) = &ciphertexts[rng.usize(..ciphertexts.len())];
                let result = ks.decrypt(ct, b"aad");
                let seq = ks.committed_seq();
                let tag = hex::encode(&ct[TAG_RANGE]);
                match result {
                    Ok(p) => {
                        assert_eq!(&p, plaintext.as_bytes());
                        log(Event::Decrypt { tag, error: None, seq });
                    }
                    Err(e) => log(Event::Decrypt { tag, error: code(e), seq }),
                }
            }
        }
    }
}

#[test]
fn concurrent_processes_keep_one_active_and_lose_nothing() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    let workers = env_number("KEYSTATE_CONCURRENCY_WORKERS", 4);
    let ops = env_number("KEYSTATE_CONCURRENCY_OPS", 400);
    let s = Scratch::new();
    let path = s.path("shared.db");
    let mut tags = BTreeMap::new();
    let initial_seq = {
        let ks = Keystore::create(&path, None, None).unwrap();
        for group in GROUPS {
            ks.create_group(group, Cipher::Aes256Gcm, "").unwrap();
            for key in KEYS {
                let info = ks.create_key(group, key, KeyState::Active, None, "").unwrap();
                tags.insert(info.tag, (group.to_string(), key.to_string()));
            }
        }
        ks.committed_seq()
    };
    let initial = read_state(&Keystore::open(&path, None, None).unwrap());
    let seed = fastrand::u64(..);
    eprintln!("concurrency seed {seed}");
    let children: Vec<_> = (0..workers)
        .map(|w| {
            Command::new(std::env::current_exe().unwrap())
                .args(["concurrency_worker", "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, format!("{}|{ops}|{}", path.display(), seed.wrapping_add(w as u64)))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(path.with_extension("go"), b"").unwrap();
    let mut events = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "worker failed:\n{}", String::from_utf8_lossy(&out.stderr));
        events.extend(stdout.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str::<Event>(l).unwrap()));
    }
    let ks = Keystore::open(&path, None, None).unwrap();
    let final_state = read_state(&ks);
    let final_seq = ks.committed_seq();
    let operations = events.iter().filter(|e| !matches!(e, Event::Read { .. })).count();
    assert_eq!(operations, workers * ops, "an operation left no record");

    let states = replay(initial_seq, final_seq, initial, &events);
    assert_eq!(states[&final_seq], final_state, "the final state is not the replay of the acknowledged commits");
    check_observations(&states, &events, &tags);
    let commits = final_seq - initial_seq;
    let refused = events.iter().filter(|e| matches!(e, Event::Set { error: Some(_), .. })).count();
    eprintln!(
        "concurrency: {workers} processes, {operations} operations checked ({commits} commits replayed, \
         {refused} refused state changes, {} reads of a group checked against the model)",
        events.len() - operations
    );
    assert!(commits as usize > workers * ops / 5, "too few commits to prove anything: {commits}");
}

fn read_state(ks: &Keystore) -> State {
    ks.keys(None, None).unwrap().into_iter().map(|k| ((k.group, k.name), k.state)).collect()
}

fn active_in(state: &State, group: &str) -> Vec<String> {
    state.iter().filter(|((g, _), s)| g == group && **s == KeyState::Active).map(|((_, k), _)| k.clone()).collect()
}

/// The model's state after every commit, from the acknowledged state changes
/// in commit order.
fn replay(initial_seq: u64, final_seq: u64, initial: State, events: &[Event]) -> BTreeMap<u64, State> {
    let mut by_seq: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in events {
        assert!((initial_seq..=final_seq).contains(&e.seq()), "{e:?} ran outside the history");
        by_seq.entry(e.seq()).or_default().push(e);
    }
    let mut states = BTreeMap::from([(initial_seq, initial.clone())]);
    let mut state = initial;
    for seq in initial_seq + 1..=final_seq {
        // The commit at `seq` is one acknowledged change, judged at seq - 1.
        // Observations share its number, and so do changes judged right after
        // it that found nothing to do (the key already in the state asked for).
        let mut claims: Vec<(&String, &String, KeyState)> = by_seq
            .get(&seq)
            .into_iter()
            .flatten()
            .filter_map(|e| match e {
                Event::Set { group, key, to, error: None, .. } => Some((group, key, *to)),
                _ => None,
            })
            .collect();
        claims.sort();
        claims.dedup();
        // The commit: a change from seq - 1 after which every other claim is a no-op.
        let outcomes: Vec<State> = claims
            .iter()
            .filter(|(g, k, to)| state[&((*g).clone(), (*k).clone())] != *to)
            .map(|&(group, key, to)| {
                let from = state[&(group.clone(), key.clone())];
                assert!(can_transition(from, to).unwrap(), "commit {seq}: {group}/{key} moved {from} -> {to}");
                apply(&state, group, key, to)
            })
            .filter(|after| claims.iter().all(|(g, k, to)| after[&((*g).clone(), (*k).clone())] == *to))
            .collect();
        assert!(!outcomes.is_empty(), "commit {seq} is explained by no acknowledged change: claims {claims:?}");
        assert!(outcomes.iter().all(|o| *o == outcomes[0]), "commit {seq} is ambiguous: claims {claims:?}");
        state = outcomes[0].clone();
        for g in GROUPS {
            assert!(active_in(&state, g).len() <= 1, "commit {seq}: two active keys in {g}");
        }
        states.insert(seq, state.clone());
    }
    states
}

/// `state` after `group/key` moved to `to` (activation bumps the active key).
fn apply(state: &State, group: &str, key: &str, to: KeyState) -> State {
    let mut after = state.clone();
    if to == KeyState::Active {
        for ((g, _), s) in after.iter_mut() {
            if g == group && *s == KeyState::Active {
                *s = KeyState::Inactive;
            }
        }
    }
    after.insert((group.to_string(), key.to_string()), to);
    after
}

/// Every logged result is what the model says at the point it ran.
fn check_observations(states: &BTreeMap<u64, State>, events: &[Event], tags: &BTreeMap<String, (String, String)>) {
    for e in events {
        let state = &states[&e.seq()];
        let error = |kind: ErrorKind| Some(kind.code().to_string());
        match e {
            Event::Set { group, key, to, returned, error: None, .. } => {
                assert_eq!(returned.as_ref(), Some(to), "{e:?}");
                assert_eq!(state[&(group.clone(), key.clone())], *to, "{e:?}: not in the model at its point");
            }
            Event::Set { group, key, to, error: err, .. } => {
                let from = state[&(group.clone(), key.clone())];
                assert_eq!(*err, error(ErrorKind::InvalidTransition), "{e:?}");
                assert!(!can_transition(from, *to).unwrap(), "{e:?}: refused, but {from} -> {to} is allowed");
            }
            Event::Read { group, states: seen, .. } => {
                let model: BTreeMap<String, KeyState> =
                    state.iter().filter(|((g, _), _)| g == group).map(|((_, k), s)| (k.clone(), *s)).collect();
                assert_eq!(&model, seen, "a read of {group} differs from the committed state at its point");
            }
            Event::Encrypt { group, tag, error: err, .. } => {
                let active = active_in(state, group);
                match tag {
                    Some(tag) => assert_eq!(vec![tags[tag].1.clone()], active, "{e:?}: not the active key"),
                    None => {
                        assert!(active.is_empty(), "{e:?}: refused with an active key");
                        assert_eq!(*err, error(ErrorKind::KeyUnusable), "{e:?}");
                    }
                }
            }
            Event::Decrypt { tag, error: err, .. } => {
                let key_state = state[&tags[tag]];
                let usable = matches!(key_state, KeyState::Active | KeyState::Inactive);
                match err {
                    None => assert!(usable, "{e:?}: decrypted with a {key_state} key"),
                    Some(_) => {
                        assert!(!usable, "{e:?}: refused with a {key_state} key");
                        assert_eq!(*err, error(ErrorKind::KeyUnusable), "{e:?}");
                    }
                }
            }
        }
    }
}
