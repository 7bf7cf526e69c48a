//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

pub mod workload;

use std::path::PathBuf;

use keystate::{Cipher, ErrorKind, KeyState, Keystore};

/// A temporary directory with a keystore path in it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A keystore with random HMK/KPK (key files beside it).
    pub fn keystore(&self) -> (PathBuf, Keystore) {
        let path = self.path("keys.db");
        let ks = Keystore::create(&path, None, None).expect("create keystore");
        (path, ks)
    }
}

/// The error kind of a result that must be an error.
pub fn kind<T>(r: keystate::Result<T>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

/// Group "g" with one key "k" walked to `state`.
pub fn key_in(ks: &Keystore, group: &str, name: &str, state: KeyState) {
    if ks.group(group).is_err() {
        ks.create_group(group, Cipher::Aes256Gcm, "").unwrap();
    }
    ks.create_key(group, name, KeyState::Prelive, None, "").unwrap();
    let path: &[KeyState] = match state {
        KeyState::Prelive => &[],
        KeyState::Active => &[KeyState::Active],
        KeyState::Inactive => &[KeyState::Active, KeyState::Inactive],
        KeyState::Deprecated => &[KeyState::Active, KeyState::Inactive, KeyState::Deprecated],
        KeyState::Terminated => &[KeyState::Active, KeyState::Inactive, KeyState::Deprecated, KeyState::Terminated],
    };
    for &s in path {
        ks.set_state(group, name, s).unwrap();
    }
}
