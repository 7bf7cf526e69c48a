//! keystate: an embeddable key management service.
//!
//! Key groups and key records with the lifecycle of an enterprise backup KMS
//! (prelive, active, inactive, deprecated, terminated), pass phrase keys that
//! can be recovered, and authenticated, chunked encryption of data at rest.
//! Every rule and all the crypto run inside a sandboxed WebAssembly component
//! (built from `guest/`, contract in `wit/keystate.wit`); this crate hosts it
//! with wasmtime and stores its sealed rows in SQLite.
//!
//! ```no_run
//! use keystate::{Cipher, Keystore, KeyState};
//! let ks = Keystore::create("keys.db", None, None)?; // random HMK/KPK in key files
//! ks.create_group("backups", Cipher::Aes256Gcm, "nightly")?;
//! ks.create_key("backups", "k1", KeyState::Active, None, "")?;
//! let sealed = ks.encrypt("backups", b"data", b"image-17")?;
//! assert_eq!(ks.decrypt(&sealed, b"image-17")?, b"data");
//! # Ok::<(), keystate::Error>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod admin;
mod atomic_file;
mod error;
mod keyfile;
mod keystore;
pub mod raw;
mod sandbox;
mod spread;
mod storage;
mod transfer;
mod types;

pub use admin::{AuditEntry, AuditFault, AuditFilter, AuditProblem, AuditReport, NewKey, default_actor};
pub use atomic_file::write_atomically;
pub use error::{Error, ErrorKind, Result};
pub use keystore::{
    Applied, Batch, CreateOptions, Keystore, KeystoreInfo, Mutation, OpenOptions, Protection, allowed_operations,
    allows, can_transition, inspect,
};
pub use sandbox::{COMPONENT, Limits, component_imports};
pub use transfer::{ImportOptions, ImportReport, ImportedGroup, ImportedKey, Skip, SkipReason};
pub use types::{Cipher, GroupInfo, KeyInfo, KeyState, Operation, RowFault, Stats, format_time};
