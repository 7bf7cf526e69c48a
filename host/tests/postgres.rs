//! The PostgreSQL backend: its schema, its errors, and several hosts on one
//! keystore. The shared rule-book tests run on it too (api.rs). Every test
//! here needs `KEYSTATE_TEST_POSTGRES` (scripts/test.sh starts a server); it
//! is skipped loudly without one, and fails in CI.
//!
//! Worker processes are this test binary itself, started on the `worker`
//! test with `KEYSTATE_TEST_WORKER` set.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, kind, postgres_client, schema_of};
use keystate::{Cipher, CreateOptions, ErrorKind, KeyState, Keystore};

const WORKER_ENV: &str = "KEYSTATE_TEST_WORKER";

/// The test server's URL with another password (or none).
fn with_password(url: &str, password: Option<&str>) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, hosts) = rest.split_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    match password {
        Some(p) => format!("{scheme}://{user}:{p}@{hosts}"),
        None => format!("{scheme}://{user}@{hosts}"),
    }
}

fn password_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest.split_once('@').unwrap().0.split_once(':').unwrap().1.to_string()
}

/// `host:port` of the test server.
fn server_of(url: &str) -> String {
    let hosts = url.split_once('@').unwrap().1;
    hosts.split(['/', '?']).next().unwrap().to_string()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Server processes of connections with this application name that wait for a lock.
fn waiting_on_a_lock(client: &mut postgres::Client, app: &str, query_prefix: &str) -> Vec<i32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'
             AND query LIKE $2",
            &[&app, &format!("{query_prefix}%")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_fresh_database_gets_its_schema() {
    let Some(s) = Scratch::postgres() else { return };
    let path = s.path("fresh");
    let schema = schema_of(&path);
    let mut db = postgres_client();
    let exists = |db: &mut postgres::Client| -> bool {
        db.query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&schema]).unwrap().get(0)
    };
    assert!(!exists(&mut db));
    let ks = Keystore::create(&path, None, None).unwrap();
    assert!(exists(&mut db));
    let tables: Vec<String> = db
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1", &[&schema])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["keystate_meta", "keystate_rows"]);
    let index: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'keystate_rows_by_seq'",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(index, 1);
    let meta =
        db.query_one(&format!("SELECT application_id, format, seq FROM \"{schema}\".keystate_meta"), &[]).unwrap();
    assert_eq!((meta.get::<_, i64>(0), meta.get::<_, i32>(1), meta.get::<_, i64>(2)), (0x4b53_5441, 1, 1));
    // The rows are the component's sealed rows: nothing readable about keys.
    ks.create_group("payroll", Cipher::Aes256Gcm, "secret plans").unwrap();
    let bodies: Vec<Vec<u8>> = db
        .query(&format!("SELECT body FROM \"{schema}\".keystate_rows"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(bodies.len() >= 2);
    assert!(!bodies.iter().any(|b| b.windows(12).any(|w| w == b"secret plans")));
    // Key files where the URL said, and a second keystore in its own schema of the same database.
    assert!(s.file("fresh.hmk").exists() && s.file("fresh.kpk").exists());
    let other = Keystore::create(s.path("other"), None, None).unwrap();
    assert!(other.groups().unwrap().is_empty());
    let again = Keystore::open(&path, None, None).unwrap();
    assert_eq!(again.group("payroll").unwrap().description, "secret plans");
    assert_eq!(kind(Keystore::create(&path, None, None)), ErrorKind::AlreadyExists);
}

#[test]
fn what_is_not_a_keystore_is_refused_clearly() {
    let Some(s) = Scratch::postgres() else { return };
    let mut db = postgres_client();

    let missing = s.path("missing");
    let e = Keystore::open(&missing, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains(&schema_of(&missing)), "{e}");
    assert_eq!(kind(keystate::inspect(&missing)), ErrorKind::NotFound);

    // Someone else's tables.
    let foreign = s.path("foreign");
    db.batch_execute(&format!("CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".invoices (id int)", schema_of(&foreign)))
        .unwrap();
    let e = Keystore::open(&foreign, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("not a keystate keystore"), "{e}");
    // ... and a table of our name that is not ours.
    db.batch_execute(&format!("CREATE TABLE \"{}\".keystate_meta (x text)", schema_of(&foreign))).unwrap();
    let e = Keystore::open(&foreign, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");

    // A keystore of another format version.
    let future = s.path("future");
    drop(Keystore::create(&future, None, None).unwrap());
    db.batch_execute(&format!("UPDATE \"{}\".keystate_meta SET format = 7", schema_of(&future))).unwrap();
    let e = Keystore::open(&future, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("schema version 7"), "{e}");

    // A schema a DBA made beforehand, holding other tables, takes a keystore.
    let shared = s.path("shared");
    db.batch_execute(&format!("CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".other (id int)", schema_of(&shared)))
        .unwrap();
    Keystore::create(&shared, None, None).unwrap().create_group("g", Cipher::Aes256Gcm, "").unwrap();

    // Bad URLs are bad arguments.
    let bad = format!("{}?schema=Robert'); DROP TABLE students", std::env::var(common::POSTGRES_ENV).unwrap());
    assert_eq!(kind(Keystore::open(&bad, None, None)), ErrorKind::InvalidArgument);
    assert_eq!(kind(Keystore::open("postgres://h:notaport/db", None, None)), ErrorKind::InvalidArgument);
}

#[test]
fn passwords_never_show_and_errors_name_the_server() {
    let Some(s) = Scratch::postgres() else { return };
    let url = std::env::var(common::POSTGRES_ENV).unwrap();
    let password = password_of(&url);
    let server = server_of(&url);

    let wrong = format!("{}?schema=anything", with_password(&url, Some("Wr0ng-Passw0rd")));
    let e = Keystore::open(&wrong, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.message().contains(&server), "{e}");
    assert!(e.message().contains("password"), "{e}");
    assert!(!e.message().contains("Wr0ng-Passw0rd"), "{e}");

    // The password as a query parameter is hidden too.
    let in_query = format!("{}?password=Wr0ng-Passw0rd&schema=anything", with_password(&url, None));
    let e = Keystore::open(&in_query, None, None).map(|_| ()).unwrap_err();
    assert!(e.message().contains(&server) && !e.message().contains("Wr0ng-Passw0rd"), "{e}");

    // Nobody listening: the error names the server.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = url.replace(&server, &format!("127.0.0.1:{closed}"));
    let e = Keystore::open(&nowhere, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.message().contains(&format!("127.0.0.1:{closed}")) && !e.message().contains(&password), "{e}");

    // A working keystore never shows its password either.
    let path = s.path("shown");
    let ks = Keystore::create(&path, None, None).unwrap();
    for shown in [ks.stats().unwrap().path, ks.location(), keystate::inspect(&path).unwrap().path] {
        assert!(shown.contains(&server) && !shown.contains(&password), "{shown}");
    }
}

#[test]
fn random_keys_need_a_place_for_their_key_files() {
    let Some(_s) = Scratch::postgres() else { return };
    let url = std::env::var(common::POSTGRES_ENV).unwrap();
    let schema = format!("t{}_nokeyfiles", std::process::id());
    let path = format!("{url}?schema={schema}");
    let e = Keystore::create(&path, None, None).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("key_files="), "{e}");
    // Nothing was made.
    assert_eq!(kind(Keystore::open(&path, None, None)), ErrorKind::NotFound);
    let options =
        CreateOptions { hmk_passphrase: Some("hmk words"), kpk_passphrase: Some("kpk words"), ..Default::default() };
    let ks = Keystore::create_with(&path, options).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    let info = keystate::inspect(&path).unwrap();
    assert!(info.hmk.needs_passphrase() && info.kpk.needs_passphrase() && info.hmk.key_file.is_none());
    assert_eq!(kind(Keystore::open(&path, None, Some("kpk words"))), ErrorKind::InvalidArgument);
    assert_eq!(Keystore::open(&path, Some("hmk words"), Some("kpk words")).unwrap().groups().unwrap().len(), 1);
    drop(ks);
    postgres_client().batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
}

/// A keystore whose connections carry `app` as their application name.
fn keystore_as(s: &Scratch, name: &str, app: &str) -> (PathBuf, PathBuf) {
    let path = s.path(name);
    let tagged = PathBuf::from(format!("{}&application_name={app}", path.display()));
    (path, tagged)
}

#[test]
fn a_write_whose_connection_is_cut_is_run_again() {
    let Some(s) = Scratch::postgres() else { return };
    let app = format!("victim{}", std::process::id());
    let (path, tagged) = keystore_as(&s, "cut", &app);
    common::key_in(&Keystore::create(&path, None, None).unwrap(), "g", "k", KeyState::Active);
    let ks = Keystore::open(&tagged, None, None).unwrap();
    let meta = format!("\"{}\".keystate_meta", schema_of(&path));
    let mut db = postgres_client();

    // Hold the write lock, let the victim queue behind it, then cut its connection.
    let mut cut = std::collections::HashSet::new();
    let mut cut_while_waiting = |db: &mut postgres::Client, times: usize| {
        for _ in 0..times {
            let mut pid = 0;
            // A new connection each time: the one cut before may linger a moment.
            wait_until("the victim to wait for the write lock", || {
                let fresh = waiting_on_a_lock(db, &app, "BEGIN").into_iter().find(|p| !cut.contains(p));
                pid = fresh.unwrap_or(0);
                fresh.is_some()
            });
            cut.insert(pid);
            db.execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
        }
    };
    let mut holder = postgres_client();
    holder.batch_execute(&format!("BEGIN; SELECT * FROM {meta} FOR UPDATE")).unwrap();
    std::thread::scope(|scope| {
        let victim = scope.spawn(|| ks.set_state("g", "k", KeyState::Inactive));
        cut_while_waiting(&mut db, 2);
        holder.batch_execute("COMMIT").unwrap();
        assert_eq!(victim.join().unwrap().unwrap().state, KeyState::Inactive);
    });
    assert_eq!(Keystore::open(&path, None, None).unwrap().key("g", "k").unwrap().state, KeyState::Inactive);

    // Cut every time: a bounded number of attempts, then a clear error, and nothing changed.
    holder.batch_execute(&format!("BEGIN; SELECT * FROM {meta} FOR UPDATE")).unwrap();
    std::thread::scope(|scope| {
        let victim = scope.spawn(|| ks.set_state("g", "k", KeyState::Active));
        cut_while_waiting(&mut db, 5);
        let e = victim.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
        assert!(e.message().contains("gave up after 5 attempts"), "{e}");
        holder.batch_execute("COMMIT").unwrap();
    });
    assert_eq!(ks.key("g", "k").unwrap().state, KeyState::Inactive);
    // Reads after a cut connection go on by themselves.
    for pid in db
        .query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0))
    {
        db.execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
    }
    assert_eq!(ks.keys(Some("g"), None).unwrap().len(), 1);
    ks.set_state("g", "k", KeyState::Active).unwrap();
}

// ---- several host processes ----------------------------------------------------------

const RACE_ROUNDS: usize = 40;
const HANDSHAKE_ROUNDS: usize = 12;

fn spawn_worker(spec: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["worker", "--exact", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn signal(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), b"").unwrap();
}

fn wait_for(dir: &Path, name: &str) {
    wait_until(name, || dir.join(name).exists());
}

/// The child side of the tests below: `mode|url|id|dir`.
#[test]
fn worker() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [mode, url, id, dir] = parts[..] else { panic!("bad worker spec {spec}") };
    let dir = Path::new(dir);
    let ks = Keystore::open(url, None, None).unwrap();
    signal(dir, &format!("ready-{id}"));
    wait_for(dir, "go");
    match mode {
        // Activate our key in "g" again and again (racing the others), log
        // each round as a new key in "log", and encrypt with whatever is active.
        "race" => {
            let key = format!("k{id}");
            let mut bumped = 0;
            for round in 0..RACE_ROUNDS {
                match ks.key("g", &key).unwrap().state {
                    KeyState::Active => {
                        ks.set_state("g", &key, KeyState::Inactive).unwrap();
                    }
                    KeyState::Inactive => bumped += 1,
                    _ => {}
                }
                assert_eq!(ks.set_state("g", &key, KeyState::Active).unwrap().state, KeyState::Active);
                let active = ks.keys(Some("g"), Some(KeyState::Active)).unwrap();
                assert!(active.len() <= 1, "round {round} of {key}: two active keys {active:?}");
                ks.create_key("log", &format!("w{id}-{round}"), KeyState::Prelive, None, "").unwrap();
                if let Ok(sealed) = ks.encrypt("g", b"race", b"") {
                    assert_eq!(ks.decrypt(&sealed, b"").unwrap(), b"race");
                }
            }
            println!("worker {id}: bumped {bumped}");
        }
        // Make a key active, wait for the other host to use it, then deprecate it.
        "deprecator" => {
            for round in 0..HANDSHAKE_ROUNDS {
                let key = format!("h{round}");
                ks.create_key("h", &key, KeyState::Active, None, "").unwrap();
                signal(dir, &format!("active-{round}"));
                wait_for(dir, &format!("used-{round}"));
                ks.set_state("h", &key, KeyState::Inactive).unwrap();
                ks.set_state("h", &key, KeyState::Deprecated).unwrap();
                signal(dir, &format!("deprecated-{round}"));
                wait_for(dir, &format!("refused-{round}"));
            }
        }
        // The other host: the key it just used must be refused at once.
        "encryptor" => {
            for round in 0..HANDSHAKE_ROUNDS {
                wait_for(dir, &format!("active-{round}"));
                let sealed = ks.encrypt("h", b"backup", b"").unwrap();
                let tag: String = sealed[12..28].iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(ks.key_by_tag(&tag).unwrap().name, format!("h{round}"), "encrypted with a stale key");
                signal(dir, &format!("used-{round}"));
                wait_for(dir, &format!("deprecated-{round}"));
                assert_eq!(kind(ks.encrypt("h", b"backup", b"")), ErrorKind::KeyUnusable);
                assert_eq!(kind(ks.decrypt(&sealed, b"")), ErrorKind::KeyUnusable);
                assert_eq!(ks.key("h", &format!("h{round}")).unwrap().state, KeyState::Deprecated);
                signal(dir, &format!("refused-{round}"));
            }
        }
        // Commit some keys, then start a write that the parent kills half-way.
        "doomed" => {
            for i in 0..5 {
                ks.create_key("g", &format!("c{i}"), KeyState::Prelive, None, "").unwrap();
            }
            signal(dir, "committed");
            wait_for(dir, "locked");
            let _ = ks.create_key("g", "doomed", KeyState::Active, None, "");
            unreachable!("the parent kills this process inside the write");
        }
        _ => panic!("unknown worker mode {mode}"),
    }
}

fn start_workers(path: &Path, dir: &Path, workers: &[(&str, &str)]) -> Vec<(String, Child)> {
    let children: Vec<(String, Child)> = workers
        .iter()
        .map(|(mode, id)| {
            let spec = format!("{mode}|{}|{id}|{}", path.display(), dir.display());
            (format!("{mode} {id}"), spawn_worker(&spec))
        })
        .collect();
    for (_, id) in workers {
        wait_for(dir, &format!("ready-{id}"));
    }
    signal(dir, "go");
    children
}

#[test]
fn several_hosts_keep_one_active_key_lose_nothing_and_never_act_on_stale_state() {
    let Some(s) = Scratch::postgres() else { return };
    let path = s.path("hosts");
    let ks = Keystore::create(&path, None, None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    ks.create_group("log", Cipher::Aes256Gcm, "").unwrap();
    ks.create_group("h", Cipher::Aes256Gcm, "").unwrap();
    for id in 0..3 {
        ks.create_key("g", &format!("k{id}"), KeyState::Prelive, None, "").unwrap();
    }
    let workers = [("race", "0"), ("race", "1"), ("race", "2"), ("deprecator", "d"), ("encryptor", "e")];
    let children = start_workers(&path, s.dir.path(), &workers);
    let mut bumps = 0;
    for (what, child) in children {
        let out = finish(child, &what);
        if let Some(n) = out.lines().find_map(|l| l.split_once(": bumped ")).map(|(_, n)| n.trim().to_string()) {
            bumps += n.parse::<usize>().unwrap();
        }
    }
    // Every bump is a host seeing at once what another one committed.
    eprintln!("activations bumped by another host: {bumps}");
    assert!(bumps > 5, "the hosts never raced ({bumps} bumps)");
    let active = ks.keys(Some("g"), Some(KeyState::Active)).unwrap().len();
    let inactive = ks.keys(Some("g"), Some(KeyState::Inactive)).unwrap().len();
    assert!(active == 1 && active + inactive == 3, "{active} active, {inactive} inactive");
    assert_eq!(ks.keys(Some("log"), None).unwrap().len(), 3 * RACE_ROUNDS, "a mutation was lost");
    let h = ks.keys(Some("h"), None).unwrap();
    assert_eq!(h.len(), HANDSHAKE_ROUNDS);
    assert!(h.iter().all(|k| k.state == KeyState::Deprecated), "{h:?}");
}

#[test]
fn a_host_killed_inside_a_write_loses_nothing_and_applies_nothing_half() {
    let Some(s) = Scratch::postgres() else { return };
    let app = format!("doomed{}", std::process::id());
    let (path, tagged) = keystore_as(&s, "killed", &app);
    let ks = Keystore::create(&path, None, None).unwrap();
    ks.create_group("g", Cipher::Aes256Gcm, "").unwrap();
    let dir = s.dir.path();
    let schema = schema_of(&path);
    let mut children = start_workers(&tagged, dir, &[("doomed", "x")]);
    let (_, mut child) = children.pop().unwrap();
    wait_for(dir, "committed");
    let seq_before: i64 =
        postgres_client().query_one(&format!("SELECT seq FROM \"{schema}\".keystate_meta"), &[]).unwrap().get(0);
    // Let the worker take the write lock and bump the sequence number, then
    // stop it at its first row write and kill it there.
    let mut holder = postgres_client();
    holder.batch_execute(&format!("BEGIN; LOCK TABLE \"{schema}\".keystate_rows IN SHARE MODE")).unwrap();
    signal(dir, "locked");
    let mut db = postgres_client();
    wait_until("the worker to block inside its write", || !waiting_on_a_lock(&mut db, &app, "").is_empty());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    holder.batch_execute("ROLLBACK").unwrap();

    // Waits, if need be, until the server has rolled back the dead host's write.
    ks.create_key("g", "after", KeyState::Prelive, None, "").unwrap();
    let names: Vec<String> = ks.keys(Some("g"), None).unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["after", "c0", "c1", "c2", "c3", "c4"]);
    let fresh = Keystore::open(&path, None, None).unwrap();
    assert_eq!(fresh.keys(Some("g"), None).unwrap().len(), 6);
    assert_eq!(kind(fresh.key("g", "doomed")), ErrorKind::NotFound);
    let row = postgres_client()
        .query_one(
            &format!(
                "SELECT m.seq, (SELECT max(seq) FROM \"{schema}\".keystate_rows) FROM \"{schema}\".keystate_meta m"
            ),
            &[],
        )
        .unwrap();
    // The killed write's sequence number was never committed: the next write took it.
    assert_eq!((row.get::<_, i64>(0), row.get::<_, Option<i64>>(1)), (seq_before + 1, Some(seq_before + 1)));
}

#[test]
fn the_cli_takes_a_url() {
    let Some(s) = Scratch::postgres() else { return };
    let url = s.path("cli").display().to_string();
    let password = password_of(&url);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keystate"))
            .arg("--keystore")
            .arg(&url)
            .args(args)
            .env_remove("KEYSTATE_HMK_PASSPHRASE")
            .env_remove("KEYSTATE_KPK_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!stdout.contains(&password) && !stderr.contains(&password), "the password shows: {stdout}{stderr}");
        assert!(out.status.success(), "keystate {args:?}: {stdout}{stderr}");
        stdout.into_owned()
    };
    let json =
        |args: &[&str]| -> serde_json::Value { serde_json::from_str(&run(&[&["--json"], args].concat())).unwrap() };
    let init = json(&["init"]);
    assert_eq!(init["hmk_file"], s.file("cli.hmk").display().to_string(), "{init}");
    run(&["group", "create", "g"]);
    run(&["key", "create", "g", "k", "--state", "active"]);
    let stats = json(&["stats"]);
    assert_eq!(stats["states"]["active"], 1, "{stats}");
    // Another host's change is seen by the next command.
    Keystore::open(&url, None, None).unwrap().set_state("g", "k", KeyState::Inactive).unwrap();
    let key = json(&["key", "show", "g", "k"]);
    assert_eq!(key["state"], "inactive", "{key}");
}

#[test]
fn after_init_a_role_with_plain_row_privileges_is_enough() {
    let Some(s) = Scratch::postgres() else { return };
    let url = std::env::var(common::POSTGRES_ENV).unwrap();
    let path = s.path("grants");
    let schema = schema_of(&path);
    Keystore::create(&path, None, None).unwrap().create_group("g", Cipher::Aes256Gcm, "").unwrap();
    let role = format!("clerk{}", std::process::id());
    let mut db = postgres_client();
    db.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'clerk-pw';
         GRANT USAGE ON SCHEMA \"{schema}\" TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON \"{schema}\".keystate_meta, \"{schema}\".keystate_rows TO {role};"
    ))
    .unwrap();
    let database: String = db.query_one("SELECT current_database()::text", &[]).unwrap().get(0);
    let as_clerk = |schema: &str, key_files: &str| {
        let (_, rest) = url.split_once('@').unwrap();
        format!("postgres://{role}:clerk-pw@{rest}?schema={schema}&key_files={}", s.file(key_files).display())
    };
    let result = std::panic::catch_unwind(|| {
        let ks = Keystore::open(as_clerk(&schema, "grants"), None, None).unwrap();
        common::key_in(&ks, "g", "k", KeyState::Active);
        let sealed = ks.encrypt("g", b"by the clerk", b"").unwrap();
        assert_eq!(Keystore::open(&path, None, None).unwrap().decrypt(&sealed, b"").unwrap(), b"by the clerk");
        // Without CREATE on the database, making a keystore fails clearly.
        postgres_client().batch_execute(&format!("REVOKE CREATE ON DATABASE \"{database}\" FROM {role}")).unwrap();
        let e = Keystore::create(as_clerk(&format!("{schema}_new"), "new"), None, None).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
        assert!(e.message().contains("privilege") && !e.message().contains("clerk-pw"), "{e}");
    });
    db.batch_execute(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA \"{schema}\" FROM {role}; REVOKE ALL ON SCHEMA \"{schema}\" FROM {role};
         REVOKE ALL ON DATABASE \"{database}\" FROM {role}; DROP ROLE {role}"
    ))
    .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
