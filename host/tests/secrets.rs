//! Secrets hygiene on the host side:
//!
//! - no heap block freed by the host still holds a pass phrase or a key file's
//!   key: a global allocator looks into every block as it is freed (it still
//!   owns it then, so reading is sound) and records what it finds;
//! - error messages and `Debug` output never show a pass phrase;
//! - the CLI has no option or argument that takes a secret value;
//! - keystores, their -wal/-shm files and key files are created 0600.
//!
//! (The guest's own copies live in its linear memory, which wasmtime maps
//! outside this allocator; the guest wraps them in `Zeroizing`.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::Scratch;
use keystate::{Cipher, KeyState, Keystore};

/// Every pass phrase in this file starts with this, and nothing else holds it.
const MARKER: &[u8] = b"zz-secret-";
const SLOTS: usize = 512;

/// Looks into freed blocks for pass phrases (`MARKER`) and for runs of 64
/// hex digits (a key file's key), copying the runs into fixed slots: it never
/// allocates.
struct Inspecting {
    on: AtomicBool,
    markers: AtomicUsize,
    runs: AtomicUsize,
}

static mut RUNS: [[u8; 64]; SLOTS] = [[0; 64]; SLOTS];

#[global_allocator]
static ALLOCATOR: Inspecting =
    Inspecting { on: AtomicBool::new(false), markers: AtomicUsize::new(0), runs: AtomicUsize::new(0) };

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.on.load(Ordering::Relaxed) {
            // SAFETY: the block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            self.inspect(block);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

impl Inspecting {
    fn inspect(&self, block: &[u8]) {
        if block.windows(MARKER.len()).any(|w| w == MARKER) {
            self.markers.fetch_add(1, Ordering::Relaxed);
        }
        let mut run = 0;
        for (i, b) in block.iter().enumerate() {
            run = if b.is_ascii_digit() || (b'a'..=b'f').contains(b) { run + 1 } else { 0 };
            if run == 64 {
                let slot = self.runs.fetch_add(1, Ordering::Relaxed);
                if slot < SLOTS {
                    // SAFETY: each slot index is handed out once.
                    unsafe { (*std::ptr::addr_of_mut!(RUNS))[slot].copy_from_slice(&block[i + 1 - 64..=i]) };
                }
            }
        }
    }
}

/// One test at a time in this binary: the allocator's record and the umask are global.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn freed_host_memory_holds_no_pass_phrase_or_key() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = Scratch::new();
    let with_phrases = s.path("phrases.db");
    let with_files = s.path("files.db");
    ALLOCATOR.on.store(true, Ordering::SeqCst);
    {
        let ks = Keystore::create(&with_phrases, Some("zz-secret-hmk-1"), Some("zz-secret-kpk-1")).unwrap();
        ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
        let key = ks.create_key("g", "pk", KeyState::Active, Some("zz-secret-key-1"), "").unwrap();
        let sealed = ks.encrypt("g", b"data", b"").unwrap();
        ks.set_state("g", "pk", KeyState::Inactive).unwrap();
        ks.set_state("g", "pk", KeyState::Deprecated).unwrap();
        ks.set_state("g", "pk", KeyState::Terminated).unwrap();
        ks.delete_key("g", "pk").unwrap();
        assert!(ks.recover_key("g", "pk", &key.tag, "zz-secret-wrong", KeyState::Inactive).is_err());
        ks.recover_key("g", "pk", &key.tag, "zz-secret-key-1", KeyState::Inactive).unwrap();
        assert_eq!(ks.decrypt(&sealed, b"").unwrap(), b"data");
        drop(ks);
        assert!(Keystore::open(&with_phrases, Some("zz-secret-wrong"), Some("zz-secret-kpk-1")).is_err());
        let ks = Keystore::open(&with_phrases, Some("zz-secret-hmk-1"), Some("zz-secret-kpk-1")).unwrap();
        assert_eq!(ks.keys(None, None).unwrap().len(), 1);
        drop(ks);
        let ks = Keystore::create(&with_files, None, None).unwrap();
        ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
        drop(ks);
        let ks = Keystore::open(&with_files, None, None).unwrap();
        ks.groups().unwrap();
    }
    ALLOCATOR.on.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCATOR.markers.load(Ordering::SeqCst), 0, "a freed block held a pass phrase");
    let runs = ALLOCATOR.runs.load(Ordering::SeqCst).min(SLOTS);
    for ext in ["hmk", "kpk"] {
        let key = std::fs::read(format!("{}.{ext}", with_files.display())).unwrap();
        let key = &key[..64];
        // SAFETY: the allocator is off; nothing writes the slots any more.
        let found = (0..runs).any(|i| unsafe { &(*std::ptr::addr_of!(RUNS))[i] } == key);
        assert!(!found, "a freed block held the {ext} key file's key");
    }
}

/// The inspection itself finds what is left behind (so the test above can fail).
#[test]
fn the_inspection_sees_a_pass_phrase_left_in_freed_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = ALLOCATOR.markers.load(Ordering::SeqCst);
    ALLOCATOR.on.store(true, Ordering::SeqCst);
    let phrase = |rest: &str| {
        let mut s = String::with_capacity(64); // no reallocation, so no freed copy
        s.push_str(std::str::from_utf8(MARKER).unwrap());
        s.push_str(rest);
        s
    };
    drop(std::hint::black_box(phrase("left behind")));
    drop(std::hint::black_box(zeroize::Zeroizing::new(phrase("wiped"))));
    let runs = ALLOCATOR.runs.load(Ordering::SeqCst);
    drop(std::hint::black_box("0123456789abcdef".repeat(4)));
    ALLOCATOR.on.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCATOR.markers.load(Ordering::SeqCst) - before, 1);
    assert_eq!(ALLOCATOR.runs.load(Ordering::SeqCst) - runs, 1);
}

#[test]
fn wrong_pass_phrases_never_show_in_errors() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = Scratch::new();
    let path = s.path("k.db");
    let ks = Keystore::create(&path, Some("zz-secret-hmk-2"), Some("zz-secret-kpk-2")).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    let key = ks.create_key("g", "pk", KeyState::Prelive, Some("zz-secret-key-2"), "").unwrap();
    ks.delete_key("g", "pk").unwrap();
    let errors = [
        Keystore::open(&path, Some("zz-secret-wrong-hmk"), Some("zz-secret-kpk-2")).err().unwrap(),
        Keystore::open(&path, Some("zz-secret-hmk-2"), Some("zz-secret-wrong-kpk")).err().unwrap(),
        ks.recover_key("g", "pk", &key.tag, "zz-secret-wrong-key", KeyState::Inactive).unwrap_err(),
    ];
    for e in &errors {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("zz-secret"), "an error shows a pass phrase: {text}");
        }
    }
    // Through the CLI: the wrong pass phrase from the environment is not echoed.
    let out = Command::new(env!("CARGO_BIN_EXE_keystate"))
        .args(["--keystore"])
        .arg(&path)
        .args(["group", "list"])
        .env("KEYSTATE_HMK_PASSPHRASE", "zz-secret-wrong-hmk")
        .env("KEYSTATE_KPK_PASSPHRASE", "zz-secret-kpk-2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = [out.stdout, out.stderr].concat();
    assert!(!String::from_utf8_lossy(&printed).contains("zz-secret"), "the CLI printed a pass phrase");
}

/// Every option of every command, from the help: none whose name speaks of a
/// pass phrase, password, secret or key material takes a value.
#[test]
fn the_cli_takes_no_secret_on_the_command_line() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let bin = env!("CARGO_BIN_EXE_keystate");
    let mut pending = vec![Vec::<String>::new()];
    let (mut commands, mut options) = (0, 0);
    while let Some(path) = pending.pop() {
        let out = Command::new(bin).args(&path).arg("--help").output().unwrap();
        assert!(out.status.success(), "{path:?} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        commands += 1;
        let mut section = "";
        for line in help.lines() {
            if !line.starts_with(' ') {
                section = line.trim_end_matches(':');
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match section {
                "Commands" if words.first().is_some_and(|w| *w != "help") => {
                    pending.push(path.iter().cloned().chain([words[0].to_string()]).collect());
                }
                "Options" | "Arguments" => {
                    let Some(flag) =
                        words.iter().find(|w| w.starts_with("--") || w.starts_with('<') || w.starts_with('['))
                    else {
                        continue;
                    };
                    options += 1;
                    let name = flag.to_lowercase();
                    let takes_value = line.contains(" <") || flag.starts_with('<') || flag.starts_with('[');
                    let secret = ["pass", "secret", "password", "material", "pin"].iter().any(|w| name.contains(w));
                    assert!(
                        !(secret && takes_value),
                        "`keystate {}` takes a secret on the command line: {line}",
                        path.join(" ")
                    );
                }
                _ => {}
            }
        }
    }
    eprintln!("CLI: {commands} commands and {options} options and arguments checked");
    assert!(commands > 10 && options > 30);
}

#[test]
fn keystore_and_key_files_are_private() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = Scratch::new();
    // A umask that would let everyone read: the files must still be 0600.
    // SAFETY: umask has no preconditions; this process only.
    let old = unsafe { libc::umask(0o000) };
    let path = s.path("private.db");
    let ks = Keystore::create(&path, None, None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    let mut checked = Vec::new();
    for suffix in ["", "-wal", "-shm", ".hmk", ".kpk"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{file}: {e}")).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
        checked.push(file);
    }
    // An encrypted file written by the API is private too.
    let plain = s.path("plain.txt");
    std::fs::write(&plain, b"data").unwrap();
    let sealed = s.path("sealed.bin");
    ks.create_key("g", "k", KeyState::Active, None, "").unwrap();
    ks.encrypt_file("g", &plain, &sealed, b"").unwrap();
    let decrypted = s.path("decrypted.txt");
    ks.decrypt_file(&sealed, &decrypted, b"").unwrap();
    unsafe { libc::umask(old) };
    let mode = std::fs::metadata(&decrypted).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "decrypted output is readable by others: {mode:o}");
}
