//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

pub mod workload;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use keystate::{Cipher, ErrorKind, KeyState, Keystore};

/// The PostgreSQL server the tests use (scripts/postgres.sh starts one).
pub const POSTGRES_ENV: &str = "KEYSTATE_TEST_POSTGRES";

/// A temporary directory for keystores and files, and the backend its
/// keystores live in: SQLite files in the directory, or one PostgreSQL
/// schema per keystore (dropped at the end) with key files in the directory.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    postgres: Option<String>,
    schemas: Mutex<Vec<String>>,
}

impl Scratch {
    /// Keystores in SQLite files.
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("temp dir"), postgres: None, schemas: Mutex::new(Vec::new()) }
    }

    /// Keystores in the test PostgreSQL server; `None` (after a loud message)
    /// when none is configured, which is an error in CI.
    pub fn postgres() -> Option<Scratch> {
        let url = postgres_url()?;
        Some(Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
            postgres: Some(url),
            schemas: Mutex::new(Vec::new()),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// A keystore location: a file in the directory, or a URL naming a
    /// schema of its own and key files in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        let Some(base) = &self.postgres else { return self.dir.path().join(name) };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let clean: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let mut schema = format!("t{}_{}_{clean}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        schema.truncate(63);
        self.schemas.lock().unwrap().push(schema.clone());
        let sep = if base.contains('?') { '&' } else { '?' };
        PathBuf::from(format!("{base}{sep}schema={schema}&key_files={}", self.dir.path().join(name).display()))
    }

    /// Change stored rows behind the keystore's back: `sqlite` runs on the
    /// file (`rows`, parameter `?1`), `postgres` on the schema (`{rows}`,
    /// parameter `$1`). Returns how many rows changed.
    pub fn update_rows(&self, path: &std::path::Path, sqlite: &str, postgres: &str, param: &str) -> usize {
        match &self.postgres {
            None => rusqlite::Connection::open(path).unwrap().execute(sqlite, [param]).unwrap(),
            Some(_) => {
                let sql = postgres.replace("{rows}", &format!("\"{}\".keystate_rows", schema_of(path)));
                postgres_client().execute(&sql, &[&param]).unwrap() as usize
            }
        }
    }

    /// A plain file in the directory (data, not a keystore).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A keystore with random HMK/KPK (key files beside it).
    pub fn keystore(&self) -> (PathBuf, Keystore) {
        let path = self.path("keys.db");
        let ks = Keystore::create(&path, None, None).expect("create keystore");
        (path, ks)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (Some(url), Ok(schemas)) = (&self.postgres, self.schemas.lock()) else { return };
        if schemas.is_empty() {
            return;
        }
        if let Ok(mut client) = postgres::Client::connect(url, postgres::NoTls) {
            for schema in schemas.iter() {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }
    }
}

/// The schema a test URL names.
pub fn schema_of(url: &std::path::Path) -> String {
    let url = url.to_str().unwrap();
    let start = url.find("schema=").expect("a URL with a schema") + "schema=".len();
    url[start..].split('&').next().unwrap().to_string()
}

/// The test server's URL. Without one, PostgreSQL tests are skipped with a
/// loud message, except in CI, where that is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {POSTGRES_ENV} is not: the PostgreSQL tests must run (scripts/test.sh starts a server)"
            );
            eprintln!(
                "\n*** SKIPPED: a PostgreSQL test; set {POSTGRES_ENV} (or run through scripts/test.sh or scripts/postgres.sh) ***\n"
            );
            None
        }
    }
}

/// A plain client for the test server, for looking behind a keystore's back.
pub fn postgres_client() -> postgres::Client {
    let url = std::env::var(POSTGRES_ENV).expect(POSTGRES_ENV);
    postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test server")
}

/// Tests that take a `&Scratch` and run once per backend: `sqlite::name` and
/// `postgres::name` (skipped loudly without a test server, never in CI).
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&$crate::common::Scratch::new()) } )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(s) = $crate::common::Scratch::postgres() {
                        super::$name(&s)
                    }
                }
            )*
        }
    };
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
