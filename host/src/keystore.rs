//! `Keystore`: the Rust API. Every rule lives in the component; this file only
//! moves rows between storage and the sandbox, in the order that keeps them
//! consistent:
//!
//! - before each operation, rows other processes changed are loaded first;
//! - a mutation runs inside a storage write (other writers wait), so what it
//!   read is what it commits against; its change set is persisted atomically
//!   and only then acknowledged;
//! - if persisting fails or the component traps, the instance is rebuilt from
//!   storage before the next operation: the mutation did not happen.

mod admin;
mod batch;

pub use batch::{Applied, Batch, Mutation};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use zeroize::{Zeroize, Zeroizing};

use crate::atomic_file::write_atomically;
use crate::error::{Error, ErrorKind, Result};
use crate::keyfile;
use crate::sandbox::{Guest, Limits, wit};
use crate::spread;
use crate::storage::{self, Backend, Location};
use crate::types::{Cipher, GroupInfo, KeyInfo, KeyState, Operation, RowFault, Stats};

/// How often a mutation runs when it keeps meeting a conflict or a lost connection.
const WRITE_ATTEMPTS: u32 = 5;
/// Rows per `load` call when a keystore is opened.
const OPEN_SLICE_ROWS: usize = 4096;

/// Options for [`Keystore::create_with`].
#[derive(Default)]
pub struct CreateOptions<'a> {
    /// Pass phrase of the host master key; `None`: a random key in `<path>.hmk`
    /// (for a PostgreSQL URL, in `<key_files>.hmk` when the URL has `key_files=`).
    pub hmk_passphrase: Option<&'a str>,
    /// Pass phrase of the key protection key; `None`: a random key in `<path>.kpk`.
    pub kpk_passphrase: Option<&'a str>,
    /// Labels for the HMK and KPK (random labels when `None`).
    pub hmk_id: Option<&'a str>,
    pub kpk_id: Option<&'a str>,
    /// Who the audit trail names for this handle's changes
    /// (`None`: [`default_actor`](crate::default_actor)).
    pub actor: Option<&'a str>,
    pub limits: Limits,
}

/// Options for [`Keystore::open_with`].
#[derive(Default)]
pub struct OpenOptions<'a> {
    /// Needed when the keystore's HMK comes from a pass phrase; else the key file is read.
    pub hmk_passphrase: Option<&'a str>,
    pub kpk_passphrase: Option<&'a str>,
    /// Who the audit trail names for this handle's changes
    /// (`None`: [`default_actor`](crate::default_actor)).
    pub actor: Option<&'a str>,
    pub limits: Limits,
}

/// What a keystore's header says, readable without any key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeystoreInfo {
    pub path: String,
    pub format_version: u32,
    pub hmk: Protection,
    pub kpk: Protection,
    pub quiesced: bool,
}

/// How the HMK or KPK of a keystore is kept.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Protection {
    pub id: String,
    /// Does the key come from a pass phrase (else it is a random key in a key file)?
    pub from_passphrase: bool,
    /// The key file holding a random key; `None` when the key comes from a pass
    /// phrase, or when a PostgreSQL URL does not say where its key files are.
    pub key_file: Option<PathBuf>,
}

impl Protection {
    fn of(location: &Location, ext: &str, id: String, kind: wit::SecretKind) -> Protection {
        let from_passphrase = matches!(kind, wit::SecretKind::Passphrase);
        let key_file = location.key_file_base().filter(|_| !from_passphrase).map(|base| keyfile::path_for(base, ext));
        Protection { id, from_passphrase, key_file }
    }

    /// Does opening the keystore need this key's pass phrase?
    pub fn needs_passphrase(&self) -> bool {
        self.from_passphrase
    }
}

/// Read a keystore's header: its HMK and KPK IDs, whether each comes from a
/// pass phrase or a key file (and which), and whether it is quiesced.
pub fn inspect(path: impl AsRef<Path>) -> Result<KeystoreInfo> {
    let location = Location::parse(path.as_ref())?;
    let mut backend = location.open()?;
    let header = backend
        .read_row("header")?
        .ok_or_else(|| Error::new(ErrorKind::Integrity, format!("keystore {} has no header row", location.shown())))?;
    let info = pure_call(|g| g.inspect_header(&header.body))?;
    Ok(KeystoreInfo {
        path: location.shown(),
        format_version: info.format_version,
        hmk: Protection::of(&location, "hmk", info.hmk_id, info.hmk_kind),
        kpk: Protection::of(&location, "kpk", info.kpk_id, info.kpk_kind),
        quiesced: info.quiesced,
    })
}

/// A secret as kept by the host to rebuild the sandbox: zeroized on drop.
enum Secret {
    Passphrase(Zeroizing<String>),
    Raw(Zeroizing<Vec<u8>>),
}

impl Secret {
    fn to_wit(&self) -> WitSecret {
        WitSecret(match self {
            Secret::Passphrase(p) => wit::Secret::Passphrase(p.to_string()),
            Secret::Raw(r) => wit::Secret::Raw(r.to_vec()),
        })
    }
}

/// A `wit::Secret` that wipes its copy once the call is done.
struct WitSecret(wit::Secret);

impl Drop for WitSecret {
    fn drop(&mut self) {
        match &mut self.0 {
            wit::Secret::Passphrase(p) => p.zeroize(),
            wit::Secret::Raw(r) => r.zeroize(),
        }
    }
}

/// An open keystore. Safe to share between threads; operations are serialized.
pub struct Keystore {
    inner: Mutex<Inner>,
    /// Idle sandboxes for encryption and decryption: threads sharing one
    /// handle run their crypto in parallel, each on its own instance, while
    /// lookups and mutations stay on the one instance in `inner`.
    readers: Mutex<Vec<Reader>>,
    /// The storage sequence number the last operation ran against (a reader
    /// sandbox may be ahead of the primary instance): see `committed_seq`.
    last_seq: AtomicU64,
}

/// A sandbox that serves encryption and decryption, and the storage
/// sequence number its model is current to.
struct Reader {
    guest: Guest,
    seq: u64,
    /// `Inner::generation` when it was opened: a reader opened with keys
    /// since rotated away is dropped, not brought up to date.
    generation: u64,
}

struct Inner {
    guest: Guest,
    backend: Box<dyn Backend>,
    hmk: Secret,
    kpk: Secret,
    limits: Limits,
    /// Storage sequence number the guest is current to.
    seq: u64,
    format_version: u32,
    faults: BTreeMap<String, String>,
    /// Base name of random key files (`<base>.hmk`): the keystore file, or a
    /// URL's `key_files=`; `None` for a URL that names no place for them.
    key_files: Option<PathBuf>,
    /// Named in the audit entries of this handle's mutations.
    actor: String,
    /// Bumped whenever this handle's HMK or KPK changes (rotation).
    generation: u64,
}

impl Keystore {
    /// Create a new keystore at `path`: a SQLite file, or a `postgres://` URL.
    /// A `None` pass phrase makes a random key kept in a key file beside it
    /// (`<path>.hmk`, `<path>.kpk`; for a URL, where its `key_files=` says).
    pub fn create(
        path: impl AsRef<Path>,
        hmk_passphrase: Option<&str>,
        kpk_passphrase: Option<&str>,
    ) -> Result<Keystore> {
        Keystore::create_with(path, CreateOptions { hmk_passphrase, kpk_passphrase, ..Default::default() })
    }

    pub fn create_with(path: impl AsRef<Path>, options: CreateOptions) -> Result<Keystore> {
        let location = Location::parse(path.as_ref())?;
        location.check_new()?;
        let mut written = Vec::new();
        let mut created = false;
        let result = (|| {
            let hmk = new_secret(&location, "hmk", "HMK", options.hmk_passphrase, &mut written)?;
            let kpk = new_secret(&location, "kpk", "KPK", options.kpk_passphrase, &mut written)?;
            let actor = options.actor.map(str::to_string).unwrap_or_else(crate::default_actor);
            let mut guest = Guest::new(options.limits)?;
            guest.set_actor(&actor)?;
            let changes = guest.create(&hmk.to_wit().0, options.hmk_id, &kpk.to_wit().0, options.kpk_id)?;
            let mut backend = location.create()?;
            created = true;
            backend.begin_write()?;
            let format_version = guest.inspect_header(&changes_header(&changes)?)?.format_version;
            let seq = backend.apply(&change_set(changes))?;
            backend.commit()?;
            Ok(Inner {
                guest,
                backend,
                hmk,
                kpk,
                limits: options.limits,
                seq,
                format_version,
                faults: BTreeMap::new(),
                key_files: location.key_file_base().map(Path::to_path_buf),
                actor,
                generation: 0,
            })
        })();
        match result {
            Ok(inner) => Ok(Keystore::from_inner(inner)),
            Err(e) => {
                for file in &written {
                    let _ = std::fs::remove_file(file);
                }
                if created {
                    location.remove_new();
                }
                Err(e)
            }
        }
    }

    /// Open the keystore at `path`. A `None` pass phrase reads the key file.
    pub fn open(
        path: impl AsRef<Path>,
        hmk_passphrase: Option<&str>,
        kpk_passphrase: Option<&str>,
    ) -> Result<Keystore> {
        Keystore::open_with(path, OpenOptions { hmk_passphrase, kpk_passphrase, ..Default::default() })
    }

    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Keystore> {
        let location = Location::parse(path.as_ref())?;
        let mut backend = location.open()?;
        let mut guest = Guest::new(options.limits)?;
        let snapshot = backend.load_all()?;
        let header = header_row(&snapshot.rows, &backend.location())?;
        let info = guest.inspect_header(&header.body)?;
        let actor = options.actor.map(str::to_string).unwrap_or_else(crate::default_actor);
        guest.set_actor(&actor)?;
        let format_version = info.format_version;
        // Not `?` yet: a key file that does not open may be finished by a staged rotation.
        let hmk = existing_secret(&location, "hmk", "HMK", info.hmk_kind, options.hmk_passphrase);
        let kpk = existing_secret(&location, "kpk", "KPK", info.kpk_kind, options.kpk_passphrase);
        let mut inner = Inner {
            guest,
            backend,
            hmk: Secret::Raw(Zeroizing::new(Vec::new())),
            kpk: Secret::Raw(Zeroizing::new(Vec::new())),
            limits: options.limits,
            seq: 0,
            format_version,
            faults: BTreeMap::new(),
            key_files: location.key_file_base().map(Path::to_path_buf),
            actor,
            generation: 0,
        };
        admin::start_finishing_rotation(&mut inner, &info, hmk, kpk, snapshot)?;
        Ok(Keystore::from_inner(inner))
    }

    fn from_inner(inner: Inner) -> Keystore {
        let last_seq = AtomicU64::new(inner.seq);
        Keystore { inner: Mutex::new(inner), readers: Mutex::new(Vec::new()), last_seq }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| {
            // A panic while holding the lock: trust storage, not the instance.
            let mut inner = poisoned.into_inner();
            inner.guest.broken = true;
            inner
        })
    }

    /// Run a read-only operation on an up-to-date model.
    pub(crate) fn read<T>(&self, op: impl FnOnce(&mut Guest) -> Result<T>) -> Result<T> {
        let mut inner = self.lock();
        inner.heal()?;
        inner.catch_up()?;
        self.last_seq.store(inner.seq, Ordering::Relaxed);
        op(&mut inner.guest)
    }

    /// Where this keystore lives: its file, or its URL without the password.
    pub fn location(&self) -> String {
        self.lock().backend.location()
    }

    /// Run a mutation: inside a storage write, on an up-to-date model, persisted
    /// before it returns. A conflict with another writer or a lost connection
    /// runs it again from storage's state, a bounded number of times.
    pub(crate) fn mutate<T>(&self, op: impl Fn(&mut Guest) -> Result<(T, wit::ChangeSet)>) -> Result<T> {
        let mut inner = self.lock();
        let mut attempt = 1;
        loop {
            let result = inner.mutate(&op);
            self.last_seq.store(inner.seq, Ordering::Relaxed);
            match result {
                Err(e) if e.is_retryable() && attempt < WRITE_ATTEMPTS => {
                    // Back off a little more each time, so that competing hosts spread out.
                    std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
                    attempt += 1;
                }
                Err(e) if e.is_retryable() => {
                    return Err(Error::new(
                        ErrorKind::Storage,
                        format!(
                            "gave up after {WRITE_ATTEMPTS} attempts, each meeting a conflict or a lost connection; the last: {e}"
                        ),
                    ));
                }
                result => return result,
            }
        }
    }

    // ---- groups ---------------------------------------------------------------------

    pub fn create_group(&self, name: &str, cipher: Cipher, description: &str) -> Result<GroupInfo> {
        self.mutate(|g| g.create_group(name, cipher, description))
    }

    pub fn groups(&self) -> Result<Vec<GroupInfo>> {
        self.read(|g| g.groups())
    }

    pub fn group(&self, name: &str) -> Result<GroupInfo> {
        self.read(|g| g.group(name))
    }

    /// Rename and/or change the description; `None` leaves a field as it is.
    pub fn modify_group(&self, name: &str, new_name: Option<&str>, description: Option<&str>) -> Result<GroupInfo> {
        self.mutate(|g| g.modify_group(name, new_name, description))
    }

    /// Delete an empty group.
    pub fn delete_group(&self, name: &str) -> Result<()> {
        self.mutate(|g| g.delete_group(name))
    }

    // ---- keys -----------------------------------------------------------------------

    /// Create a key in `state` (prelive or active). With a pass phrase the key
    /// is derived from it and can be recovered after deletion.
    pub fn create_key(
        &self,
        group: &str,
        name: &str,
        state: KeyState,
        passphrase: Option<&str>,
        description: &str,
    ) -> Result<KeyInfo> {
        self.mutate(|g| g.create_key(group, name, state, passphrase, description))
    }

    /// Keys, optionally of one group and/or in one state, sorted by group and name.
    pub fn keys(&self, group: Option<&str>, state: Option<KeyState>) -> Result<Vec<KeyInfo>> {
        self.read(|g| g.keys(group, state))
    }

    pub fn key(&self, group: &str, name: &str) -> Result<KeyInfo> {
        self.read(|g| g.key(group, name))
    }

    pub fn key_by_tag(&self, tag: &str) -> Result<KeyInfo> {
        self.read(|g| g.key_by_tag(tag))
    }

    /// Move a key one adjacent step; activating bumps the group's active key to inactive.
    pub fn set_state(&self, group: &str, name: &str, state: KeyState) -> Result<KeyInfo> {
        self.mutate(|g| g.set_state(group, name, state))
    }

    pub fn modify_key(
        &self,
        group: &str,
        name: &str,
        new_name: Option<&str>,
        description: Option<&str>,
    ) -> Result<KeyInfo> {
        self.mutate(|g| g.modify_key(group, name, new_name, description))
    }

    /// Delete a prelive or terminated key.
    pub fn delete_key(&self, group: &str, name: &str) -> Result<()> {
        self.mutate(|g| g.delete_key(group, name))
    }

    /// Re-create a deleted pass phrase key from its tag and pass phrase.
    pub fn recover_key(
        &self,
        group: &str,
        name: &str,
        tag: &str,
        passphrase: &str,
        state: KeyState,
    ) -> Result<KeyInfo> {
        self.mutate(|g| g.recover_key(group, name, tag, passphrase, state))
    }

    // ---- keystore ---------------------------------------------------------------------

    /// Make the keystore read-only for every process: mutations fail with `Quiesced`.
    pub fn quiesce(&self) -> Result<()> {
        self.mutate(|g| g.quiesce(true))
    }

    pub fn unquiesce(&self) -> Result<()> {
        self.mutate(|g| g.quiesce(false))
    }

    pub fn stats(&self) -> Result<Stats> {
        let mut inner = self.lock();
        inner.heal()?;
        inner.catch_up()?;
        let s = inner.guest.stats()?;
        let states = [
            ("prelive", s.prelive),
            ("active", s.active),
            ("inactive", s.inactive),
            ("deprecated", s.deprecated),
            ("terminated", s.terminated),
        ];
        Ok(Stats {
            groups: s.groups,
            keys: states.iter().map(|(_, n)| n).sum(),
            states: states.into_iter().collect(),
            corrupt_rows: s.corrupt_rows,
            quiesced: s.quiesced,
            hmk_id: s.hmk_id,
            kpk_id: s.kpk_id,
            audit_entries: s.audit_entries,
            format_version: inner.format_version,
            path: inner.backend.location(),
        })
    }

    /// Rows that failed to load (tampered or corrupt), with why.
    pub fn faults(&self) -> Result<Vec<RowFault>> {
        let mut inner = self.lock();
        inner.heal()?;
        inner.catch_up()?;
        Ok(inner.faults.iter().map(|(id, message)| RowFault { id: id.clone(), message: message.clone() }).collect())
    }

    /// The storage sequence number this handle's last operation ran against
    /// (after a mutation that changed rows: the number of its commit). Lets a
    /// history checker put operations from many processes in commit order.
    #[doc(hidden)]
    pub fn committed_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    // ---- data -------------------------------------------------------------------------

    /// Encrypt with the group's active key. A large message is spread over
    /// several sandboxes in parallel (`Limits::workers`); the bytes are the same.
    pub fn encrypt(&self, group: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        if plaintext.len() <= spread::RUN_BYTES {
            return self.with_readers(1, |g| g[0].encrypt(group, plaintext, aad));
        }
        self.with_readers(self.workers_for(plaintext.len()), |guests| {
            let header = new_header(guests[0], group, aad)?;
            let message = spread::Message::new(&header, aad).ok_or_else(|| bad_header(&header))?;
            let mut out = header.clone();
            out.extend(message.seal(guests, 0, plaintext, true)?);
            Ok(out)
        })
    }

    /// Decrypt with the key named by the tag inside the ciphertext.
    pub fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let message = ciphertext.get(..spread::HEADER_LEN).and_then(|h| spread::Message::new(h, aad));
        match message {
            Some(message) if ciphertext.len() > message.sealed_run() => self
                .with_readers(self.workers_for(ciphertext.len()), |guests| {
                    message.open(guests, 0, &ciphertext[spread::HEADER_LEN..], true)
                }),
            // Small, or too broken to cut up: one call, which also explains what is wrong.
            _ => self.with_readers(1, |g| g[0].decrypt(ciphertext, aad)),
        }
    }

    /// How many sandboxes a message of `len` bytes is worth spreading over.
    fn workers_for(&self, len: usize) -> usize {
        let limits = self.lock().limits;
        len.div_ceil(spread::RUN_BYTES).clamp(1, limits.workers.max(1))
    }

    /// Run a data operation on one reader sandbox (see `with_readers`).
    pub(crate) fn with_reader<T>(&self, op: impl FnOnce(&mut Guest) -> Result<T>) -> Result<T> {
        self.with_readers(1, |g| op(g[0]))
    }

    /// Run a data operation on `count` reader sandboxes that are current with
    /// storage, without holding the handle's lock while it runs.
    fn with_readers<T>(&self, count: usize, op: impl FnOnce(&mut [&mut Guest]) -> Result<T>) -> Result<T> {
        let idle: Vec<Reader> = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            let keep = pool.len().saturating_sub(count);
            pool.split_off(keep)
        };
        let mut readers = {
            let mut inner = self.lock();
            inner.heal()?;
            inner.catch_up()?;
            let mut idle = idle.into_iter();
            (0..count).map(|_| inner.bring_up_to_date(idle.next())).collect::<Result<Vec<Reader>>>()?
        };
        if let Some(seq) = readers.iter().map(|r| r.seq).max() {
            self.last_seq.store(seq, Ordering::Relaxed);
        }
        let result = op(&mut readers.iter_mut().map(|r| &mut r.guest).collect::<Vec<_>>());
        readers.retain(|r| !r.guest.broken);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).extend(readers);
        result
    }

    /// Encrypt a stream of any size in bounded memory; `progress` gets the
    /// number of bytes read from `input` so far. Returns the plaintext size.
    pub fn encrypt_stream(
        &self,
        group: &str,
        input: &mut dyn Read,
        output: &mut dyn Write,
        aad: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let workers = self.workers_for(usize::MAX);
        self.with_readers(workers, |guests| {
            let header = new_header(guests[0], group, aad)?;
            let message = spread::Message::new(&header, aad).ok_or_else(|| bad_header(&header))?;
            write_out(output, &header)?;
            // Whole runs per batch, so every batch but the last is whole chunks.
            let mut batch = Zeroizing::new(vec![0u8; message.plain_run() * guests.len()]);
            let (mut read, mut first) = (0u64, 0u64);
            loop {
                let n = read_full(input, &mut batch)?;
                read += n as u64;
                let last = n < batch.len();
                write_out(output, &message.seal(guests, first, &batch[..n], last)?)?;
                first += message.whole_plain_chunks(n);
                progress(read);
                if last {
                    output.flush().map_err(|e| Error::storage("writing output", e))?;
                    return Ok(read);
                }
            }
        })
    }

    /// Decrypt a stream of any size in bounded memory. Plaintext is written as
    /// it is authenticated chunk by chunk; only a successful return proves the
    /// data was complete, so on error discard what was written. `progress`
    /// counts bytes read from `input`. Returns the plaintext size.
    pub fn decrypt_stream(
        &self,
        input: &mut dyn Read,
        output: &mut dyn Write,
        aad: &[u8],
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut header = [0u8; spread::HEADER_LEN];
        let got = read_full(input, &mut header)?;
        progress(got as u64);
        let Some(message) = spread::Message::new(&header[..got], aad) else {
            // Cut short or malformed: the component says how.
            return self.with_readers(1, |g| g[0].decrypt(&header[..got], aad).map(|_| 0));
        };
        let workers = self.workers_for(usize::MAX);
        self.with_readers(workers, |guests| {
            // One byte more than a batch of whole runs: a batch that is not
            // followed by more data holds the final chunk.
            let batch_len = message.sealed_run() * guests.len();
            let mut batch = vec![0u8; batch_len + 1];
            let mut have = 0;
            let (mut read, mut written, mut first) = (got as u64, 0u64, 0u64);
            loop {
                let n = read_full(input, &mut batch[have..])?;
                read += n as u64;
                have += n;
                let last = have <= batch_len;
                let take = if last { have } else { batch_len };
                let plaintext = message.open(guests, first, &batch[..take], last)?;
                write_out(output, &plaintext)?;
                written += plaintext.len() as u64;
                progress(read);
                if last {
                    output.flush().map_err(|e| Error::storage("writing output", e))?;
                    return Ok(written);
                }
                first += message.whole_sealed_chunks(batch_len);
                batch.copy_within(batch_len..have, 0);
                have -= batch_len;
            }
        })
    }

    /// Encrypt a file; `dst` appears only once it is complete. Returns the plaintext size.
    pub fn encrypt_file(&self, group: &str, src: impl AsRef<Path>, dst: impl AsRef<Path>, aad: &[u8]) -> Result<u64> {
        with_files(src.as_ref(), dst.as_ref(), |input, output| {
            self.encrypt_stream(group, input, output, aad, &mut |_| {})
        })
    }

    /// Decrypt a file; `dst` appears only if the whole file authenticated.
    /// Returns the plaintext size.
    pub fn decrypt_file(&self, src: impl AsRef<Path>, dst: impl AsRef<Path>, aad: &[u8]) -> Result<u64> {
        with_files(src.as_ref(), dst.as_ref(), |input, output| self.decrypt_stream(input, output, aad, &mut |_| {}))
    }
}

impl Inner {
    /// One attempt at a mutation. On any failure nothing is persisted, and a
    /// guest that already applied the change is rebuilt from storage.
    fn mutate<T>(&mut self, op: &impl Fn(&mut Guest) -> Result<(T, wit::ChangeSet)>) -> Result<T> {
        self.heal()?;
        self.backend.begin_write()?;
        let result = self.catch_up().and_then(|_| op(&mut self.guest));
        let (value, changes) = match result {
            Ok(done) => done,
            Err(e) => {
                // The guest refused (it changed nothing) or failed (it is marked broken).
                self.backend.rollback();
                return Err(e);
            }
        };
        let persisted = match changes.upserts.is_empty() && changes.deletes.is_empty() {
            true => self.backend.commit().map(|_| self.seq),
            false => self.backend.apply(&change_set(changes)).and_then(|seq| self.backend.commit().map(|_| seq)),
        };
        match persisted {
            Ok(seq) => {
                self.seq = seq;
                Ok(value)
            }
            Err(e) => {
                self.backend.rollback();
                // The guest already applied the mutation: rebuild it from storage.
                self.guest.broken = true;
                let _ = self.heal();
                Err(e)
            }
        }
    }

    /// Open the guest on a full snapshot of storage.
    fn start(&mut self, snapshot: storage::Changes) -> Result<()> {
        let faults = open_guest(&mut self.guest, &self.hmk, &self.kpk, &snapshot, &self.backend.location())?;
        self.faults = faults.into_iter().map(|f| (f.id, f.message)).collect();
        self.seq = snapshot.seq;
        Ok(())
    }

    /// A reader current with storage: `idle` brought up to date, or a new one.
    /// Call only right after `catch_up`, under the handle's lock.
    fn bring_up_to_date(&mut self, idle: Option<Reader>) -> Result<Reader> {
        let idle = idle.filter(|r| r.generation == self.generation);
        let mut reader = match idle {
            Some(reader) if reader.seq == self.seq => return Ok(reader),
            Some(reader) => reader,
            None => {
                // `rows_since(0)`: every live row, without disturbing this
                // connection's change detection.
                let snapshot = self.backend.rows_since(0)?;
                let mut guest = Guest::new(self.limits)?;
                open_guest(&mut guest, &self.hmk, &self.kpk, &snapshot, &self.backend.location())?;
                Reader { guest, seq: snapshot.seq, generation: self.generation }
            }
        };
        if reader.seq != self.seq {
            let changes = self.backend.rows_since(reader.seq)?;
            let rows: Vec<wit::Row> = changes.rows.into_iter().map(wit_row).collect();
            reader.guest.load(&rows, &changes.deleted)?;
            reader.seq = changes.seq;
        }
        Ok(reader)
    }

    /// Rebuild a broken instance from storage.
    fn heal(&mut self) -> Result<()> {
        if !self.guest.broken {
            return Ok(());
        }
        self.guest = Guest::new(self.limits)?;
        let result = (|| {
            self.guest.set_actor(&self.actor)?;
            let snapshot = self.backend.load_all()?;
            self.start(snapshot)
        })();
        // Until a rebuild succeeds (e.g. the keys were rotated by another
        // process), every operation tries again and fails the same clean way.
        self.guest.broken |= result.is_err();
        result
    }

    /// Load what other processes changed since this one last looked.
    fn catch_up(&mut self) -> Result<()> {
        let Some(changes) = self.backend.changes_since(self.seq)? else {
            return Ok(());
        };
        let rows: Vec<wit::Row> = changes.rows.into_iter().map(wit_row).collect();
        for id in rows.iter().map(|r| &r.id).chain(&changes.deleted) {
            self.faults.remove(id);
        }
        let faults = self.guest.load(&rows, &changes.deleted).inspect_err(|_| {
            // The model may be half updated (e.g. the keys were rotated
            // elsewhere): rebuild it from storage before anything else.
            self.guest.broken = true;
        })?;
        self.faults.extend(faults.into_iter().map(|f| (f.id, f.message)));
        self.seq = changes.seq;
        Ok(())
    }
}

/// Open `guest` on a full snapshot; returns the rows that failed to load.
fn open_guest(
    guest: &mut Guest,
    hmk: &Secret,
    kpk: &Secret,
    snapshot: &storage::Changes,
    location: &str,
) -> Result<Vec<wit::RowFault>> {
    let header = header_row(&snapshot.rows, location)?;
    let (hmk, kpk) = (hmk.to_wit(), kpk.to_wit());
    guest.open(&wit_row(header), &hmk.0, &kpk.0)?;
    // A committed snapshot loads in any split, so it goes in slices: the
    // guest never holds a copy of every row beside its model (its memory
    // does not shrink back), and no call runs long.
    let mut rows = snapshot.rows.iter().filter(|r| r.id != "header").peekable();
    let mut faults = Vec::new();
    while rows.peek().is_some() {
        let slice: Vec<wit::Row> = rows.by_ref().take(OPEN_SLICE_ROWS).map(wit_row).collect();
        faults.extend(guest.load(&slice, &[])?);
    }
    Ok(faults)
}

fn header_row<'a>(rows: &'a [storage::Row], location: &str) -> Result<&'a storage::Row> {
    rows.iter()
        .find(|r| r.id == "header")
        .ok_or_else(|| Error::new(ErrorKind::Integrity, format!("keystore {location} has no header row")))
}

fn changes_header(c: &wit::ChangeSet) -> Result<Vec<u8>> {
    c.upserts
        .iter()
        .find(|r| r.id == "header")
        .map(|r| r.body.clone())
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the component made no header row"))
}

fn wit_row(r: impl std::borrow::Borrow<storage::Row>) -> wit::Row {
    let r = r.borrow();
    wit::Row { id: r.id.clone(), version: r.version, body: r.body.clone() }
}

fn change_set(c: wit::ChangeSet) -> storage::ChangeSet {
    storage::ChangeSet {
        upserts: c.upserts.into_iter().map(|r| storage::Row { id: r.id, version: r.version, body: r.body }).collect(),
        deletes: c.deletes.into_iter().map(|d| (d.id, d.version)).collect(),
    }
}

/// A new keystore's secret: the pass phrase, or a random key written to its key file.
fn new_secret(
    location: &Location,
    ext: &str,
    what: &str,
    passphrase: Option<&str>,
    written: &mut Vec<PathBuf>,
) -> Result<Secret> {
    match passphrase {
        Some(p) => Ok(Secret::Passphrase(Zeroizing::new(p.to_string()))),
        None => {
            let base = location.key_file_base().ok_or_else(|| no_key_file_place(location, what))?;
            let mut key = Zeroizing::new([0u8; 32]);
            getrandom::fill(key.as_mut()).map_err(|e| Error::storage("OS random source", e))?;
            let file = keyfile::path_for(base, ext);
            keyfile::write(&file, &key)?;
            written.push(file);
            Ok(Secret::Raw(Zeroizing::new(key.to_vec())))
        }
    }
}

/// An existing keystore's secret, as its header says it was made.
fn existing_secret(
    location: &Location,
    ext: &str,
    what: &str,
    kind: wit::SecretKind,
    passphrase: Option<&str>,
) -> Result<Secret> {
    let file = match (location.key_file_base(), kind) {
        (Some(base), _) => keyfile::path_for(base, ext),
        (None, wit::SecretKind::Raw) => return Err(no_key_file_place(location, what)),
        (None, wit::SecretKind::Passphrase) => PathBuf::new(),
    };
    match (kind, passphrase) {
        (wit::SecretKind::Passphrase, Some(p)) => Ok(Secret::Passphrase(Zeroizing::new(p.to_string()))),
        (wit::SecretKind::Passphrase, None) => {
            Err(Error::invalid(format!("this keystore's {what} comes from a pass phrase: give the {what} pass phrase")))
        }
        (wit::SecretKind::Raw, None) => Ok(Secret::Raw(keyfile::read(&file)?)),
        (wit::SecretKind::Raw, Some(_)) => Err(Error::invalid(format!(
            "this keystore's {what} is a random key kept in {}: do not give a {what} pass phrase",
            file.display()
        ))),
    }
}

/// A URL keystore whose URL does not say where random key files live.
fn no_key_file_place(location: &Location, what: &str) -> Error {
    Error::invalid(format!(
        "keystore {} keeps no key files unless its URL says where: give the {what} pass phrase, \
         or add key_files=<path prefix> to the URL (the {what} key file is then <path prefix>.{})",
        location.shown(),
        what.to_lowercase()
    ))
}

/// A fresh message header for the group's active key (the component draws
/// its salt and checks the key may encrypt).
fn new_header(guest: &mut Guest, group: &str, aad: &[u8]) -> Result<Vec<u8>> {
    let encryptor = guest.begin_encrypt(group, aad, 0)?;
    let header = guest.encryptor_header(encryptor);
    guest.drop_encryptor(encryptor);
    header
}

fn bad_header(header: &[u8]) -> Error {
    Error::new(ErrorKind::Internal, format!("the component made a {}-byte header this host cannot read", header.len()))
}

fn write_out(output: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    output.write_all(bytes).map_err(|e| Error::storage("writing output", e))
}

fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::storage("reading input", e)),
        }
    }
    Ok(filled)
}

/// Stream `src` into `dst`, which appears only on success.
fn with_files(src: &Path, dst: &Path, run: impl FnOnce(&mut dyn Read, &mut dyn Write) -> Result<u64>) -> Result<u64> {
    let input = File::open(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, format!("no file {}", src.display())),
        _ => Error::storage(&format!("opening {}", src.display()), e),
    })?;
    write_atomically(dst, |out| run(&mut BufReader::new(input), out))
}

/// A pure function of the component (no keystore), on a process-wide instance.
fn pure_call<T>(f: impl FnOnce(&mut Guest) -> Result<T>) -> Result<T> {
    static GUEST: OnceLock<Mutex<Option<Guest>>> = OnceLock::new();
    let mut slot = GUEST.get_or_init(|| Mutex::new(None)).lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_none_or(|g| g.broken) {
        *slot = Some(Guest::new(Limits::default())?);
    }
    f(slot.as_mut().expect("just made"))
}

/// The rule book's two tables as the component answers them. The rules are
/// pure functions of key states, so the component is asked every question
/// once per process, and each later question is a lookup: a policy check in
/// a hot path costs nanoseconds, and the component stays the only place
/// that decides a rule.
struct PolicyTable {
    moves: [[bool; 5]; 5],
    operations: [Vec<Operation>; 5],
}

fn policy_table() -> Result<&'static PolicyTable> {
    static TABLE: OnceLock<PolicyTable> = OnceLock::new();
    if let Some(table) = TABLE.get() {
        return Ok(table);
    }
    let table = pure_call(|guest| {
        let mut table = PolicyTable { moves: [[false; 5]; 5], operations: Default::default() };
        for from in KeyState::ALL {
            for to in KeyState::ALL {
                table.moves[from as usize][to as usize] = guest.can_transition(from, to)?;
            }
            table.operations[from as usize] = guest.allowed_operations(from)?;
        }
        Ok(table)
    })?;
    Ok(TABLE.get_or_init(|| table))
}

/// May a key move from `from` to `to`? (Staying put is allowed.)
pub fn can_transition(from: KeyState, to: KeyState) -> Result<bool> {
    Ok(policy_table()?.moves[from as usize][to as usize])
}

/// The operations a key in `state` allows.
pub fn allowed_operations(state: KeyState) -> Result<Vec<Operation>> {
    Ok(policy_table()?.operations[state as usize].clone())
}

/// May a key in `state` be used for `operation`? (The policy decision of a
/// hot path: no allocation.)
pub fn allows(state: KeyState, operation: Operation) -> Result<bool> {
    Ok(policy_table()?.operations[state as usize].contains(&operation))
}
