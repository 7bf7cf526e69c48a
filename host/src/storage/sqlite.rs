//! SQLite backend: one file, WAL, `synchronous=FULL` (a mutation is acknowledged
//! only after its commit reached the disk), `BEGIN IMMEDIATE` for writers so
//! several processes can share the file. Each commit bumps a sequence number
//! stored with the rows it wrote; deleted rows stay as bodiless tombstones so
//! other processes learn of the deletion.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::{Backend, ChangeSet, Changes, Row, is_audit_entry};
use crate::error::{Error, ErrorKind, Result};

/// `PRAGMA application_id`: "KSTA". Marks a file as a keystate keystore.
const APPLICATION_ID: i64 = 0x4b53_5441;
/// 2: audit entry rows live in their own table `audit` (1 had none; it is
/// upgraded on open when the file is writable).
const SCHEMA_VERSION: i64 = 2;
const AUDIT_TABLE: &str = "CREATE TABLE audit (
                     id TEXT PRIMARY KEY,
                     version INTEGER NOT NULL,
                     seq INTEGER NOT NULL,
                     body BLOB
                 ) WITHOUT ROWID;";
/// How long a writer waits for another process's write to finish, polling
/// every millisecond. SQLite's own busy timeout backs off up to 100 ms between
/// tries, so a busy writer can starve the others; a short steady poll is fair.
/// `KEYSTATE_BUSY_TIMEOUT_MS` overrides the wait (read once per process).
const BUSY_WAIT: Duration = Duration::from_secs(30);
const BUSY_POLL: Duration = Duration::from_millis(1);
const BUSY_TIMEOUT_ENV: &str = "KEYSTATE_BUSY_TIMEOUT_MS";

fn busy_handler(attempt: i32) -> bool {
    static POLLS: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let polls = *POLLS.get_or_init(|| {
        let wait = std::env::var(BUSY_TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(BUSY_WAIT);
        wait.as_millis() / BUSY_POLL.as_millis()
    });
    std::thread::sleep(BUSY_POLL);
    (attempt as u128) < polls
}

pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    /// `PRAGMA data_version` when this connection last synced: it changes
    /// exactly when another connection commits.
    data_version: i64,
}

fn sql_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => ErrorKind::Integrity,
        _ => ErrorKind::Storage,
    };
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => " (the disk is full)",
        Some(ErrorCode::ReadOnly) => " (the keystore file is read-only)",
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            " (another process holds the keystore locked)"
        }
        Some(ErrorCode::NotADatabase) => " (this file is not a keystate keystore)",
        Some(ErrorCode::CannotOpen) => {
            " (cannot open the file or its -wal/-shm companions: read-only file system or directory?)"
        }
        _ => "",
    };
    Error::new(kind, format!("keystore {}: {what}: {e}{hint}", path.display()))
}

impl Sqlite {
    /// Make a new keystore file (0600), failing if it exists.
    pub fn create(path: &Path) -> Result<Sqlite> {
        create_private_file(path)?;
        let db = Sqlite::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let err = |e| sql_error(path, "creating the schema", e);
        db.conn
            .execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {SCHEMA_VERSION};
                 CREATE TABLE rows (
                     id TEXT PRIMARY KEY,
                     version INTEGER NOT NULL,
                     seq INTEGER NOT NULL,
                     body BLOB
                 ) WITHOUT ROWID;
                 CREATE INDEX rows_by_seq ON rows(seq);
                 {AUDIT_TABLE}
                 CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('seq', 0);"
            ))
            .map_err(err)?;
        Ok(db)
    }

    /// Open an existing keystore file.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if !path.exists() {
            return Err(Error::new(ErrorKind::NotFound, format!("no keystore at {}", path.display())));
        }
        let read_only = std::fs::metadata(path).map(|m| m.permissions().readonly()).unwrap_or(false);
        let flags = if read_only { OpenFlags::SQLITE_OPEN_READ_ONLY } else { OpenFlags::SQLITE_OPEN_READ_WRITE };
        let db = Sqlite::connect(path, flags)?;
        let err = |e| sql_error(path, "reading the keystore", e);
        let app: i64 = db.conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(err)?;
        let schema: i64 = db.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        if app != APPLICATION_ID {
            return Err(Error::new(ErrorKind::Integrity, format!("{} is not a keystate keystore", path.display())));
        }
        if schema == 1 && !read_only {
            db.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS audit (id TEXT PRIMARY KEY, version INTEGER NOT NULL,
                         seq INTEGER NOT NULL, body BLOB) WITHOUT ROWID;
                     PRAGMA user_version = {SCHEMA_VERSION};
                     COMMIT;"
                ))
                .map_err(|e| sql_error(path, "upgrading the schema", e))?;
            return Ok(db);
        }
        if schema != SCHEMA_VERSION {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("keystore {} has schema version {schema}; this build reads {SCHEMA_VERSION}", path.display()),
            ));
        }
        Ok(db)
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<Sqlite> {
        let mut conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| sql_error(path, "opening", e))?;
        conn.busy_handler(Some(busy_handler)).map_err(|e| sql_error(path, "configuring", e))?;
        if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            // WAL lets readers go on while one process writes; FULL syncs the WAL
            // on every commit, so an acknowledged mutation survives a power cut.
            conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| sql_error(path, "enabling WAL", e))?;
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| sql_error(path, "configuring", e))?;
        Ok(Sqlite { conn, path: path.to_path_buf(), data_version: 0 })
    }

    fn err(&self, what: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        let what = what.to_string();
        move |e| sql_error(&self.path, &what, e)
    }

    fn read_data_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(self.err("checking for changes"))
    }

    fn current_seq(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = 'seq'", [], |r| r.get::<_, i64>(0))
            .map(|v| v as u64)
            .map_err(self.err("reading the sequence number"))
    }

    fn rows_after(&self, seq: u64) -> Result<Changes> {
        // A catch-up reads the few rows past `seq` through the seq index; with
        // ORDER BY id, SQLite would rather walk every row in id order, which
        // made each catch-up cost the whole keystore. Sorted below instead.
        let (sql, after) = match seq {
            0 => ("SELECT id, version, body FROM rows", vec![]),
            _ => ("SELECT id, version, body FROM rows WHERE seq > ?1", vec![seq as i64]),
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err("reading rows"))?;
        let mut changes = Changes::default();
        let mut rows = stmt.query(rusqlite::params_from_iter(after)).map_err(self.err("reading rows"))?;
        while let Some(r) = rows.next().map_err(self.err("reading rows"))? {
            use rusqlite::types::ValueRef;
            let id: String = r.get(0).map_err(self.err("reading a row id"))?;
            // A row mangled in the database (wrong column types) is handed to
            // the component as it is, which reports it as corrupt: one bad row
            // must not make the whole keystore unreadable.
            let version = match r.get_ref(1).map_err(self.err("reading a row version"))? {
                ValueRef::Integer(v) => v as u64,
                _ => 0,
            };
            match r.get_ref(2).map_err(self.err("reading a row"))? {
                ValueRef::Null if seq > 0 => changes.deleted.push(id),
                ValueRef::Null => {}
                ValueRef::Blob(b) | ValueRef::Text(b) => changes.rows.push(Row { id, version, body: b.to_vec() }),
                ValueRef::Integer(_) | ValueRef::Real(_) => changes.rows.push(Row { id, version, body: Vec::new() }),
            }
        }
        if seq > 0 {
            changes.rows.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(changes)
    }

    /// Read rows and sequence number in one snapshot (inside the current
    /// write, if one is open).
    fn snapshot(&mut self, after: u64) -> Result<Changes> {
        let tx = match self.conn.is_autocommit() {
            true => Some(self.conn.unchecked_transaction().map_err(self.err("starting a read"))?),
            false => None,
        };
        let seq = self.current_seq()?;
        let mut changes = self.rows_after(after)?;
        changes.seq = seq;
        if let Some(tx) = tx {
            tx.finish().map_err(self.err("ending a read"))?;
        }
        Ok(changes)
    }
}

impl Backend for Sqlite {
    fn load_all(&mut self) -> Result<Changes> {
        self.data_version = self.read_data_version()?;
        self.snapshot(0)
    }

    fn rows_since(&mut self, seq: u64) -> Result<Changes> {
        self.snapshot(seq)
    }

    fn read_row(&mut self, id: &str) -> Result<Option<Row>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT version, body FROM rows WHERE id = ?1 AND body IS NOT NULL", [id], |r| {
                Ok(Row { id: id.to_string(), version: r.get::<_, i64>(0)? as u64, body: r.get(1)? })
            })
            .optional()
            .map_err(self.err("reading a row"))
    }

    fn changes_since(&mut self, seq: u64) -> Result<Option<Changes>> {
        let dv = self.read_data_version()?;
        if dv == self.data_version {
            return Ok(None);
        }
        self.data_version = dv;
        let changes = self.snapshot(seq)?;
        Ok(if changes.seq == seq { None } else { Some(changes) })
    }

    fn begin_write(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(self.err("starting a write"))
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<u64> {
        let seq: i64 = self
            .conn
            .query_row("UPDATE meta SET value = value + 1 WHERE name = 'seq' RETURNING value", [], |r| r.get(0))
            .map_err(self.err("advancing the sequence number"))?;
        let conflict = |id: &str, version: u64| {
            Error::new(
                ErrorKind::Integrity,
                format!("row {id} is not at the version expected ({version}): another writer changed it"),
            )
        };
        for row in &changes.upserts {
            let table = if is_audit_entry(&row.id) { "audit" } else { "rows" };
            let n = if row.version == 1 {
                self.conn
                    .prepare_cached(&format!(
                        "INSERT INTO {table} (id, version, seq, body) VALUES (?1, 1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET version = 1, seq = ?2, body = ?3 WHERE {table}.body IS NULL"
                    ))
                    .and_then(|mut s| s.execute(params![row.id, seq, row.body]))
            } else {
                self.conn
                    .prepare_cached(&format!(
                        "UPDATE {table} SET version = ?2, seq = ?3, body = ?4
                         WHERE id = ?1 AND version = ?5 AND body IS NOT NULL"
                    ))
                    .and_then(|mut s| {
                        s.execute(params![row.id, row.version as i64, seq, row.body, row.version as i64 - 1])
                    })
            }
            .map_err(self.err("writing a row"))?;
            if n != 1 {
                return Err(conflict(&row.id, row.version.saturating_sub(1)));
            }
        }
        for (id, version) in &changes.deletes {
            let n = self
                .conn
                .prepare_cached(
                    "UPDATE rows SET body = NULL, seq = ?2 WHERE id = ?1 AND version = ?3 AND body IS NOT NULL",
                )
                .and_then(|mut s| s.execute(params![id, seq, *version as i64]))
                .map_err(self.err("deleting a row"))?;
            if n != 1 {
                return Err(conflict(id, *version));
            }
        }
        Ok(seq as u64)
    }

    fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(self.err("committing"))
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn audit_rows(&mut self, after: &str, through: &str, limit: usize) -> Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, version, body FROM audit WHERE id > ?1 AND id <= ?2 AND body IS NOT NULL ORDER BY id LIMIT ?3",
            )
            .map_err(self.err("reading audit rows"))?;
        let mut rows = stmt.query(params![after, through, limit as i64]).map_err(self.err("reading audit rows"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(self.err("reading audit rows"))? {
            use rusqlite::types::ValueRef;
            let id: String = r.get(0).map_err(self.err("reading an audit row id"))?;
            let version = match r.get_ref(1).map_err(self.err("reading an audit row version"))? {
                ValueRef::Integer(v) => v as u64,
                _ => 0,
            };
            let body = match r.get_ref(2).map_err(self.err("reading an audit row"))? {
                ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                _ => Vec::new(),
            };
            out.push(Row { id, version, body });
        }
        Ok(out)
    }
}

/// Create a file readable by its owner only; fail if it exists.
pub(crate) fn create_private_file(path: &Path) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::new(ErrorKind::AlreadyExists, format!("{} already exists", path.display()))
        }
        _ => Error::storage(&format!("creating {}", path.display()), e),
    })
}
