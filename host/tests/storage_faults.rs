//! Storage faults: a full disk, a read-only keystore, a database locked past
//! the busy timeout and a keystore file replaced by garbage each give a clear
//! `Storage` or `Integrity` error, and once the fault is gone the keystore
//! holds everything it held before (plus whatever was acknowledged).
//!
//! The full disk and the read-only file must really fail for root (CI runs as
//! root): a small tmpfs, remounted read-only, when mounting is allowed; else a
//! file size limit (RLIMIT_FSIZE, in a child process) and `chattr +i`, or
//! `chmod` for other users. Which way ran is printed; none is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Scratch;
use common::workload::Model;
use keystate::{Cipher, ErrorKind, KeyState, Keystore};

const WORKER_ENV: &str = "KEYSTATE_FAULT_WORKER";

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` when mounting is not allowed (or `KEYSTATE_FAULTS_NO_MOUNT` is
    /// set, to exercise the other ways).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        if std::env::var_os("KEYSTATE_FAULTS_NO_MOUNT").is_some() {
            return None;
        }
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs { dir: dir.to_path_buf() })
    }

    fn remount(&self, option: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,{option}")]).arg(&self.dir).status().unwrap();
        assert!(status.success(), "remount {option} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A keystore with some groups and keys in several states.
fn populated(path: &Path) -> Keystore {
    let ks = Keystore::create(path, None, None).unwrap();
    for g in ["alpha", "beta"] {
        ks.create_group(g, Cipher::Aes256Gcm, "before the fault").unwrap();
        ks.create_key(g, "k1", KeyState::Active, None, "").unwrap();
        ks.create_key(g, "k2", KeyState::Prelive, None, "").unwrap();
        ks.create_key(g, "k3", KeyState::Active, None, "").unwrap();
    }
    ks
}

/// What a fresh handle reads, with no faulty rows.
fn intact(path: &Path) -> Model {
    let ks = Keystore::open(path, None, None).unwrap_or_else(|e| panic!("reopening after the fault: {e}"));
    assert!(ks.faults().unwrap().is_empty(), "faulty rows: {:?}", ks.faults().unwrap());
    Model::read(&ks)
}

/// Mutations with 4 KiB descriptions until one fails; returns the names of
/// the groups acknowledged and the error.
fn fill(ks: &Keystore, limit: usize) -> (Vec<String>, keystate::Error) {
    let description = "x".repeat(4096);
    let mut made = Vec::new();
    for i in 0..limit {
        let name = format!("filler-{i}");
        match ks.create_group(&name, Cipher::Aes256Gcm, &description) {
            Ok(_) => made.push(name),
            Err(e) => return (made, e),
        }
    }
    panic!("{limit} mutations and the storage never failed");
}

fn assert_storage_error(e: &keystate::Error, path: &Path, words: &[&str]) {
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.message().contains(&path.display().to_string()), "the message does not name the keystore: {e}");
    assert!(words.iter().any(|w| e.message().contains(w)), "the message says none of {words:?}: {e}");
}

#[test]
fn full_disk_gives_a_storage_error_and_loses_nothing() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    let s = Scratch::new();
    let mount = s.path("small");
    match Tmpfs::mount(&mount, "1m") {
        Some(fs) => {
            eprintln!("full disk: a 1 MiB tmpfs");
            let path = fs.dir.join("keys.db");
            let ks = populated(&path);
            let before = Model::read(&ks);
            let (made, e) = fill(&ks, 10_000);
            assert_storage_error(&e, &path, &["full"]);
            assert!(!made.is_empty());
            // Reads still work on the full disk, and show the acknowledged groups.
            assert_eq!(ks.groups().unwrap().len(), before.groups.len() + made.len());
            // Make room: the same handle goes on, and nothing was lost.
            fs.remount("size=16m");
            ks.create_group("after-the-fault", Cipher::Aes128Gcm, "").unwrap();
            drop(ks);
            let after = recover_space_and_check(&path, &before, &made);
            eprintln!("full disk: {} mutations acknowledged before it filled; all {after} groups intact", made.len());
        }
        None => {
            eprintln!("full disk: mount not allowed here; a file size limit (RLIMIT_FSIZE) in a child process instead");
            let path = s.path("keys.db");
            let before = Model::read(&populated(&path));
            let out = worker("fsize", &path);
            let made: Vec<String> = out.lines().filter_map(|l| l.strip_prefix("MADE ")).map(str::to_string).collect();
            let error = out.lines().find_map(|l| l.strip_prefix("ERROR ")).expect("the worker saw no error");
            assert!(error.starts_with("Storage "), "{error}");
            assert!(out.lines().any(|l| l == "AFTER ok"), "no mutation succeeded once the limit was lifted:\n{out}");
            recover_space_and_check(&path, &before, &made);
        }
    }
}

/// After the fault: a fresh handle reads everything from before plus every
/// acknowledged group, and a new mutation works.
fn recover_space_and_check(path: &Path, before: &Model, made: &[String]) -> usize {
    let mut after = intact(path);
    for name in made {
        assert!(after.groups.remove(name).is_some(), "acknowledged group {name} was lost");
    }
    after.groups.remove("after-the-fault");
    assert!(before.matches(&after), "data from before the fault changed:\nbefore {before:#?}\nafter {after:#?}");
    let ks = Keystore::open(path, None, None).unwrap();
    ks.delete_group(&made[0]).unwrap();
    ks.create_key("alpha", "k4", KeyState::Active, None, "").unwrap();
    before.groups.len() + made.len()
}

#[test]
fn read_only_keystore_gives_a_storage_error_and_stays_intact() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    let s = Scratch::new();
    let mount = s.path("ro");
    let tmpfs = Tmpfs::mount(&mount, "4m");
    let dir = tmpfs.as_ref().map(|fs| fs.dir.clone()).unwrap_or_else(|| s.dir.path().to_path_buf());
    let path = dir.join("keys.db");
    let before = Model::read(&populated(&path));
    // Closed first: a mount with files open for writing cannot become read-only.
    let how = match &tmpfs {
        Some(fs) => {
            fs.remount("ro");
            "read-only mount"
        }
        None if is_root() => {
            let ok = Command::new("chattr").arg("+i").arg(&path).status().is_ok_and(|s| s.success());
            assert!(ok, "root, but neither mount nor chattr +i works: no way to make a file read-only");
            "chattr +i"
        }
        None => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
            "chmod 0400"
        }
    };
    eprintln!("read-only keystore: {how}");
    // Opening while read-only: either a clear error, or a handle that reads
    // everything and refuses mutations clearly.
    match Keystore::open(&path, None, None) {
        Ok(ro) => {
            eprintln!("read-only keystore: opens, reads, and refuses mutations");
            assert_eq!(Model::read(&ro), before);
            let e = ro.set_state("alpha", "k2", KeyState::Active).unwrap_err();
            assert_storage_error(&e, &path, &["read-only", "readonly", "disk I/O", "unable to open"]);
        }
        Err(e) => {
            eprintln!("read-only keystore: does not open: {e}");
            assert_storage_error(&e, &path, &["read-only", "readonly", "unable to open", "disk I/O"]);
        }
    }
    match &tmpfs {
        Some(fs) => fs.remount("rw"),
        None if is_root() => assert!(Command::new("chattr").arg("-i").arg(&path).status().unwrap().success()),
        None => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    assert_eq!(intact(&path), before);
    let ks = Keystore::open(&path, None, None).unwrap();
    ks.set_state("alpha", "k2", KeyState::Active).unwrap();
    drop(tmpfs);
}

#[test]
fn locked_database_gives_a_storage_error_after_the_busy_timeout() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    let s = Scratch::new();
    let path = s.path("keys.db");
    let before = Model::read(&populated(&path));
    // Another connection takes the write lock and keeps it.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = worker("locked", &path);
    let error = out.lines().find_map(|l| l.strip_prefix("ERROR ")).expect("the worker saw no error");
    assert!(error.starts_with("Storage "), "{error}");
    assert!(error.contains("locked"), "{error}");
    assert!(out.lines().any(|l| l == "READ ok"), "reads must go on while another process writes:\n{out}");
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(intact(&path), before);
    Keystore::open(&path, None, None).unwrap().set_state("beta", "k2", KeyState::Active).unwrap();
}

#[test]
fn keystore_replaced_by_garbage_gives_an_integrity_error() {
    let s = Scratch::new();
    let path = s.path("keys.db");
    let before = Model::read(&populated(&path));
    let backup = s.path("backup.db");
    // A consistent copy (the WAL folded in) to put back afterwards.
    rusqlite::Connection::open(&path).unwrap().execute("VACUUM INTO ?1", [backup.to_str().unwrap()]).unwrap();
    let remove_wal = || {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let garbage: Vec<Vec<u8>> = vec![
        (0..8192).map(|_| rng.u8(..)).collect(),
        b"SQLite format 3\0".iter().copied().chain((0..4080).map(|_| rng.u8(..))).collect(),
        Vec::new(),
        std::fs::read(&backup).unwrap()[..1000].to_vec(),
    ];
    let mut cases = 0;
    for bytes in &garbage {
        remove_wal();
        std::fs::write(&path, bytes).unwrap();
        let e = Keystore::open(&path, None, None)
            .err()
            .unwrap_or_else(|| panic!("garbage of {} bytes opened", bytes.len()));
        assert!(matches!(e.kind(), ErrorKind::Integrity | ErrorKind::Storage), "{e}");
        assert!(e.message().contains(&path.display().to_string()), "{e}");
        cases += 1;
    }
    // Another SQLite database is not a keystore either.
    remove_wal();
    std::fs::remove_file(&path).unwrap();
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
    let e = Keystore::open(&path, None, None).err().expect("a foreign database opened");
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("not a keystate keystore"), "{e}");
    // Put the keystore back: everything is there.
    remove_wal();
    std::fs::copy(&backup, &path).unwrap();
    assert_eq!(intact(&path), before);
    eprintln!("garbage keystore: {} kinds of garbage refused", cases + 1);
}

/// Run a fault in a child process (this binary, on `fault_worker`).
fn worker(fault: &str, path: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["fault_worker", "--exact", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, format!("{fault}|{}", path.display()))
        .env("KEYSTATE_BUSY_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "worker failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn fault_worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let (fault, path) = spec.split_once('|').unwrap();
    let ks = Keystore::open(path, None, None).unwrap();
    println!();
    match fault {
        "fsize" => {
            let used: u64 = ["", "-wal", "-shm"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok())
                .map(|m| m.len())
                .max()
                .unwrap();
            let set = |limit: u64| {
                let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                // SAFETY: plain syscalls on a local struct.
                unsafe {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
                    lim.rlim_cur = limit.min(lim.rlim_max);
                    assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
                }
            };
            set(used + 256 * 1024);
            let (made, e) = fill(&ks, 100_000);
            for name in &made {
                println!("MADE {name}");
            }
            println!("ERROR {:?} {}", e.kind(), e.message());
            set(u64::MAX);
            ks.create_group("after-the-fault", Cipher::Aes128Gcm, "").unwrap();
            println!("AFTER ok");
        }
        "locked" => {
            let e = ks.create_group("blocked", Cipher::Aes256Gcm, "").unwrap_err();
            println!("ERROR {:?} {}", e.kind(), e.message());
            ks.keys(None, None).unwrap();
            println!("READ ok");
        }
        _ => panic!("unknown fault {fault}"),
    }
}
