//! The sandbox: one wasmtime engine and one compiled component per process,
//! one store and instance per open keystore. A store has a memory cap and an
//! epoch deadline per call; a trap or a limit hit becomes an `Internal` error
//! and the caller rebuilds the instance from storage. What the component's one
//! import (`keystate:kms/host`: time and entropy) answers comes from a
//! [`HostEnv`], the operating system's ([`OsEnv`]) unless a test injects another.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentFunc;
use wasmtime::component::{Component, HasSelf, Instance, Linker, ResourceAny, Val};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};

use crate::error::{Error, ErrorKind, Result};
use crate::transfer::{ImportReport, ImportedGroup, ImportedKey, Skip, SkipReason};
use crate::types::{self, Cipher, GroupInfo, KeyInfo, KeyState, Operation};

mod bindings {
    wasmtime::component::bindgen!({
        world: "keystate",
        path: "../wit",
        imports: { default: trappable },
    });
}

pub(crate) use bindings::keystate::kms::types as wit;
use bindings::{Keystate, KeystateIndices, KeystatePre};

/// The component, built from `guest/` by build.rs.
pub const COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/keystate.wasm"));

/// How much a keystore's sandbox may use.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Cap on the guest's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call into the guest.
    pub call_deadline: Duration,
    /// Sandboxes one large message is spread over (each on its own thread);
    /// default: `$KEYSTATE_WORKERS` if set, else the available cores, at most 8.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { memory_bytes: 2 << 30, call_deadline: Duration::from_secs(120), workers: default_workers() }
    }
}

/// `$KEYSTATE_WORKERS` (an operator's cap, e.g. under a CPU quota the core
/// count does not show), else the available cores, at most 8.
fn default_workers() -> usize {
    let from_env = std::env::var("KEYSTATE_WORKERS").ok().and_then(|v| v.trim().parse::<usize>().ok());
    from_env.filter(|&n| n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8))
}

/// How often the epoch ticks; deadlines are whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The most random bytes the guest may ask for at once.
const MAX_RANDOM_REQUEST: u32 = 1 << 16;

struct Runtime {
    engine: Engine,
    pre: KeystatePre<HostState>,
    /// The typed exports' indices, looked up once (each instance gets both
    /// the typed bindings and the untyped instance `raw` calls by name).
    indices: KeystateIndices,
    ticker: Ticker,
}

/// Advances the engine's epoch every `EPOCH_TICK`, but only while some call
/// is inside the guest: an idle process embedding keystate never wakes up.
struct Ticker {
    thread: std::thread::Thread,
    calls_in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Ticker> {
        use std::sync::atomic::Ordering;
        let calls_in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let busy = calls_in_flight.clone();
        let handle = std::thread::Builder::new().name("keystate-epoch".into()).spawn(move || {
            loop {
                if busy.load(Ordering::Acquire) == 0 {
                    std::thread::park();
                } else {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            }
        })?;
        Ok(Ticker { thread: handle.thread().clone(), calls_in_flight })
    }

    /// Count a call in while `f` runs.
    fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        use std::sync::atomic::Ordering;
        if self.calls_in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        let result = f();
        self.calls_in_flight.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

/// The engine and the type-checked component, made once per process.
fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| build_runtime().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot start the keystate component: {e}")))
}

fn build_runtime() -> wasmtime::Result<Runtime> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // For profiling the guest with `perf` (docs/benchmarks.md): name the
    // compiled guest functions in /tmp/perf-<pid>.map.
    if std::env::var_os("KEYSTATE_PERFMAP").is_some_and(|v| !v.is_empty() && v != "0") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)?;
    let component = load_component(&engine)?;
    let mut linker = Linker::new(&engine);
    Keystate::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    let pre = KeystatePre::new(linker.instantiate_pre(&component)?)?;
    let indices = KeystateIndices::new(pre.instance_pre())?;
    let ticker = Ticker::start(engine.clone())?;
    Ok(Runtime { engine, pre, indices, ticker })
}

/// Compiling the component with Cranelift costs tens of milliseconds (much more
/// in debug builds), so the compiled code is cached on disk, keyed by the
/// component's bytes and the engine's compatibility hash.
fn load_component(engine: &Engine) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir() else {
        return Component::new(engine, COMPONENT);
    };
    let mut compat = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let digest = Sha256::digest(COMPONENT);
    let path = dir.join(format!("keystate-{}-{:016x}.cwasm", hex::encode(&digest[..12]), compat.finish()));
    if path.exists() {
        // SAFETY: the file is one this code wrote into the user's own cache
        // directory; wasmtime checks that it was made by a compatible engine
        // and returns an error (not UB) otherwise.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(c);
        }
    }
    let compiled = engine.precompile_component(COMPONENT)?;
    let _ = write_atomically(&dir, &path, &compiled); // a cache that cannot be written is no error
    // SAFETY: bytes just produced by `precompile_component` of this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// `KEYSTATE_CACHE_DIR` (empty or `off` disables), else `$XDG_CACHE_HOME/keystate`,
/// else `~/.cache/keystate`.
fn cache_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("KEYSTATE_CACHE_DIR") {
        Some(v) if v.is_empty() || v == "off" => return None,
        Some(v) => PathBuf::from(v),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("keystate"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/keystate"),
        },
    };
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

fn write_atomically(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What the component's one import, `keystate:kms/host`, answers: wall-clock
/// time and entropy. Every keystore uses [`OsEnv`]; a test or a conformance
/// run injects a deterministic one through [`raw::Instance`](crate::raw::Instance).
pub trait HostEnv: Send {
    /// The import's `now`: wall-clock time in milliseconds since the Unix
    /// epoch (UTC). The component stamps creation and modification times with it.
    fn now(&mut self) -> u64;

    /// The import's `random-bytes`: fill `buf` (at most 64 KiB) with
    /// cryptographically secure random bytes. The component takes keys, salts
    /// and nonces from it. An error makes the guest call trap, so the
    /// operation fails with [`ErrorKind::Internal`] and changes nothing.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
}

/// The operating system's clock and CSPRNG (`getrandom`): the [`HostEnv`] of
/// every keystore.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEnv;

impl HostEnv for OsEnv {
    fn now(&mut self) -> u64 {
        types::millis_now()
    }

    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        getrandom::fill(buf).map_err(|e| std::io::Error::other(format!("OS random source failed: {e}")))
    }
}

/// Per-store host state: the limiter, and what the host import serves.
pub(crate) struct HostState {
    limiter: Limiter,
    env: Box<dyn HostEnv>,
}

/// The store's limiter: [`StoreLimits`] (a grow it refuses traps), except
/// that a grow past the memory cap traps with [`MemoryLimit`], so the error
/// can say which limit was hit.
struct Limiter {
    limits: StoreLimits,
    memory_bytes: usize,
}

/// A guest's attempt to grow its memory past its store's cap.
#[derive(Debug)]
struct MemoryLimit {
    desired: usize,
    cap: usize,
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it ran past its memory limit (growing to {} bytes, the cap is {})", self.desired, self.cap)
    }
}

impl std::error::Error for MemoryLimit {}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(wasmtime::Error::new(MemoryLimit { desired, cap: self.memory_bytes }));
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl bindings::keystate::kms::host::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(self.env.now())
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_REQUEST {
            wasmtime::bail!("guest asked for {len} random bytes (limit {MAX_RANDOM_REQUEST})");
        }
        let mut buf = vec![0u8; len as usize];
        self.env.fill(&mut buf).map_err(|e| wasmtime::format_err!("{e}"))?;
        Ok(buf)
    }
}

impl wit::Host for HostState {}

/// A store configured as every guest's: a limiter enforcing `Limits` (a grow
/// past the memory cap traps) and an epoch deadline renewed for each call.
struct Sandbox {
    store: Store<HostState>,
    deadline_ticks: u64,
}

impl Sandbox {
    fn new(engine: &Engine, limits: Limits, env: Box<dyn HostEnv>) -> Sandbox {
        let limiter = Limiter {
            limits: StoreLimitsBuilder::new().memory_size(limits.memory_bytes).trap_on_grow_failure(true).build(),
            memory_bytes: limits.memory_bytes,
        };
        let mut store = Store::new(engine, HostState { limiter, env });
        store.limiter(|s| &mut s.limiter);
        let deadline_ticks = (limits.call_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(deadline_ticks);
        Sandbox { store, deadline_ticks }
    }

    /// Run `f`, one call into the guest, with a fresh deadline and the epoch
    /// ticking. The outer error is the runtime's; the inner one says why the
    /// call failed (a trap, a limit hit, a host import's error).
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<std::result::Result<T, String>> {
        let ticker = &runtime()?.ticker;
        self.store.set_epoch_deadline(self.deadline_ticks);
        Ok(ticker.during(|| f(&mut self.store)).map_err(|e| {
            if let Some(hit) = e.downcast_ref::<MemoryLimit>() {
                return hit.to_string();
            }
            match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => "it ran past its time limit".to_string(),
                Some(trap) => format!("it trapped ({trap})"),
                None => format!("{e:#}"),
            }
        }))
    }
}

/// Test aid (`raw::run_untrusted`): compile `component` on the keystore
/// engine, instantiate it with no imports in a store configured exactly as a
/// keystore's (with `limits`), and call its top-level function `export` with
/// the arguments `params` makes from its type. A trap or a limit hit is an
/// `Internal` error, as for a keystore. Returns the type and the results.
pub(crate) fn run_untrusted(
    component: &[u8],
    limits: Limits,
    export: &str,
    params: impl FnOnce(&ComponentFunc) -> Result<Vec<Val>>,
) -> Result<(ComponentFunc, Vec<Val>)> {
    let internal = |m: String| Error::new(ErrorKind::Internal, m);
    let rt = runtime()?;
    let component = Component::new(&rt.engine, component)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("not a valid component: {e:#}")))?;
    let instance_pre = Linker::<HostState>::new(&rt.engine)
        .instantiate_pre(&component)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("the component has imports: {e:#}")))?;
    let mut sandbox = Sandbox::new(&rt.engine, limits, Box::new(OsEnv));
    let instance = sandbox
        .call(|store| instance_pre.instantiate(store))?
        .map_err(|why| internal(format!("cannot instantiate the component: {why}")))?;
    let func = instance
        .get_func(&mut sandbox.store, export)
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("the component exports no function {export:?}")))?;
    let ty = func.ty(&sandbox.store);
    let params = params(&ty)?;
    let mut results = vec![Val::Bool(false); ty.results().len()];
    sandbox
        .call(|store| func.call(store, &params, &mut results))?
        .map_err(|why| internal(format!("the component failed: {why}")))?;
    Ok((ty, results))
}

/// One instance of the component in its own store.
pub(crate) struct Guest {
    sandbox: Sandbox,
    bindings: Keystate,
    /// The same instance, for calls by export name (`raw`).
    instance: Instance,
    /// Set when a call trapped: the instance must not be used again.
    pub(crate) broken: bool,
}

type Call<T> = wasmtime::Result<std::result::Result<T, wit::Error>>;

impl Guest {
    pub(crate) fn new(limits: Limits) -> Result<Guest> {
        Guest::with_env(limits, Box::new(OsEnv))
    }

    /// An instance whose host import answers from `env`.
    pub(crate) fn with_env(limits: Limits, env: Box<dyn HostEnv>) -> Result<Guest> {
        let rt = runtime()?;
        let mut sandbox = Sandbox::new(&rt.engine, limits, env);
        let (instance, bindings) = rt
            .pre
            .instance_pre()
            .instantiate(&mut sandbox.store)
            .and_then(|instance| Ok((instance, rt.indices.load(&mut sandbox.store, &instance)?)))
            .map_err(|e| {
                Error::new(ErrorKind::Internal, format!("cannot instantiate the keystate component: {e:#}"))
            })?;
        Ok(Guest { sandbox, bindings, instance, broken: false })
    }

    /// Run one call into the guest with a fresh deadline; a trap marks the
    /// instance broken and becomes an `Internal` error.
    fn run<T>(&mut self, f: impl FnOnce(&Keystate, &mut Store<HostState>) -> wasmtime::Result<T>) -> Result<T> {
        self.enter(|bindings, _, store| f(bindings, store))
    }

    /// `run` for calls by export name, on the untyped instance (`raw`).
    pub(crate) fn run_raw<T>(
        &mut self,
        f: impl FnOnce(&Instance, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        self.enter(|_, instance, store| f(instance, store))
    }

    fn enter<T>(
        &mut self,
        f: impl FnOnce(&Keystate, &Instance, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        if self.broken {
            return Err(Error::new(ErrorKind::Internal, "the keystate component instance is broken"));
        }
        let (bindings, instance) = (&self.bindings, &self.instance);
        self.sandbox.call(|store| f(bindings, instance, store))?.map_err(|why| {
            self.broken = true;
            Error::new(ErrorKind::Internal, format!("the keystate component failed: {why}; it is rebuilt from storage"))
        })
    }

    /// A call whose result carries a guest error.
    fn call<T>(&mut self, f: impl FnOnce(&Keystate, &mut Store<HostState>) -> Call<T>) -> Result<T> {
        self.run(f)?.map_err(guest_error)
    }

    // ---- the exports, in host types ------------------------------------------------

    pub(crate) fn create(
        &mut self,
        hmk: &wit::Secret,
        hmk_id: Option<&str>,
        kpk: &wit::Secret,
        kpk_id: Option<&str>,
    ) -> Result<wit::ChangeSet> {
        self.call(|b, s| b.keystate_kms_keystore().call_create(s, hmk, hmk_id, kpk, kpk_id))
    }

    pub(crate) fn inspect_header(&mut self, header: &[u8]) -> Result<wit::HeaderInfo> {
        self.call(|b, s| b.keystate_kms_keystore().call_inspect_header(s, header))
    }

    pub(crate) fn open(&mut self, header: &wit::Row, hmk: &wit::Secret, kpk: &wit::Secret) -> Result<()> {
        self.call(|b, s| b.keystate_kms_keystore().call_open(s, header, hmk, kpk))
    }

    pub(crate) fn load(&mut self, rows: &[wit::Row], deleted: &[String]) -> Result<Vec<wit::RowFault>> {
        self.call(|b, s| b.keystate_kms_keystore().call_load(s, rows, deleted))
    }

    pub(crate) fn create_group(
        &mut self,
        name: &str,
        cipher: Cipher,
        description: &str,
    ) -> Result<(GroupInfo, wit::ChangeSet)> {
        let (g, c) =
            self.call(|b, s| b.keystate_kms_keystore().call_create_group(s, name, cipher_out(cipher), description))?;
        Ok((group_in(g), c))
    }

    pub(crate) fn groups(&mut self) -> Result<Vec<GroupInfo>> {
        Ok(self.run(|b, s| b.keystate_kms_keystore().call_groups(s))?.into_iter().map(group_in).collect())
    }

    pub(crate) fn group(&mut self, name: &str) -> Result<GroupInfo> {
        self.call(|b, s| b.keystate_kms_keystore().call_group(s, name)).map(group_in)
    }

    pub(crate) fn modify_group(
        &mut self,
        name: &str,
        new_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(GroupInfo, wit::ChangeSet)> {
        let (g, c) = self.call(|b, s| b.keystate_kms_keystore().call_modify_group(s, name, new_name, description))?;
        Ok((group_in(g), c))
    }

    pub(crate) fn delete_group(&mut self, name: &str) -> Result<((), wit::ChangeSet)> {
        Ok(((), self.call(|b, s| b.keystate_kms_keystore().call_delete_group(s, name))?))
    }

    pub(crate) fn create_key(
        &mut self,
        group: &str,
        name: &str,
        state: KeyState,
        passphrase: Option<&str>,
        description: &str,
    ) -> Result<(KeyInfo, wit::ChangeSet)> {
        let (k, c) = self.call(|b, s| {
            b.keystate_kms_keystore().call_create_key(s, group, name, state_out(state), passphrase, description)
        })?;
        Ok((key_in(k), c))
    }

    pub(crate) fn keys(&mut self, group: Option<&str>, state: Option<KeyState>) -> Result<Vec<KeyInfo>> {
        let keys = self.call(|b, s| b.keystate_kms_keystore().call_keys(s, group, state.map(state_out)))?;
        Ok(keys.into_iter().map(key_in).collect())
    }

    pub(crate) fn key(&mut self, group: &str, name: &str) -> Result<KeyInfo> {
        self.call(|b, s| b.keystate_kms_keystore().call_key(s, group, name)).map(key_in)
    }

    pub(crate) fn key_by_tag(&mut self, tag: &str) -> Result<KeyInfo> {
        self.call(|b, s| b.keystate_kms_keystore().call_key_by_tag(s, tag)).map(key_in)
    }

    pub(crate) fn set_state(&mut self, group: &str, name: &str, state: KeyState) -> Result<(KeyInfo, wit::ChangeSet)> {
        let (k, c) = self.call(|b, s| b.keystate_kms_keystore().call_set_state(s, group, name, state_out(state)))?;
        Ok((key_in(k), c))
    }

    pub(crate) fn modify_key(
        &mut self,
        group: &str,
        name: &str,
        new_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(KeyInfo, wit::ChangeSet)> {
        let (k, c) =
            self.call(|b, s| b.keystate_kms_keystore().call_modify_key(s, group, name, new_name, description))?;
        Ok((key_in(k), c))
    }

    pub(crate) fn delete_key(&mut self, group: &str, name: &str) -> Result<((), wit::ChangeSet)> {
        Ok(((), self.call(|b, s| b.keystate_kms_keystore().call_delete_key(s, group, name))?))
    }

    pub(crate) fn recover_key(
        &mut self,
        group: &str,
        name: &str,
        tag: &str,
        passphrase: &str,
        state: KeyState,
    ) -> Result<(KeyInfo, wit::ChangeSet)> {
        let (k, c) = self.call(|b, s| {
            b.keystate_kms_keystore().call_recover_key(s, group, name, tag, passphrase, state_out(state))
        })?;
        Ok((key_in(k), c))
    }

    pub(crate) fn quiesce(&mut self, on: bool) -> Result<((), wit::ChangeSet)> {
        let c = if on {
            self.call(|b, s| b.keystate_kms_keystore().call_quiesce(s))?
        } else {
            self.call(|b, s| b.keystate_kms_keystore().call_unquiesce(s))?
        };
        Ok(((), c))
    }

    pub(crate) fn stats(&mut self) -> Result<wit::KeystoreStats> {
        self.run(|b, s| b.keystate_kms_keystore().call_stats(s))
    }

    pub(crate) fn export_groups(&mut self, groups: Option<&[String]>, passphrase: &str) -> Result<Vec<u8>> {
        self.call(|b, s| b.keystate_kms_keystore().call_export_groups(s, groups, passphrase))
    }

    pub(crate) fn import_groups(
        &mut self,
        container: &[u8],
        passphrase: &str,
        preserve_names: bool,
        preview: bool,
    ) -> Result<(ImportReport, wit::ChangeSet)> {
        let (r, c) = self.call(|b, s| {
            b.keystate_kms_keystore().call_import_groups(s, container, passphrase, preserve_names, preview)
        })?;
        Ok((report_in(r, preview), c))
    }

    // ---- administration ----------------------------------------------------------------

    pub(crate) fn set_actor(&mut self, actor: &str) -> Result<()> {
        self.call(|b, s| b.keystate_kms_keystore().call_set_actor(s, actor))
    }

    pub(crate) fn audit_head(&mut self) -> Result<wit::AuditChainHead> {
        self.call(|b, s| b.keystate_kms_keystore().call_audit_head(s))
    }

    pub(crate) fn read_audit(&mut self, rows: &[wit::Row], cursor: &wit::AuditCursor) -> Result<wit::AuditBatch> {
        self.call(|b, s| b.keystate_kms_keystore().call_read_audit(s, rows, cursor))
    }

    pub(crate) fn audit_end(&mut self, cursor: &wit::AuditCursor) -> Result<Option<wit::AuditFault>> {
        self.call(|b, s| b.keystate_kms_keystore().call_audit_end(s, cursor))
    }

    pub(crate) fn rotate_kpk(&mut self, kpk: &wit::Secret, kpk_id: Option<&str>) -> Result<wit::ChangeSet> {
        self.call(|b, s| b.keystate_kms_keystore().call_rotate_kpk(s, kpk, kpk_id))
    }

    pub(crate) fn begin_rotate_hmk(&mut self, hmk: &wit::Secret, hmk_id: Option<&str>) -> Result<()> {
        self.call(|b, s| b.keystate_kms_keystore().call_begin_rotate_hmk(s, hmk, hmk_id))
    }

    pub(crate) fn reseal_audit(&mut self, rows: &[wit::Row]) -> Result<Vec<wit::Row>> {
        self.call(|b, s| b.keystate_kms_keystore().call_reseal_audit(s, rows))
    }

    pub(crate) fn finish_rotate_hmk(&mut self) -> Result<wit::ChangeSet> {
        self.call(|b, s| b.keystate_kms_keystore().call_finish_rotate_hmk(s))
    }

    pub(crate) fn encrypt(&mut self, group: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.call(|b, s| b.keystate_kms_keystore().call_encrypt(s, group, plaintext, aad))
    }

    pub(crate) fn decrypt(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.call(|b, s| b.keystate_kms_keystore().call_decrypt(s, ciphertext, aad))
    }

    pub(crate) fn begin_encrypt(&mut self, group: &str, aad: &[u8], chunk_size: u32) -> Result<ResourceAny> {
        self.call(|b, s| b.keystate_kms_keystore().call_begin_encrypt(s, group, aad, chunk_size))
    }

    /// The header of a started encryption, to share with `seal_chunks` on other instances.
    pub(crate) fn encryptor_header(&mut self, handle: ResourceAny) -> Result<Vec<u8>> {
        self.run(|b, s| b.keystate_kms_keystore().encryptor().call_header(s, handle))
    }

    pub(crate) fn seal_chunks(
        &mut self,
        header: &[u8],
        aad: &[u8],
        first: u64,
        plaintext: &[u8],
        last: bool,
    ) -> Result<Vec<u8>> {
        self.call(|b, s| b.keystate_kms_keystore().call_seal_chunks(s, header, aad, first, plaintext, last))
    }

    pub(crate) fn open_chunks(
        &mut self,
        header: &[u8],
        aad: &[u8],
        first: u64,
        ciphertext: &[u8],
        last: bool,
    ) -> Result<Vec<u8>> {
        self.call(|b, s| b.keystate_kms_keystore().call_open_chunks(s, header, aad, first, ciphertext, last))
    }

    pub(crate) fn drop_encryptor(&mut self, handle: ResourceAny) {
        if !self.broken {
            let _ = self.run(|_, s| handle.resource_drop(s));
        }
    }

    pub(crate) fn can_transition(&mut self, from: KeyState, to: KeyState) -> Result<bool> {
        self.run(|b, s| b.keystate_kms_policy().call_can_transition(s, state_out(from), state_out(to)))
    }

    pub(crate) fn allowed_operations(&mut self, state: KeyState) -> Result<Vec<Operation>> {
        let ops = self.run(|b, s| b.keystate_kms_policy().call_allowed_operations(s, state_out(state)))?;
        Ok(ops
            .into_iter()
            .map(|op| match op {
                wit::Operation::Encrypt => Operation::Encrypt,
                wit::Operation::Decrypt => Operation::Decrypt,
                wit::Operation::Delete => Operation::Delete,
            })
            .collect())
    }
}

fn guest_error(e: wit::Error) -> Error {
    use wit::Error as E;
    let (kind, message) = match e {
        E::NotFound(m) => (ErrorKind::NotFound, m),
        E::AlreadyExists(m) => (ErrorKind::AlreadyExists, m),
        E::InvalidTransition(m) => (ErrorKind::InvalidTransition, m),
        E::KeyUnusable(m) => (ErrorKind::KeyUnusable, m),
        E::NotDeletable(m) => (ErrorKind::NotDeletable, m),
        E::WrongPassphrase(m) => (ErrorKind::WrongPassphrase, m),
        E::Integrity(m) => (ErrorKind::Integrity, m),
        E::Quiesced(m) => (ErrorKind::Quiesced, m),
        E::InvalidArgument(m) => (ErrorKind::InvalidArgument, m),
    };
    Error::new(kind, message)
}

fn state_out(s: KeyState) -> wit::KeyState {
    match s {
        KeyState::Prelive => wit::KeyState::Prelive,
        KeyState::Active => wit::KeyState::Active,
        KeyState::Inactive => wit::KeyState::Inactive,
        KeyState::Deprecated => wit::KeyState::Deprecated,
        KeyState::Terminated => wit::KeyState::Terminated,
    }
}

pub(crate) fn state_in(s: wit::KeyState) -> KeyState {
    match s {
        wit::KeyState::Prelive => KeyState::Prelive,
        wit::KeyState::Active => KeyState::Active,
        wit::KeyState::Inactive => KeyState::Inactive,
        wit::KeyState::Deprecated => KeyState::Deprecated,
        wit::KeyState::Terminated => KeyState::Terminated,
    }
}

fn cipher_out(c: Cipher) -> wit::Cipher {
    match c {
        Cipher::Aes256Gcm => wit::Cipher::Aes256Gcm,
        Cipher::Aes128Gcm => wit::Cipher::Aes128Gcm,
        Cipher::ChaCha20Poly1305 => wit::Cipher::Chacha20Poly1305,
    }
}

fn cipher_in(c: wit::Cipher) -> Cipher {
    match c {
        wit::Cipher::Aes256Gcm => Cipher::Aes256Gcm,
        wit::Cipher::Aes128Gcm => Cipher::Aes128Gcm,
        wit::Cipher::Chacha20Poly1305 => Cipher::ChaCha20Poly1305,
    }
}

fn group_in(g: wit::GroupInfo) -> GroupInfo {
    GroupInfo {
        tag: g.tag,
        name: g.name,
        cipher: cipher_in(g.cipher),
        description: g.description,
        created: types::time_from_millis(g.created),
        modified: types::time_from_millis(g.modified),
        active_key: g.active_key,
    }
}

fn key_in(k: wit::KeyInfo) -> KeyInfo {
    KeyInfo {
        tag: k.tag,
        name: k.name,
        group: k.group,
        state: state_in(k.state),
        description: k.description,
        created: types::time_from_millis(k.created),
        modified: types::time_from_millis(k.modified),
        recoverable: k.recoverable,
    }
}

fn skip_in(s: Option<wit::Skip>) -> Option<Skip> {
    s.map(|s| Skip {
        reason: match s.reason {
            wit::SkipReason::TagExists => SkipReason::TagExists,
            wit::SkipReason::MaterialExists => SkipReason::MaterialExists,
            wit::SkipReason::GroupExists => SkipReason::GroupExists,
            wit::SkipReason::NoNewKeys => SkipReason::NoNewKeys,
        },
        detail: s.detail,
    })
}

fn report_in(r: wit::ImportReport, preview: bool) -> ImportReport {
    ImportReport {
        preview,
        groups: r
            .groups
            .into_iter()
            .map(|g| ImportedGroup {
                source_name: g.source_name,
                name: g.name,
                cipher: cipher_in(g.cipher),
                created: g.skipped.is_none(),
                skipped: skip_in(g.skipped),
            })
            .collect(),
        keys: r
            .keys
            .into_iter()
            .map(|k| ImportedKey {
                source_group: k.source_group,
                group: k.group,
                name: k.name,
                tag: k.tag,
                state: state_in(k.state),
                recoverable: k.recoverable,
                imported: k.skipped.is_none(),
                skipped: skip_in(k.skipped),
            })
            .collect(),
    }
}

/// The engine and the compiled component of this process (`raw::functions`).
pub(crate) fn engine_and_component() -> Result<(&'static Engine, &'static Component)> {
    let rt = runtime()?;
    Ok((&rt.engine, rt.pre.instance_pre().component()))
}

/// The import names of the built component, e.g. `keystate:kms/host@0.1.0`.
pub fn component_imports() -> Result<Vec<String>> {
    let rt = runtime()?;
    let component = load_component(&rt.engine).map_err(|e| Error::new(ErrorKind::Internal, format!("{e:#}")))?;
    Ok(component.component_type().imports(&rt.engine).map(|(name, _)| name.to_string()).collect())
}
