//! PostgreSQL backend: one keystore per schema (`keystate` unless the URL says
//! `schema=`), shared by any number of hosts. It mirrors the SQLite layout: a
//! row table stamped with a keystore-wide sequence number (tombstones for
//! deleted rows) and a one-row meta table holding that number.
//!
//! - "Anything changed?" is one round trip that also brings the changed rows:
//!   the meta row left-joined with the rows newer than the reader's number.
//! - A writer locks the meta row (`SELECT ... FOR UPDATE`), which excludes every
//!   other writer on every host until it commits; it then catches up inside
//!   that lock, so it decides on committed state.
//! - A lost connection is re-opened on the next call; reads retry once, writes
//!   report a retryable error so the mutation is run again from the start.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, Statement};

use super::{AUDIT_ENTRY_PREFIX, Backend, ChangeSet, Changes, Row};
use crate::error::{Error, ErrorKind, Result};

/// Marks a schema as a keystate keystore ("KSTA", as SQLite's application id).
const APPLICATION_ID: i64 = 0x4b53_5441;
const SCHEMA_VERSION: i32 = 1;
const DEFAULT_SCHEMA: &str = "keystate";
/// As SQLite's busy wait: how long a writer waits for another host's write.
const LOCK_TIMEOUT: &str = "30s";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Is this keystore location a PostgreSQL URL?
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A parsed keystore URL: the connection settings, and keystate's own
/// parameters taken out of the query (`schema`, `key_files`).
#[derive(Clone)]
pub struct Target {
    config: Config,
    schema: String,
    key_files: Option<std::path::PathBuf>,
    /// The URL without its password, for every message.
    shown: String,
    /// The password, so that it can be blanked out of any message.
    password: Option<String>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let shown = redact(url);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut schema, mut key_files, mut rest) = (None, None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || {
                percent_decode_str(value)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| Error::invalid(format!("keystore URL {shown}: parameter {key} is not valid UTF-8")))
            };
            match key {
                "schema" => schema = Some(decoded()?),
                "key_files" => key_files = Some(std::path::PathBuf::from(decoded()?)),
                _ => rest.push(pair),
            }
        }
        let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if schema.is_empty()
            || schema.len() > 63
            || !schema.chars().all(valid)
            || schema.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(Error::invalid(format!(
                "keystore URL {shown}: schema {schema:?} must be 1 to 63 lowercase letters, digits and '_', not starting with a digit"
            )));
        }
        let conn_url = match rest.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", rest.join("&")),
        };
        let mut config: Config = conn_url
            .parse()
            .map_err(|e| Error::invalid(format!("keystore URL {shown} is not a valid PostgreSQL URL: {e}")))?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("keystate");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let password = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Target { config, schema, key_files, shown, password })
    }

    /// Where random HMK/KPK key files live (`key_files=` in the URL), if anywhere.
    pub fn key_files(&self) -> Option<&std::path::Path> {
        self.key_files.as_deref()
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn table(&self, name: &str) -> String {
        format!("\"{}\".{name}", self.schema)
    }

    /// A storage error naming the server and what failed, without the password.
    fn error(&self, what: &str, e: postgres::Error) -> Error {
        let code = e.code();
        let hint = match code {
            Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                " (check the user name and password)"
            }
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                " (the role lacks a privilege: see the README on PostgreSQL permissions)"
            }
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => " (another host held the keystore's write lock too long)",
            Some(c) if *c == SqlState::UNDEFINED_TABLE => " (the keystore's tables are gone)",
            _ => "",
        };
        let retryable = connection_lost(&e)
            || code.is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED);
        let detail = self.blank(&e.to_string());
        let error = Error::new(ErrorKind::Storage, format!("keystore {}: {what}: {detail}{hint}", self.shown));
        if retryable { error.retryable() } else { error }
    }

    fn blank(&self, text: &str) -> String {
        match &self.password {
            Some(p) if p.len() >= 3 => text.replace(p.as_str(), "***"),
            _ => text.to_string(),
        }
    }

    fn connect(&self) -> Result<Client> {
        let mut client = self.config.connect(NoTls).map_err(|e| self.error("connecting", e))?;
        client
            .batch_execute(&format!("SET lock_timeout = '{LOCK_TIMEOUT}'"))
            .map_err(|e| self.error("configuring the connection", e))?;
        Ok(client)
    }
}

/// Did this error end the connection (or is the server going away)?
fn connection_lost(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_some_and(|c| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::CONNECTION_FAILURE,
                SqlState::CONNECTION_EXCEPTION,
            ]
            .contains(c)
        })
}

/// The URL without the password in its user part or its query.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, hosts)) => format!("{}@{hosts}", user.split_once(':').map_or(user, |(u, _)| u)),
        None => authority.to_string(),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let query: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("password=")).collect();
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    format!("{scheme}://{authority}{path}{query}")
}

/// Statements prepared once per connection: every later call is one round trip.
struct Statements {
    /// The meta row's sequence number with the rows newer than `$1` (none: one
    /// row of NULLs): the cheap check and the catch-up in one statement.
    since: Statement,
    read_row: Statement,
    bump: Statement,
    insert: Statement,
    update: Statement,
    delete: Statement,
    /// Audit entry rows in an id range, in id order (they never reach `since`).
    audit: Statement,
}

struct Conn {
    client: Client,
    statements: Statements,
}

pub struct Postgres {
    target: Target,
    /// `None` after the connection was lost: re-opened on the next call.
    conn: Option<Conn>,
    in_write: bool,
}

impl Postgres {
    /// Make a new keystore in the URL's schema (creating the schema if it is
    /// missing); fails if the schema already holds one.
    pub fn create(target: &Target) -> Result<Postgres> {
        let mut client = target.connect()?;
        let err = |what: &'static str| move |e| target.error(what, e);
        let meta = target.table("keystate_meta");
        let rows = target.table("keystate_rows");
        let schema = &target.schema;
        client.batch_execute("BEGIN").map_err(err("starting to create the keystore"))?;
        let result = (|| {
            // Two hosts creating the same keystore at once: the second waits, then finds it.
            client
                .execute("SELECT pg_advisory_xact_lock(hashtext('keystate ' || $1::text))", &[&schema])
                .map_err(err("creating the keystore"))?;
            let (schema_exists, meta_exists) = schema_state(&mut client, target)?;
            if meta_exists {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} already holds a keystore (schema {schema})", target.shown),
                ));
            }
            if !schema_exists {
                client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).map_err(err("creating the schema"))?;
            }
            client
                .batch_execute(&format!(
                    "CREATE TABLE {meta} (
                         one boolean PRIMARY KEY DEFAULT true CHECK (one),
                         application_id bigint NOT NULL,
                         format integer NOT NULL,
                         seq bigint NOT NULL
                     );
                     CREATE TABLE {rows} (
                         id text PRIMARY KEY,
                         version bigint NOT NULL,
                         seq bigint NOT NULL,
                         body bytea
                     );
                     CREATE INDEX keystate_rows_by_seq ON {rows} (seq);
                     INSERT INTO {meta} (application_id, format, seq) VALUES ({APPLICATION_ID}, {SCHEMA_VERSION}, 0);"
                ))
                .map_err(err("creating the keystore tables"))?;
            client.batch_execute("COMMIT").map_err(err("committing the new keystore"))
        })();
        if result.is_err() {
            let _ = client.batch_execute("ROLLBACK");
        }
        result?;
        let statements = prepare(&mut client, target)?;
        Ok(Postgres { target: target.clone(), conn: Some(Conn { client, statements }), in_write: false })
    }

    /// Open the keystore in the URL's schema, checking it is one this build reads.
    pub fn open(target: &Target) -> Result<Postgres> {
        let mut client = target.connect()?;
        let schema = &target.schema;
        let (schema_exists, meta_exists) = schema_state(&mut client, target)?;
        if !schema_exists {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no keystore at {}: the database has no schema {schema}", target.shown),
            ));
        }
        let not_keystore = || {
            Error::new(ErrorKind::Integrity, format!("{} (schema {schema}) is not a keystate keystore", target.shown))
        };
        if !meta_exists {
            return Err(not_keystore());
        }
        let meta = client
            .query(&format!("SELECT application_id, format FROM {}", target.table("keystate_meta")), &[])
            .map_err(|e| match e.code() {
                Some(c) if *c == SqlState::UNDEFINED_COLUMN => not_keystore(),
                _ => target.error("reading the keystore's meta row", e),
            })?;
        let [row] = meta.as_slice() else { return Err(not_keystore()) };
        let (app, format) = (row.try_get::<_, i64>(0).ok(), row.try_get::<_, i32>(1).ok());
        let (Some(APPLICATION_ID), Some(format)) = (app, format) else { return Err(not_keystore()) };
        if format != SCHEMA_VERSION {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("keystore {} has schema version {format}; this build reads {SCHEMA_VERSION}", target.shown),
            ));
        }
        let statements = prepare(&mut client, target)?;
        Ok(Postgres { target: target.clone(), conn: Some(Conn { client, statements }), in_write: false })
    }

    /// Undo a `create` whose keystore never got its first rows.
    pub fn remove(target: &Target) {
        if let Ok(mut client) = target.connect() {
            let _ = client.batch_execute(&format!(
                "DROP TABLE IF EXISTS {}, {}",
                target.table("keystate_rows"),
                target.table("keystate_meta")
            ));
            // Only if it is now empty and ours (only its owner may drop it):
            // a schema a DBA made for the keystore normally stays.
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" RESTRICT", target.schema));
        }
    }

    /// The open connection, re-opened if it was lost.
    fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let mut client = self.target.connect()?;
            let statements = prepare(&mut client, &self.target)?;
            self.conn = Some(Conn { client, statements });
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Run a statement; a lost connection is forgotten so the next call re-opens it.
    fn run<T>(&mut self, what: &str, f: impl Fn(&mut Conn) -> Result<T, postgres::Error>) -> Result<T> {
        let result = f(self.conn()?);
        result.map_err(|e| {
            if connection_lost(&e) {
                self.conn = None;
            }
            self.target.error(what, e)
        })
    }

    /// A read outside a write: retried once on a fresh connection if the old one was lost.
    fn read<T>(&mut self, what: &str, f: impl Fn(&mut Conn) -> Result<T, postgres::Error>) -> Result<T> {
        match self.run(what, &f) {
            Err(e) if e.is_retryable() && !self.in_write => self.run(what, &f),
            result => result,
        }
    }

    fn since(&mut self, seq: u64) -> Result<Changes> {
        let rows = self.read("reading rows", |c| c.client.query(&c.statements.since, &[&(seq as i64)]))?;
        let mut changes = Changes::default();
        for r in rows {
            changes.seq = r.get::<_, i64>(0) as u64;
            let Some(id) = r.get::<_, Option<String>>(1) else { continue };
            match r.get::<_, Option<Vec<u8>>>(3) {
                Some(body) => changes.rows.push(Row { id, version: r.get::<_, i64>(2) as u64, body }),
                None if seq > 0 => changes.deleted.push(id),
                None => {}
            }
        }
        if changes.seq < seq {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("keystore {} was made anew since this handle opened it: open it again", self.target.shown),
            ));
        }
        Ok(changes)
    }
}

/// Does the URL's schema exist, and does it hold keystate's meta table?
fn schema_state(client: &mut Client, target: &Target) -> Result<(bool, bool)> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), to_regclass($2) IS NOT NULL",
            &[&target.schema, &target.table("keystate_meta")],
        )
        .map_err(|e| target.error("reading the database catalog", e))?;
    Ok((row.get(0), row.get(1)))
}

fn prepare(client: &mut Client, target: &Target) -> Result<Statements> {
    let meta = target.table("keystate_meta");
    let rows = target.table("keystate_rows");
    let mut p = |sql: String| client.prepare(&sql).map_err(|e| target.error("preparing statements", e));
    Ok(Statements {
        since: p(format!(
            "SELECT m.seq, r.id, r.version, r.body FROM {meta} m
             LEFT JOIN {rows} r ON r.seq > $1 AND r.id NOT LIKE '{AUDIT_ENTRY_PREFIX}%' ORDER BY r.id"
        ))?,
        read_row: p(format!("SELECT version, body FROM {rows} WHERE id = $1 AND body IS NOT NULL"))?,
        bump: p(format!("UPDATE {meta} SET seq = seq + 1 RETURNING seq"))?,
        insert: p(format!(
            "INSERT INTO {rows} AS r (id, version, seq, body) VALUES ($1, 1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET version = 1, seq = $2, body = $3 WHERE r.body IS NULL"
        ))?,
        update: p(format!(
            "UPDATE {rows} SET version = $2, seq = $3, body = $4 WHERE id = $1 AND version = $5 AND body IS NOT NULL"
        ))?,
        delete: p(format!(
            "UPDATE {rows} SET body = NULL, seq = $2 WHERE id = $1 AND version = $3 AND body IS NOT NULL"
        ))?,
        audit: p(format!(
            "SELECT id, version, body FROM {rows}
             WHERE id > $1 AND id <= $2 AND id LIKE '{AUDIT_ENTRY_PREFIX}%' AND body IS NOT NULL ORDER BY id LIMIT $3"
        ))?,
    })
}

impl Backend for Postgres {
    fn load_all(&mut self) -> Result<Changes> {
        self.since(0)
    }

    fn rows_since(&mut self, seq: u64) -> Result<Changes> {
        self.since(seq)
    }

    fn audit_rows(&mut self, after: &str, through: &str, limit: usize) -> Result<Vec<Row>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows =
            self.read("reading audit entries", |c| c.client.query(&c.statements.audit, &[&after, &through, &limit]))?;
        Ok(rows.into_iter().map(|r| Row { id: r.get(0), version: r.get::<_, i64>(1) as u64, body: r.get(2) }).collect())
    }

    fn read_row(&mut self, id: &str) -> Result<Option<Row>> {
        let row = self.read("reading a row", |c| c.client.query_opt(&c.statements.read_row, &[&id]))?;
        Ok(row.map(|r| Row { id: id.to_string(), version: r.get::<_, i64>(0) as u64, body: r.get(1) }))
    }

    fn changes_since(&mut self, seq: u64) -> Result<Option<Changes>> {
        let changes = self.since(seq)?;
        Ok(if changes.seq == seq { None } else { Some(changes) })
    }

    fn begin_write(&mut self) -> Result<()> {
        let lock = format!("BEGIN; SELECT seq FROM {} FOR UPDATE", self.target.table("keystate_meta"));
        self.in_write = true;
        let result = self.run("starting a write", |c| c.client.batch_execute(&lock));
        if result.is_err() {
            // The lock may have failed inside the opened transaction.
            self.rollback();
        }
        result
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<u64> {
        let seq = self.run("advancing the sequence number", |c| c.client.query_one(&c.statements.bump, &[]))?;
        let seq: i64 = seq.get(0);
        // Another writer got there first; with the meta row locked this means
        // someone wrote without the lock: retry from a fresh read.
        let conflict = |id: &str, version: u64| {
            Error::new(
                ErrorKind::Integrity,
                format!("row {id} is not at the version expected ({version}): another writer changed it"),
            )
            .retryable()
        };
        for row in &changes.upserts {
            let n = if row.version == 1 {
                self.run("writing a row", |c| c.client.execute(&c.statements.insert, &[&row.id, &seq, &row.body]))?
            } else {
                let (version, previous) = (row.version as i64, row.version as i64 - 1);
                self.run("writing a row", |c| {
                    c.client.execute(&c.statements.update, &[&row.id, &version, &seq, &row.body, &previous])
                })?
            };
            if n != 1 {
                return Err(conflict(&row.id, row.version.saturating_sub(1)));
            }
        }
        for (id, version) in &changes.deletes {
            let v = *version as i64;
            let n = self.run("deleting a row", |c| c.client.execute(&c.statements.delete, &[id, &seq, &v]))?;
            if n != 1 {
                return Err(conflict(id, *version));
            }
        }
        Ok(seq as u64)
    }

    fn commit(&mut self) -> Result<()> {
        self.in_write = false;
        let result = self.conn()?.client.batch_execute("COMMIT");
        result.map_err(|e| {
            if !connection_lost(&e) {
                // The server refused the commit: nothing was applied.
                return self.target.error("committing", e);
            }
            self.conn = None;
            // The commit may or may not have reached the server: running the
            // mutation again could apply it twice, so this is not retried.
            let e = self.target.error("committing", e);
            Error::new(
                ErrorKind::Storage,
                format!("{e} (the connection was lost: whether this change was applied is unknown)"),
            )
        })
    }

    fn rollback(&mut self) {
        self.in_write = false;
        if let Some(conn) = self.conn.as_mut()
            && conn.client.batch_execute("ROLLBACK").is_err()
        {
            self.conn = None;
        }
    }

    fn location(&self) -> String {
        self.target.shown.clone()
    }
}
