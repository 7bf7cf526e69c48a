//! Public value types of the API: states, ciphers, operations and the info
//! records. Names and spellings are part of the contract (see DESIGN.md).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};

/// The state of a key record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Prelive,
    Active,
    Inactive,
    Deprecated,
    Terminated,
}

impl KeyState {
    pub const ALL: [KeyState; 5] =
        [KeyState::Prelive, KeyState::Active, KeyState::Inactive, KeyState::Deprecated, KeyState::Terminated];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Prelive => "prelive",
            KeyState::Active => "active",
            KeyState::Inactive => "inactive",
            KeyState::Deprecated => "deprecated",
            KeyState::Terminated => "terminated",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = Error;

    fn from_str(s: &str) -> Result<KeyState> {
        KeyState::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            Error::invalid(format!(
                "unknown key state {s:?}: expected one of prelive, active, inactive, deprecated, terminated"
            ))
        })
    }
}

/// The cipher of a key group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Cipher {
    #[default]
    #[serde(rename = "AES_256_GCM")]
    Aes256Gcm,
    #[serde(rename = "AES_128_GCM")]
    Aes128Gcm,
    /// Several times faster than AES-GCM inside the sandbox (no AES instructions there).
    #[serde(rename = "CHACHA20_POLY1305")]
    ChaCha20Poly1305,
}

impl Cipher {
    pub const ALL: [Cipher; 3] = [Cipher::Aes256Gcm, Cipher::Aes128Gcm, Cipher::ChaCha20Poly1305];

    pub fn as_str(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "AES_256_GCM",
            Cipher::Aes128Gcm => "AES_128_GCM",
            Cipher::ChaCha20Poly1305 => "CHACHA20_POLY1305",
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cipher {
    type Err = Error;

    /// Accepts `AES_256_GCM`, `aes-256-gcm` and the like.
    fn from_str(s: &str) -> Result<Cipher> {
        let norm = s.to_ascii_uppercase().replace('-', "_");
        Cipher::ALL.into_iter().find(|c| c.as_str() == norm).ok_or_else(|| {
            Error::invalid(format!("unknown cipher {s:?}: expected AES_256_GCM, AES_128_GCM or CHACHA20_POLY1305"))
        })
    }
}

/// A use of a key that its state may allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Encrypt,
    Decrypt,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    pub tag: String,
    pub name: String,
    pub cipher: Cipher,
    pub description: String,
    #[serde(serialize_with = "rfc3339")]
    pub created: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub modified: SystemTime,
    pub active_key: Option<String>,
}

/// A key record (never its key material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub tag: String,
    pub name: String,
    pub group: String,
    pub state: KeyState,
    pub description: String,
    #[serde(serialize_with = "rfc3339")]
    pub created: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub modified: SystemTime,
    pub recoverable: bool,
}

/// Counts over a keystore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub groups: u32,
    pub keys: u32,
    /// Keys per state name.
    pub states: std::collections::BTreeMap<&'static str, u32>,
    /// Rows that failed to load (tampered or corrupt); see `Keystore::faults`.
    pub corrupt_rows: u32,
    pub quiesced: bool,
    pub hmk_id: String,
    pub kpk_id: String,
    /// Entries in the audit trail (the sequence number of the last one).
    pub audit_entries: u64,
    pub format_version: u32,
    pub path: String,
}

/// A row that failed to load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowFault {
    pub id: String,
    pub message: String,
}

pub(crate) fn time_from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub(crate) fn millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-12-04T14:46:56.123Z`.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}
