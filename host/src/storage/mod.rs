//! Where rows live. The host stores the component's rows verbatim; a backend
//! persists change sets atomically with compare-and-swap on row versions and
//! tells a process cheaply which rows others changed since it last looked.

pub(crate) mod postgres;
pub(crate) mod sqlite;

pub use postgres::Postgres;
pub use sqlite::Sqlite;

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// A stored row, as the component sealed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub version: u64,
    pub body: Vec<u8>,
}

/// Rows changed in storage since a sequence number.
#[derive(Debug, Default)]
pub struct Changes {
    pub rows: Vec<Row>,
    pub deleted: Vec<String>,
    /// The sequence number these changes bring a reader up to.
    pub seq: u64,
}

/// One mutation's rows. Upserts carry their new version (storage must hold
/// `version - 1`, or nothing when it is 1); deletes the version they remove.
#[derive(Debug, Default)]
pub struct ChangeSet {
    pub upserts: Vec<Row>,
    pub deletes: Vec<(String, u64)>,
}

/// A storage backend for one keystore.
pub trait Backend: Send {
    /// Every live row and the sequence number they are current to.
    fn load_all(&mut self) -> Result<Changes>;

    /// Rows changed since `seq` (all live rows when `seq` is 0), without the
    /// cheap check and without touching what `changes_since` compares with.
    fn rows_since(&mut self, seq: u64) -> Result<Changes>;

    /// One live row, if it exists.
    fn read_row(&mut self, id: &str) -> Result<Option<Row>>;

    /// Rows changed by others since `seq`, or `None` when nothing changed
    /// (this check must be cheap: it runs before every operation).
    fn changes_since(&mut self, seq: u64) -> Result<Option<Changes>>;

    /// Start a write: excludes every other writer until commit or rollback.
    fn begin_write(&mut self) -> Result<()>;

    /// Apply a change set inside the write; a version mismatch is `Integrity`
    /// (some other writer got there first). Returns the new sequence number.
    fn apply(&mut self, changes: &ChangeSet) -> Result<u64>;

    /// Make the write durable; only then is a mutation acknowledged.
    fn commit(&mut self) -> Result<()>;

    fn rollback(&mut self);

    /// Where this keystore lives, for messages and stats.
    fn location(&self) -> String;

    /// Audit entry rows (ids `a:` + 16 hex digits) with `after < id <= through`,
    /// in id order, at most `limit` of them. `apply` stores such rows like any
    /// other, but `load_all`, `rows_since` and `changes_since` never return
    /// them: opening a keystore costs the number of keys, not the length of
    /// its audit trail.
    fn audit_rows(&mut self, after: &str, through: &str, limit: usize) -> Result<Vec<Row>>;
}

/// Where a keystore lives: a SQLite file, or a PostgreSQL URL
/// (`postgres://` or `postgresql://`).
pub(crate) enum Location {
    File(PathBuf),
    Postgres(Box<postgres::Target>),
}

impl Location {
    pub fn parse(path: &Path) -> Result<Location> {
        match path.to_str() {
            Some(text) if postgres::is_url(text) => Ok(Location::Postgres(Box::new(postgres::Target::parse(text)?))),
            _ => Ok(Location::File(path.to_path_buf())),
        }
    }

    /// Make a new, empty keystore; fails with `AlreadyExists` if there is one.
    pub fn create(&self) -> Result<Box<dyn Backend>> {
        Ok(match self {
            Location::File(path) => Box::new(Sqlite::create(path)?),
            Location::Postgres(target) => Box::new(Postgres::create(target)?),
        })
    }

    pub fn open(&self) -> Result<Box<dyn Backend>> {
        Ok(match self {
            Location::File(path) => Box::new(Sqlite::open(path)?),
            Location::Postgres(target) => Box::new(Postgres::open(target)?),
        })
    }

    /// Fail early, before any key file is written, if a keystore is known to be there.
    pub fn check_new(&self) -> Result<()> {
        match self {
            Location::File(path) if path.exists() => {
                Err(Error::new(ErrorKind::AlreadyExists, format!("{} already exists", path.display())))
            }
            _ => Ok(()),
        }
    }

    /// Remove what a `create` made, after it failed half-way.
    pub fn remove_new(&self) {
        match self {
            Location::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(name));
                }
            }
            Location::Postgres(target) => Postgres::remove(target),
        }
    }

    /// The base name of random key files (`<base>.hmk`): the file itself, or
    /// a URL's `key_files` parameter (`None`: the URL names no place for them).
    pub fn key_file_base(&self) -> Option<&Path> {
        match self {
            Location::File(path) => Some(path),
            Location::Postgres(target) => target.key_files(),
        }
    }

    /// For messages: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(target) => target.shown().to_string(),
        }
    }
}

/// Does this row id name an audit entry (kept out of the model's loads)?
pub fn is_audit_entry(id: &str) -> bool {
    id.starts_with(AUDIT_ENTRY_PREFIX)
}

/// Prefix of audit entry row ids; `a:` + 16 lowercase hex digits of the sequence number.
pub const AUDIT_ENTRY_PREFIX: &str = "a:";
