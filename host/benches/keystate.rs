//! keystate through its Rust host, measured beside what a user would use
//! instead, in the same run: a plain native function for a policy decision,
//! and the `aes-gcm` / `chacha20poly1305` crates natively for the data path.
//! `scripts/bench.sh` runs this with the Python and Node benchmarks and writes
//! BENCHMARKS.md from the results.
//!
//! KEYSTATE_BENCH_SIZES (default `1000,100000`) sets the keystore sizes of the
//! mutation and open benchmarks, e.g. `1000,100000,1000000`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keystate::{Cipher, KeyState, Keystore, Limits, OpenOptions};

use KeyState::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Keys per group when filling a keystore.
const KEYS_PER_GROUP: usize = 1000;

fn policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    // The host asks the component every rule once per process and answers
    // from that table (keystore.rs, `policy_table`).
    g.bench_function("keystate: may an active key encrypt? (allows)", |b| {
        b.iter(|| keystate::allows(black_box(Active), black_box(keystate::Operation::Encrypt)).unwrap())
    });
    g.bench_function("keystate: may an active key encrypt? (allowed_operations, a new Vec)", |b| {
        b.iter(|| keystate::allowed_operations(black_box(Active)).unwrap().contains(&keystate::Operation::Encrypt))
    });
    g.bench_function("keystate: may active become inactive? (can_transition)", |b| {
        b.iter(|| keystate::can_transition(black_box(Active), black_box(Inactive)).unwrap())
    });
    g.bench_function("native: the same rule as a plain Rust call (no sandbox)", |b| {
        use keystate_guest::types::{KeyState as S, Operation as O};
        b.iter(|| keystate_guest::rules::allows(black_box(S::Active), black_box(O::Encrypt)))
    });
    g.finish();
}

/// A keystore of `keys` keys (in groups of KEYS_PER_GROUP, one active each),
/// made once and kept under target/bench-keystores for later runs.
fn filled(keys: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-keystores");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{keys}.db"));
    let done = dir.join(format!("{keys}.done"));
    if done.exists() {
        return path;
    }
    for suffix in ["", "-wal", "-shm", ".hmk", ".kpk"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    eprintln!("filling a keystore with {keys} keys (once; kept in {})", dir.display());
    let ks = Keystore::create(&path, None, None).unwrap();
    // One group per commit: a million single-key commits would take hours.
    for first in (0..keys).step_by(KEYS_PER_GROUP) {
        let group = format!("g{}", first / KEYS_PER_GROUP);
        ks.batch(|b| {
            b.create_group(&group, Cipher::Aes256Gcm, "")?;
            for i in first..keys.min(first + KEYS_PER_GROUP) {
                let state = if i == first { Active } else { Prelive };
                b.create_key(&group, &format!("k{i}"), state, None, "")?;
            }
            Ok(())
        })
        .unwrap();
    }
    drop(ks);
    std::fs::write(done, b"").unwrap();
    path
}

fn sizes() -> Vec<usize> {
    std::env::var("KEYSTATE_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("KEYSTATE_BENCH_SIZES: comma-separated key counts"))
        .collect()
}

fn mutations(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutation");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    for keys in sizes() {
        // A copy: what these benchmarks add must not grow the keystore the
        // open benchmark (and the next run) measures.
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("keys.db");
        let source = filled(keys);
        for suffix in ["", "-wal", ".hmk", ".kpk"] {
            let from = format!("{}{suffix}", source.display());
            if Path::new(&from).exists() {
                std::fs::copy(&from, format!("{}{suffix}", path.display())).unwrap();
            }
        }
        let ks = Keystore::open(&path, None, None).unwrap();
        ks.create_group("bench", Cipher::Aes256Gcm, "").unwrap();
        let mut n = 0u64;
        let mut fresh = move || {
            n += 1;
            format!("b{}-{n}", std::process::id())
        };
        g.bench_function(BenchmarkId::new("create key (random)", keys), |b| {
            b.iter_batched(
                &mut fresh,
                |name| ks.create_key("bench", &name, Prelive, None, "").unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function(BenchmarkId::new("create key (pass phrase, Argon2id)", keys), |b| {
            b.iter_batched(
                &mut fresh,
                |name| ks.create_key("bench", &name, Prelive, Some("correct horse"), "").unwrap(),
                BatchSize::SmallInput,
            )
        });
        // Back and forth between two adjacent states: one persisted change each time.
        let name = fresh();
        ks.create_key("bench", &name, Active, None, "").unwrap();
        ks.set_state("bench", &name, Inactive).unwrap();
        let mut next = Deprecated;
        g.bench_function(BenchmarkId::new("set state", keys), |b| {
            b.iter(|| {
                ks.set_state("bench", &name, next).unwrap();
                next = if next == Deprecated { Inactive } else { Deprecated };
            })
        });
        // Another handle (as another process would) changes a key; this one's
        // next read loads that commit: the cost must follow the commit, not the keystore.
        let other = Keystore::open(&path, None, None).unwrap();
        g.bench_function(BenchmarkId::new("catch up with another handle's set state", keys), |b| {
            b.iter(|| {
                other.set_state("bench", &name, next).unwrap();
                next = if next == Deprecated { Inactive } else { Deprecated };
                ks.key("bench", &name).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("delete key", keys), |b| {
            b.iter_batched(
                || {
                    let name = fresh();
                    ks.create_key("bench", &name, Prelive, None, "").unwrap();
                    name
                },
                |name| ks.delete_key("bench", &name).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    g.sample_size(10);
    for keys in sizes() {
        let path = filled(keys);
        g.bench_function(BenchmarkId::new("open keystore", keys), |b| {
            b.iter(|| Keystore::open(&path, None, None).unwrap())
        });
        record_open_memory(&path, keys);
    }
    g.finish();
}

/// Peak memory of a process that opens the keystore (`keystate stats`), for
/// BENCHMARKS.md: a line in `$KEYSTATE_BENCH_RESULTS` when that is set.
fn record_open_memory(path: &Path, keys: usize) {
    let Some(results) = std::env::var_os("KEYSTATE_BENCH_RESULTS") else { return };
    let stats = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keystate"));
        command.arg("--keystore").arg(path).arg("stats");
        peak_rss_of(&mut command)
    };
    stats(); // the first run may compile the component into the cache
    let peak = stats();
    let line = format!(
        "{{\"suite\": \"rust\", \"case\": \"open: peak memory of a process that opens the keystore (keystate stats)\", \"subject\": \"{keys} keys\", \"peak_rss_bytes\": {peak}}}\n"
    );
    use std::io::Write;
    std::fs::OpenOptions::new().create(true).append(true).open(results).unwrap().write_all(line.as_bytes()).unwrap();
}

/// Runs `command` to its end; its largest resident set, in bytes. Read from
/// /proc while it runs: `getrusage` would report this (large) process's own
/// peak, which a child inherits across fork and exec.
fn peak_rss_of(command: &mut std::process::Command) -> u64 {
    let mut child = command.stdout(std::process::Stdio::null()).spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        let hwm = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        peak = peak.max(hwm.unwrap_or(0) * 1024);
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{command:?}: {status}");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A keystore with an active key in an AES-256-GCM and a ChaCha20-Poly1305 group.
fn data_keystore(dir: &Path) -> PathBuf {
    let path = dir.join("data.db");
    let ks = Keystore::create(&path, None, None).unwrap();
    for (group, cipher) in [("aes", Cipher::Aes256Gcm), ("chacha", Cipher::ChaCha20Poly1305)] {
        ks.create_group(group, cipher, "").unwrap();
        ks.create_key(group, "k", Active, None, "").unwrap();
    }
    path
}

fn data(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = data_keystore(dir.path());
    let cores = Limits::default().workers;
    let handle = |workers: usize| {
        Keystore::open_with(
            &path,
            OpenOptions { limits: Limits { workers, ..Limits::default() }, ..Default::default() },
        )
        .unwrap()
    };
    let one = handle(1);
    let all = handle(cores);
    for size in [KIB, 64 * MIB] {
        let label = if size == KIB { "1 KiB" } else { "64 MiB" };
        let plaintext = vec![0x5au8; size];
        for op in ["encrypt", "decrypt"] {
            let mut g = c.benchmark_group(format!("{op} {label}"));
            g.throughput(Throughput::Bytes(size as u64));
            if size > MIB {
                g.sample_size(10).measurement_time(Duration::from_secs(20));
            }
            for (group, cipher) in [("aes", "AES-256-GCM"), ("chacha", "ChaCha20-Poly1305")] {
                let handles: Vec<(String, &Keystore)> = if size > MIB {
                    vec![("1 sandbox".into(), &one), (format!("{cores} sandboxes"), &all)]
                } else {
                    vec![("1 sandbox".into(), &one)]
                };
                for (how, ks) in handles {
                    let id = format!("keystate {cipher}, {how}");
                    if op == "encrypt" {
                        g.bench_function(&id, |b| b.iter(|| ks.encrypt(group, &plaintext, b"aad").unwrap()));
                    } else {
                        let sealed = ks.encrypt(group, &plaintext, b"aad").unwrap();
                        g.bench_function(&id, |b| b.iter(|| ks.decrypt(&sealed, b"aad").unwrap()));
                    }
                }
            }
            native(&mut g, op, &plaintext);
            g.finish();
        }
    }
}

/// The peers: one AEAD call over the whole buffer, natively (AES-NI where the CPU has it).
fn native(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, op: &str, plaintext: &[u8]) {
    let nonce = [7u8; 12];
    let aes = aes_gcm::Aes256Gcm::new(&[1u8; 32].into());
    let chacha = chacha20poly1305::ChaCha20Poly1305::new(&[1u8; 32].into());
    let mut buf = plaintext.to_vec();
    if op == "encrypt" {
        g.bench_function("native aes-gcm crate, AES-256-GCM", |b| {
            b.iter(|| aes.encrypt_in_place_detached(&nonce.into(), b"aad", &mut buf).unwrap())
        });
        g.bench_function("native chacha20poly1305 crate", |b| {
            b.iter(|| chacha.encrypt_in_place_detached(&nonce.into(), b"aad", &mut buf).unwrap())
        });
    } else {
        // Decrypt = verify the tag and decrypt: time it on a real ciphertext.
        let tag = aes.encrypt_in_place_detached(&nonce.into(), b"aad", &mut buf).unwrap();
        g.bench_function("native aes-gcm crate, AES-256-GCM", |b| {
            b.iter_batched_ref(
                || buf.clone(),
                |ct| aes.decrypt_in_place_detached(&nonce.into(), b"aad", ct, &tag).unwrap(),
                BatchSize::LargeInput,
            )
        });
        let mut buf = plaintext.to_vec();
        let tag = chacha.encrypt_in_place_detached(&nonce.into(), b"aad", &mut buf).unwrap();
        g.bench_function("native chacha20poly1305 crate", |b| {
            b.iter_batched_ref(
                || buf.clone(),
                |ct| chacha.decrypt_in_place_detached(&nonce.into(), b"aad", ct, &tag).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
}

criterion_group!(benches, policy, mutations, open, data);
criterion_main!(benches);
