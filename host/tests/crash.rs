//! Crash safety: a writer process makes a long random stream of mutations on a
//! SQLite keystore and is killed with SIGKILL at random moments, again and
//! again. After each kill a fresh handle must read back exactly what the
//! acknowledged mutations imply (the one in flight at the kill either fully
//! landed or not at all), with no faulty rows, one active key per group, and
//! every probe ciphertext still decrypting while its key is in a decrypting
//! state.
//!
//! The writer is this test binary itself, started on `crash_writer` with
//! `KEYSTATE_CRASH_WORKER` set. `KEYSTATE_CRASH_KILLS` sets the number of
//! kills (default 30); the long run in SECURITY.md uses 1000.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Scratch;
use common::workload::{Deleted, Model, Op, execute};
use keystate::{ErrorKind, KeyState, Keystore};

const WORKER_ENV: &str = "KEYSTATE_CRASH_WORKER";

/// The writer: announce each mutation (`BEGIN`), make it, acknowledge it
/// (`ACK`) once the call returned; after each activation, encrypt a probe.
#[test]
fn crash_writer() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let mut parts = spec.split('|');
    let (path, run, seed) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mut rng = fastrand::Rng::with_seed(seed.parse().unwrap());
    let ks = Keystore::open(path, None, None).unwrap();
    let mut model = Model::read(&ks);
    // Pass phrases of deleted keys, handed down from earlier runs by the parent.
    let mut deleted: Vec<Deleted> = std::env::var("KEYSTATE_CRASH_DELETED")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Deleted {
                group: f.next()?.into(),
                name: f.next()?.into(),
                tag: f.next()?.into(),
                passphrase: f.next()?.into(),
            })
        })
        .collect();
    for line in std::env::var("KEYSTATE_CRASH_PASSPHRASES").unwrap_or_default().lines() {
        let (tag, passphrase) = line.split_once('\t').unwrap();
        PASSPHRASES.with(|p| p.borrow_mut().insert(tag.into(), passphrase.into()));
    }
    let mut counter = 0;
    let mut fresh = |prefix: &str| {
        counter += 1;
        format!("{prefix}{run}-{counter}")
    };
    let mut out = std::io::stdout().lock();
    // A line of its own: the test harness has written "test crash_writer ... " before.
    writeln!(out, "\nREADY").unwrap();
    for _ in 0..100_000 {
        let op = model.next_op(&mut rng, &mut fresh, &deleted);
        writeln!(out, "BEGIN {}", serde_json::to_string(&op).unwrap()).unwrap();
        out.flush().unwrap();
        match execute(&ks, &op) {
            Ok(tag) => {
                writeln!(out, "ACK {}", tag.clone().unwrap_or_default()).unwrap();
                out.flush().unwrap();
                remember_deleted(&op, &model, &mut deleted, &mut out);
                model.apply(&op, tag);
                probe_after(&ks, &op, &model, &mut out);
            }
            Err(e) => {
                writeln!(out, "ERR {:?} {}", e.kind(), e.message()).unwrap();
                out.flush().unwrap();
                panic!("{op:?} failed: {e}");
            }
        }
    }
}

/// Deleting a pass phrase key: tell the parent (and keep for recovery) its
/// tag and pass phrase.
fn remember_deleted(op: &Op, model: &Model, deleted: &mut Vec<Deleted>, out: &mut impl Write) {
    let Op::DeleteKey { group, name } = op else { return };
    let key = &model.groups[group].keys[name];
    let Some(tag) = key.tag.clone() else { return };
    let Some(passphrase) = PASSPHRASES.with(|p| p.borrow().get(&tag).cloned()) else { return };
    let d = Deleted { group: group.clone(), name: name.clone(), tag, passphrase };
    writeln!(out, "DELETED {}\t{}\t{}\t{}", d.group, d.name, d.tag, d.passphrase).unwrap();
    out.flush().unwrap();
    deleted.push(d);
}

thread_local! {
    static PASSPHRASES: std::cell::RefCell<std::collections::BTreeMap<String, String>> = Default::default();
}

/// After an acknowledged mutation that leaves an active key, encrypt a probe
/// naming its tag; remember pass phrases of new keys.
fn probe_after(ks: &Keystore, op: &Op, model: &Model, out: &mut impl Write) {
    let group = match op {
        Op::CreateKey { group, name, passphrase, .. } => {
            if let (Some(p), Some(tag)) = (passphrase, &model.groups[group].keys[name].tag) {
                PASSPHRASES.with(|m| m.borrow_mut().insert(tag.clone(), p.clone()));
                writeln!(out, "PASS {tag}\t{p}").unwrap();
            }
            group
        }
        Op::SetState { group, .. } | Op::RecoverKey { group, .. } => group,
        _ => return,
    };
    let Some((_, key)) = model.groups[group].keys.iter().find(|(_, k)| k.state == KeyState::Active) else { return };
    let tag = key.tag.clone().expect("acknowledged keys have tags");
    let ciphertext = ks.encrypt(group, probe_text(&tag).as_bytes(), b"crash").unwrap();
    writeln!(out, "PROBE {tag} {}", hex::encode(ciphertext)).unwrap();
    out.flush().unwrap();
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::CreateGroup { .. } => "create_group",
        Op::ModifyGroup { .. } => "modify_group",
        Op::DeleteGroup { .. } => "delete_group",
        Op::CreateKey { passphrase: Some(_), .. } => "create_key (pass phrase)",
        Op::CreateKey { .. } => "create_key (random)",
        Op::SetState { state, .. } if state == "active" => "activate",
        Op::SetState { .. } => "set_state (other)",
        Op::ModifyKey { .. } => "modify_key",
        Op::DeleteKey { .. } => "delete_key",
        Op::RecoverKey { .. } => "recover_key",
    }
}

fn probe_text(tag: &str) -> String {
    format!("probe of {tag}")
}

/// What the parent learned from one writer run.
#[derive(Default)]
struct RunLog {
    acknowledged: Vec<(Op, Option<String>)>,
    in_flight: Option<Op>,
}

fn kills() -> usize {
    std::env::var("KEYSTATE_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(30)
}

#[test]
fn killed_writers_lose_nothing_and_leave_nothing_half_done() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    let s = Scratch::new();
    let path = s.path("crash.db");
    drop(Keystore::create(&path, None, None).unwrap());
    let seed =
        std::env::var("KEYSTATE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash harness seed {seed} (KEYSTATE_CRASH_SEED to repeat the workload)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut expected = Model::default();
    let mut probes: Vec<(String, Vec<u8>)> = Vec::new();
    let mut passphrases = String::new();
    let mut deleted = String::new();
    let (mut verified, mut landed, mut not_landed, mut probes_checked) = (0usize, 0usize, 0usize, 0usize);
    let total = kills();
    let mut kinds = std::collections::BTreeMap::new();
    for run in 0..total {
        let deleted_before = deleted.clone();
        let probes_before = probes.len();
        let log = run_and_kill(
            &path,
            run,
            rng.u64(..),
            &mut rng,
            &deleted_before,
            &mut probes,
            &mut passphrases,
            &mut deleted,
        );
        let ks = Keystore::open(&path, None, None).unwrap_or_else(|e| panic!("after kill {run}: open failed: {e}"));
        assert!(ks.faults().unwrap().is_empty(), "after kill {run}: faulty rows {:?}", ks.faults().unwrap());
        assert_eq!(ks.stats().unwrap().corrupt_rows, 0);
        let actual = Model::read(&ks);
        for (op, tag) in &log.acknowledged {
            expected.apply(op, tag.clone());
        }
        verified += log.acknowledged.len();
        if expected.matches(&actual) {
            not_landed += log.in_flight.is_some() as usize;
        } else {
            let op = log.in_flight.as_ref().unwrap_or_else(|| {
                panic!("after kill {run}: state differs from the acknowledged mutations\nexpected {expected:#?}\nactual {actual:#?}")
            });
            let mut with_op = expected.clone();
            with_op.apply(op, None);
            assert!(
                with_op.matches(&actual),
                "after kill {run}: state is neither before nor after the in-flight {op:?}\nbefore {expected:#?}\nactual {actual:#?}"
            );
            landed += 1;
        }
        expected = actual;
        // Probes of this run, and a sample of older ones (all of them would make
        // long runs quadratic).
        let (old, new) = probes.split_at(probes_before);
        let sample: Vec<(String, Vec<u8>)> =
            new.iter().cloned().chain(rng.choose_multiple(old.iter().cloned(), 200)).collect();
        probes_checked += check_probes(&ks, &expected, &sample, run);
        for (op, _) in &log.acknowledged {
            *kinds.entry(op_name(op)).or_insert(0usize) += 1;
        }
    }
    eprintln!(
        "crash safety: {total} kills survived, {verified} acknowledged mutations verified, \
         in-flight mutation landed whole {landed} times and not at all {not_landed} times, \
         {probes_checked} probe decryptions checked; acknowledged: {kinds:?}"
    );
    assert!(verified >= total, "the writers made too little progress to test anything ({verified} mutations)");
}

/// Start a writer, let it run a random while, kill it, and collect its lines.
#[allow(clippy::too_many_arguments)]
fn run_and_kill(
    path: &Path,
    run: usize,
    seed: u64,
    rng: &mut fastrand::Rng,
    deleted_in: &str,
    probes: &mut Vec<(String, Vec<u8>)>,
    passphrases: &mut String,
    deleted_out: &mut String,
) -> RunLog {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, format!("{}|{run}|{seed}", path.display()))
        .env("KEYSTATE_CRASH_DELETED", deleted_in)
        .env("KEYSTATE_CRASH_PASSPHRASES", passphrases.as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut collected = Vec::new();
    loop {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("the writer did not start");
        let ready = line == "READY";
        collected.push(line);
        if ready {
            break;
        }
    }
    // Most kills land mid-stream; some right after start, some after a long run.
    let delay = match rng.u32(0..10) {
        0 => rng.u64(0..20),
        1..=7 => rng.u64(20..400),
        _ => rng.u64(400..1500),
    };
    std::thread::sleep(Duration::from_millis(delay));
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    reader.join().unwrap();
    collected.extend(lines.try_iter());
    assert!(!status.success() || collected.len() > 1, "writer {run} ended on its own: {status}");

    let mut log = RunLog::default();
    for line in &collected {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "READY" => {}
            "BEGIN" => log.in_flight = Some(serde_json::from_str(rest).unwrap()),
            "ACK" => {
                let op = log.in_flight.take().expect("ACK without BEGIN");
                log.acknowledged.push((op, (!rest.is_empty()).then(|| rest.to_string())));
            }
            "PROBE" => {
                let (tag, hex) = rest.split_once(' ').unwrap();
                probes.push((tag.to_string(), hex::decode(hex).unwrap()));
            }
            "PASS" => {
                passphrases.push_str(rest);
                passphrases.push('\n');
            }
            "DELETED" => {
                deleted_out.push_str(rest);
                deleted_out.push('\n');
            }
            "ERR" => panic!("writer {run}: a mutation the rules allow failed: {rest}"),
            _ => {} // a line cut short by the kill
        }
    }
    log
}

/// Every probe decrypts while its key exists in a state allowing decryption,
/// and is refused with the right kind otherwise.
fn check_probes(ks: &Keystore, model: &Model, probes: &[(String, Vec<u8>)], run: usize) -> usize {
    let states: std::collections::BTreeMap<&str, KeyState> =
        model.groups.values().flat_map(|g| g.keys.values()).map(|k| (k.tag.as_deref().unwrap(), k.state)).collect();
    for (tag, ciphertext) in probes {
        let result = ks.decrypt(ciphertext, b"crash");
        match states.get(tag.as_str()) {
            Some(KeyState::Active | KeyState::Inactive) => {
                let plain = result.unwrap_or_else(|e| panic!("after kill {run}: probe of {tag} does not decrypt: {e}"));
                assert_eq!(plain, probe_text(tag).as_bytes());
            }
            Some(_) => assert_eq!(result.unwrap_err().kind(), ErrorKind::KeyUnusable, "probe of {tag}"),
            None => assert_eq!(result.unwrap_err().kind(), ErrorKind::NotFound, "probe of {tag}"),
        }
    }
    probes.len()
}
