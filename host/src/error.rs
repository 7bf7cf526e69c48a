//! One error type for the whole host API: a kind per cause and a message that
//! names the objects involved. Bindings map `ErrorKind` once, to exception
//! classes (Python), `.code` strings (Node) and exit codes (CLI).

use std::fmt;

/// What went wrong, one kind per cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No group, key, key tag or keystore of that name.
    NotFound,
    /// A name, tag or keystore file already exists.
    AlreadyExists,
    /// The lifecycle forbids the state change.
    InvalidTransition,
    /// The key's state forbids the use (or the group has no active key).
    KeyUnusable,
    /// Only prelive and terminated keys, and only empty groups, may be deleted.
    NotDeletable,
    /// A pass phrase or key file does not match.
    WrongPassphrase,
    /// Tampered, truncated or corrupt data, rows or files.
    Integrity,
    /// The keystore is quiesced (read-only).
    Quiesced,
    /// A malformed argument.
    InvalidArgument,
    /// The storage failed: disk full, read-only file, database locked too long, I/O error.
    Storage,
    /// The sandboxed component trapped or hit a limit; its instance was rebuilt from storage.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidTransition,
        ErrorKind::KeyUnusable,
        ErrorKind::NotDeletable,
        ErrorKind::WrongPassphrase,
        ErrorKind::Integrity,
        ErrorKind::Quiesced,
        ErrorKind::InvalidArgument,
        ErrorKind::Storage,
        ErrorKind::Internal,
    ];

    /// The stable code, e.g. `KEY_UNUSABLE` (Node's `.code`, the CLI's JSON errors).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::InvalidTransition => "INVALID_TRANSITION",
            ErrorKind::KeyUnusable => "KEY_UNUSABLE",
            ErrorKind::NotDeletable => "NOT_DELETABLE",
            ErrorKind::WrongPassphrase => "WRONG_PASSPHRASE",
            ErrorKind::Integrity => "INTEGRITY",
            ErrorKind::Quiesced => "QUIESCED",
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::Storage => "STORAGE",
            ErrorKind::Internal => "INTERNAL",
        }
    }
}

/// An error from keystate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// A conflict with another writer or a lost connection: the operation can
    /// be run again from a fresh read.
    retryable: bool,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), retryable: false }
    }

    /// Would running the operation again from a fresh read likely succeed?
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    pub(crate) fn retryable(mut self) -> Error {
        self.retryable = true;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn storage(context: &str, e: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Storage, format!("{context}: {e}"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
