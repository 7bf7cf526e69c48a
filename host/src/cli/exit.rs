//! The exit codes of `keystate`: one per error kind, in one enum with one
//! mapping. Scripts may rely on these numbers; `keystate --help` prints them.

use keystate::ErrorKind;

/// How the process ends. The numbers are part of the CLI's contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The command did what it was asked.
    Success = 0,
    /// Unexpected failure inside keystate (a bug, or the sandbox trapped).
    Internal = 1,
    /// The command line is malformed (clap's own errors, `--help` aside).
    Usage = 2,
    /// No such group, key, key tag, keystore or input file.
    NotFound = 3,
    /// The name, tag or keystore already exists.
    AlreadyExists = 4,
    /// The lifecycle forbids that state change.
    InvalidTransition = 5,
    /// The key's state forbids the operation, or the group has no active key.
    KeyUnusable = 6,
    /// Only prelive or terminated keys, and empty groups, may be deleted.
    NotDeletable = 7,
    /// A pass phrase or key file does not match.
    WrongPassphrase = 8,
    /// Tampered, truncated or corrupt data, or the wrong associated data.
    Integrity = 9,
    /// The keystore is quiesced (read-only).
    Quiesced = 10,
    /// A malformed argument: bad state or cipher name, empty or non-UTF-8 name, ...
    InvalidArgument = 11,
    /// Storage or I/O failed: disk full, unwritable file, locked database.
    Storage = 12,
}

impl ExitCode {
    pub const ALL: [ExitCode; 13] = [
        ExitCode::Success,
        ExitCode::Internal,
        ExitCode::Usage,
        ExitCode::NotFound,
        ExitCode::AlreadyExists,
        ExitCode::InvalidTransition,
        ExitCode::KeyUnusable,
        ExitCode::NotDeletable,
        ExitCode::WrongPassphrase,
        ExitCode::Integrity,
        ExitCode::Quiesced,
        ExitCode::InvalidArgument,
        ExitCode::Storage,
    ];

    /// The exit code of a failure of that kind: THE mapping.
    pub fn of(kind: ErrorKind) -> ExitCode {
        match kind {
            ErrorKind::NotFound => ExitCode::NotFound,
            ErrorKind::AlreadyExists => ExitCode::AlreadyExists,
            ErrorKind::InvalidTransition => ExitCode::InvalidTransition,
            ErrorKind::KeyUnusable => ExitCode::KeyUnusable,
            ErrorKind::NotDeletable => ExitCode::NotDeletable,
            ErrorKind::WrongPassphrase => ExitCode::WrongPassphrase,
            ErrorKind::Integrity => ExitCode::Integrity,
            ErrorKind::Quiesced => ExitCode::Quiesced,
            ErrorKind::InvalidArgument => ExitCode::InvalidArgument,
            ErrorKind::Storage => ExitCode::Storage,
            ErrorKind::Internal => ExitCode::Internal,
            // ErrorKind is non-exhaustive: a kind added later is unexpected here.
            _ => ExitCode::Internal,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, for the help text.
    fn meaning(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Internal => "internal error (a bug: please report it)",
            ExitCode::Usage => "usage: the command line is malformed",
            ExitCode::NotFound => "not found: no such group, key, tag, keystore or file",
            ExitCode::AlreadyExists => "already exists",
            ExitCode::InvalidTransition => "invalid state transition",
            ExitCode::KeyUnusable => "key unusable: its state forbids the operation",
            ExitCode::NotDeletable => "not deletable",
            ExitCode::WrongPassphrase => "wrong pass phrase or key file",
            ExitCode::Integrity => "integrity: tampered, truncated or corrupt data",
            ExitCode::Quiesced => "the keystore is quiesced (read-only)",
            ExitCode::InvalidArgument => "invalid argument",
            ExitCode::Storage => "storage or I/O error",
        }
    }

    /// The table printed at the end of `keystate --help`.
    pub fn help_table() -> String {
        let mut text = String::from("Exit codes:\n");
        for code in ExitCode::ALL {
            text.push_str(&format!("  {:>2}  {}\n", code.code(), code.meaning()));
        }
        text
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_own_code() {
        let mut codes: Vec<u8> = ErrorKind::ALL.iter().map(|&k| ExitCode::of(k).code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert!(!codes.contains(&ExitCode::Success.code()) && !codes.contains(&ExitCode::Usage.code()));
    }

    #[test]
    fn the_numbers_are_the_documented_ones() {
        for (i, code) in ExitCode::ALL.iter().enumerate() {
            assert_eq!(code.code() as usize, i);
        }
    }
}
