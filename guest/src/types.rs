//! Plain Rust types of the model; `lib.rs` maps them to and from the WIT types.

use core::fmt;

/// Key record states, in lifecycle order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
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

    pub fn name(self) -> &'static str {
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
        f.write_str(self.name())
    }
}

/// Uses of a key that its state may allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Encrypt,
    Decrypt,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Encrypt, Operation::Decrypt, Operation::Delete];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Group ciphers. The byte is the cipher's code in the data format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cipher {
    Aes256Gcm,
    Aes128Gcm,
    /// Much faster than AES-GCM inside WebAssembly, which has no AES instructions.
    ChaCha20Poly1305,
}

impl Cipher {
    pub fn code(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::Aes128Gcm => 2,
            Cipher::ChaCha20Poly1305 => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Cipher> {
        match code {
            1 => Some(Cipher::Aes256Gcm),
            2 => Some(Cipher::Aes128Gcm),
            3 => Some(Cipher::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Length in bytes of the cipher's key.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::Aes256Gcm => 32,
            Cipher::Aes128Gcm => 16,
            Cipher::ChaCha20Poly1305 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "AES_256_GCM",
            Cipher::Aes128Gcm => "AES_128_GCM",
            Cipher::ChaCha20Poly1305 => "CHACHA20_POLY1305",
        }
    }
}

/// Every failure, one variant per cause (mirrors the WIT `error` variant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    NotFound(String),
    AlreadyExists(String),
    InvalidTransition(String),
    KeyUnusable(String),
    NotDeletable(String),
    WrongPassphrase(String),
    Integrity(String),
    Quiesced(String),
    InvalidArgument(String),
}

impl Error {
    /// The kind as the WIT case name, e.g. `key-unusable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::AlreadyExists(_) => "already-exists",
            Error::InvalidTransition(_) => "invalid-transition",
            Error::KeyUnusable(_) => "key-unusable",
            Error::NotDeletable(_) => "not-deletable",
            Error::WrongPassphrase(_) => "wrong-passphrase",
            Error::Integrity(_) => "integrity",
            Error::Quiesced(_) => "quiesced",
            Error::InvalidArgument(_) => "invalid-argument",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::InvalidTransition(m)
            | Error::KeyUnusable(m)
            | Error::NotDeletable(m)
            | Error::WrongPassphrase(m)
            | Error::Integrity(m)
            | Error::Quiesced(m)
            | Error::InvalidArgument(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A 128-bit key or group tag, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Tag(pub [u8; 16]);

impl Tag {
    pub fn parse(text: &str) -> Result<Tag> {
        let bad = || Error::InvalidArgument(format!("tag {text:?} is not 32 lowercase hex digits"));
        if text.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(bad)?;
            let lo = hex_digit(pair[1]).ok_or_else(bad)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Tag(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// Where the component gets time and entropy: the host import in wasm, a
/// deterministic stand-in in native tests.
pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> u64;
    /// Fill `buf` with secure random bytes.
    fn fill_random(&self, buf: &mut [u8]);
}
