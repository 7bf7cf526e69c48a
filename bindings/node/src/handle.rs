//! `KeystoreHandle`: one open `keystate::Keystore`, shared with the pool
//! threads of the async variants. `close()` lets go of it; a call already
//! running keeps its own reference and finishes.

use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::{AsyncTask, Buffer, Uint8Array};
use napi_derive::napi;

use crate::error::{Result, closed, from_keystate};
use crate::task::{Job, job};
use crate::values::{
    AuditEntry, AuditReport, GroupInfo, ImportReport, KeyInfo, RowFault, Stats, cipher, state, time_from_millis,
};

/// One mutation of `applyBatch`: `choice` is the state (createKey, setState)
/// or the cipher (createGroup).
#[napi(object)]
pub struct BatchOp {
    pub kind: String,
    pub group: String,
    pub name: String,
    pub choice: Option<String>,
    pub passphrase: Option<String>,
    pub description: Option<String>,
}

/// What one mutation of `applyBatch` made or moved (neither: a deletion).
#[napi(object)]
pub struct BatchResult {
    pub group: Option<GroupInfo>,
    pub key: Option<KeyInfo>,
}

fn mutation(op: BatchOp) -> Result<keystate::Mutation> {
    use keystate::Mutation;
    let description = op.description.unwrap_or_default();
    Ok(match op.kind.as_str() {
        "createGroup" => Mutation::CreateGroup {
            name: op.name,
            cipher: op.choice.as_deref().map(cipher).transpose()?.unwrap_or_default(),
            description,
        },
        "createKey" => Mutation::CreateKey {
            group: op.group,
            name: op.name,
            state: op.choice.as_deref().map(state).transpose()?.unwrap_or(keystate::KeyState::Prelive),
            passphrase: op.passphrase.map(zeroize::Zeroizing::new),
            description,
        },
        "setState" => {
            Mutation::SetState { group: op.group, name: op.name, state: state(op.choice.as_deref().unwrap_or(""))? }
        }
        "deleteKey" => Mutation::DeleteKey { group: op.group, name: op.name },
        other => {
            let e = keystate::Error::new(keystate::ErrorKind::InvalidArgument, format!("unknown mutation {other:?}"));
            return Err(from_keystate(e));
        }
    })
}

#[napi]
pub struct KeystoreHandle {
    keystore: RwLock<Option<Arc<keystate::Keystore>>>,
}

impl KeystoreHandle {
    fn wrap(keystore: keystate::Keystore) -> KeystoreHandle {
        KeystoreHandle { keystore: RwLock::new(Some(Arc::new(keystore))) }
    }

    fn get(&self) -> Result<Arc<keystate::Keystore>> {
        let slot = self.keystore.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or_else(closed)
    }

    /// Run `op` on the keystore here, on the main thread.
    fn sync<T>(&self, op: impl FnOnce(&keystate::Keystore) -> keystate::Result<T>) -> Result<T> {
        let keystore = self.get()?;
        op(&keystore).map_err(from_keystate)
    }

    /// Run `op` on the keystore on a pool thread.
    fn spawn<T: Send + 'static, J: napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName>(
        &self,
        op: impl FnOnce(&keystate::Keystore) -> keystate::Result<T> + Send + 'static,
        finish: fn(T) -> J,
    ) -> Result<AsyncTask<Job<T, J>>> {
        let keystore = self.get()?;
        Ok(job(move || op(&keystore), finish))
    }
}

fn create(
    path: String,
    hmk: Option<String>,
    kpk: Option<String>,
    actor: Option<String>,
) -> keystate::Result<keystate::Keystore> {
    let options = keystate::CreateOptions {
        hmk_passphrase: hmk.as_deref(),
        kpk_passphrase: kpk.as_deref(),
        actor: actor.as_deref(),
        ..Default::default()
    };
    keystate::Keystore::create_with(path, options)
}

fn open(
    path: String,
    hmk: Option<String>,
    kpk: Option<String>,
    actor: Option<String>,
) -> keystate::Result<keystate::Keystore> {
    let options = keystate::OpenOptions {
        hmk_passphrase: hmk.as_deref(),
        kpk_passphrase: kpk.as_deref(),
        actor: actor.as_deref(),
        ..Default::default()
    };
    keystate::Keystore::open_with(path, options)
}

/// A byte count (the plaintext size, for both file methods) as a JS number.
fn bytes(n: u64) -> f64 {
    n as f64
}

#[napi]
impl KeystoreHandle {
    // ---- opening ----------------------------------------------------------------

    #[napi(factory)]
    pub fn create(
        path: String,
        hmk_passphrase: Option<String>,
        kpk_passphrase: Option<String>,
        actor: Option<String>,
    ) -> Result<KeystoreHandle> {
        create(path, hmk_passphrase, kpk_passphrase, actor).map(KeystoreHandle::wrap).map_err(from_keystate)
    }

    #[napi(factory)]
    pub fn open(
        path: String,
        hmk_passphrase: Option<String>,
        kpk_passphrase: Option<String>,
        actor: Option<String>,
    ) -> Result<KeystoreHandle> {
        open(path, hmk_passphrase, kpk_passphrase, actor).map(KeystoreHandle::wrap).map_err(from_keystate)
    }

    #[napi]
    pub fn create_async(
        path: String,
        hmk_passphrase: Option<String>,
        kpk_passphrase: Option<String>,
        actor: Option<String>,
    ) -> AsyncTask<Job<keystate::Keystore, KeystoreHandle>> {
        job(move || create(path, hmk_passphrase, kpk_passphrase, actor), KeystoreHandle::wrap)
    }

    #[napi]
    pub fn open_async(
        path: String,
        hmk_passphrase: Option<String>,
        kpk_passphrase: Option<String>,
        actor: Option<String>,
    ) -> AsyncTask<Job<keystate::Keystore, KeystoreHandle>> {
        job(move || open(path, hmk_passphrase, kpk_passphrase, actor), KeystoreHandle::wrap)
    }

    /// Let go of the keystore; later calls fail. Calls already running finish.
    #[napi]
    pub fn close(&self) {
        self.keystore.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.keystore.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    // ---- groups -----------------------------------------------------------------

    #[napi]
    pub fn create_group(
        &self,
        name: String,
        cipher_name: Option<String>,
        description: Option<String>,
    ) -> Result<GroupInfo> {
        let cipher = cipher_name.as_deref().map(cipher).transpose()?.unwrap_or_default();
        self.sync(|k| k.create_group(&name, cipher, description.as_deref().unwrap_or(""))).map(Into::into)
    }

    #[napi]
    pub fn groups(&self) -> Result<Vec<GroupInfo>> {
        self.sync(|k| k.groups()).map(|g| g.into_iter().map(Into::into).collect())
    }

    #[napi]
    pub fn group(&self, name: String) -> Result<GroupInfo> {
        self.sync(|k| k.group(&name)).map(Into::into)
    }

    #[napi]
    pub fn modify_group(
        &self,
        name: String,
        new_name: Option<String>,
        description: Option<String>,
    ) -> Result<GroupInfo> {
        self.sync(|k| k.modify_group(&name, new_name.as_deref(), description.as_deref())).map(Into::into)
    }

    #[napi]
    pub fn delete_group(&self, name: String) -> Result<()> {
        self.sync(|k| k.delete_group(&name))
    }

    // ---- keys -------------------------------------------------------------------

    #[napi]
    pub fn create_key(
        &self,
        group: String,
        name: String,
        state_name: Option<String>,
        passphrase: Option<String>,
        description: Option<String>,
    ) -> Result<KeyInfo> {
        let state = state_name.as_deref().map(state).transpose()?.unwrap_or(keystate::KeyState::Prelive);
        self.sync(|k| k.create_key(&group, &name, state, passphrase.as_deref(), description.as_deref().unwrap_or("")))
            .map(Into::into)
    }

    #[napi(ts_return_type = "Promise<KeyInfo>")]
    pub fn create_key_async(
        &self,
        group: String,
        name: String,
        state_name: Option<String>,
        passphrase: Option<String>,
        description: Option<String>,
    ) -> Result<AsyncTask<Job<keystate::KeyInfo, KeyInfo>>> {
        let state = state_name.as_deref().map(state).transpose()?.unwrap_or(keystate::KeyState::Prelive);
        self.spawn(
            move |k| k.create_key(&group, &name, state, passphrase.as_deref(), description.as_deref().unwrap_or("")),
            KeyInfo::from,
        )
    }

    #[napi]
    pub fn keys(&self, group: Option<String>, state_name: Option<String>) -> Result<Vec<KeyInfo>> {
        let state = state_name.as_deref().map(state).transpose()?;
        self.sync(|k| k.keys(group.as_deref(), state)).map(|keys| keys.into_iter().map(Into::into).collect())
    }

    #[napi]
    pub fn key(&self, group: String, name: String) -> Result<KeyInfo> {
        self.sync(|k| k.key(&group, &name)).map(Into::into)
    }

    #[napi]
    pub fn key_by_tag(&self, tag: String) -> Result<KeyInfo> {
        self.sync(|k| k.key_by_tag(&tag)).map(Into::into)
    }

    #[napi]
    pub fn set_state(&self, group: String, name: String, state_name: String) -> Result<KeyInfo> {
        let state = state(&state_name)?;
        self.sync(|k| k.set_state(&group, &name, state)).map(Into::into)
    }

    #[napi]
    pub fn modify_key(
        &self,
        group: String,
        name: String,
        new_name: Option<String>,
        description: Option<String>,
    ) -> Result<KeyInfo> {
        self.sync(|k| k.modify_key(&group, &name, new_name.as_deref(), description.as_deref())).map(Into::into)
    }

    #[napi]
    pub fn delete_key(&self, group: String, name: String) -> Result<()> {
        self.sync(|k| k.delete_key(&group, &name))
    }

    /// Several mutations in one commit, as `Batch` (index.js) recorded them.
    #[napi]
    pub fn apply_batch(&self, ops: Vec<BatchOp>) -> Result<Vec<BatchResult>> {
        // Names are checked before anything runs.
        let mutations = ops.into_iter().map(mutation).collect::<Result<Vec<_>>>()?;
        let applied = self.sync(|k| k.apply(&mutations))?;
        Ok(applied
            .into_iter()
            .map(|a| match a {
                keystate::Applied::Group(g) => BatchResult { group: Some(g.into()), key: None },
                keystate::Applied::Key(k) => BatchResult { group: None, key: Some(k.into()) },
                keystate::Applied::Deleted => BatchResult { group: None, key: None },
            })
            .collect())
    }

    #[napi]
    pub fn recover_key(
        &self,
        group: String,
        name: String,
        tag: String,
        passphrase: String,
        state_name: Option<String>,
    ) -> Result<KeyInfo> {
        let state = state_name.as_deref().map(state).transpose()?.unwrap_or(keystate::KeyState::Inactive);
        self.sync(|k| k.recover_key(&group, &name, &tag, &passphrase, state)).map(Into::into)
    }

    #[napi(ts_return_type = "Promise<KeyInfo>")]
    pub fn recover_key_async(
        &self,
        group: String,
        name: String,
        tag: String,
        passphrase: String,
        state_name: Option<String>,
    ) -> Result<AsyncTask<Job<keystate::KeyInfo, KeyInfo>>> {
        let state = state_name.as_deref().map(state).transpose()?.unwrap_or(keystate::KeyState::Inactive);
        self.spawn(move |k| k.recover_key(&group, &name, &tag, &passphrase, state), KeyInfo::from)
    }

    // ---- data -------------------------------------------------------------------

    #[napi]
    pub fn encrypt(&self, group: String, data: &[u8], aad: Option<&[u8]>) -> Result<Buffer> {
        self.sync(|k| k.encrypt(&group, data, aad.unwrap_or_default())).map(Buffer::from)
    }

    #[napi]
    pub fn decrypt(&self, ciphertext: &[u8], aad: Option<&[u8]>) -> Result<Buffer> {
        self.sync(|k| k.decrypt(ciphertext, aad.unwrap_or_default())).map(Buffer::from)
    }

    /// The input is not copied: the pool thread reads it where it is (kept
    /// alive by a reference), as `fs.write` does, so the caller must not
    /// change it before the promise settles. A copy on the main thread would
    /// stall the event loop (about 35 ms per 64 MiB here).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn encrypt_async(
        &self,
        group: String,
        data: Uint8Array,
        aad: Option<Uint8Array>,
    ) -> Result<AsyncTask<Job<Vec<u8>, Buffer>>> {
        self.spawn(move |k| k.encrypt(&group, &data, aad.as_deref().unwrap_or_default()), Buffer::from)
    }

    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn decrypt_async(
        &self,
        ciphertext: Uint8Array,
        aad: Option<Uint8Array>,
    ) -> Result<AsyncTask<Job<Vec<u8>, Buffer>>> {
        self.spawn(move |k| k.decrypt(&ciphertext, aad.as_deref().unwrap_or_default()), Buffer::from)
    }

    /// Returns the number of plaintext bytes.
    #[napi]
    pub fn encrypt_file(&self, group: String, src: String, dst: String, aad: Option<&[u8]>) -> Result<f64> {
        self.sync(|k| k.encrypt_file(&group, &src, &dst, aad.unwrap_or_default())).map(bytes)
    }

    /// Returns the number of plaintext bytes.
    #[napi]
    pub fn decrypt_file(&self, src: String, dst: String, aad: Option<&[u8]>) -> Result<f64> {
        self.sync(|k| k.decrypt_file(&src, &dst, aad.unwrap_or_default())).map(bytes)
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn encrypt_file_async(
        &self,
        group: String,
        src: String,
        dst: String,
        aad: Option<&[u8]>,
    ) -> Result<AsyncTask<Job<u64, f64>>> {
        let aad = aad.unwrap_or_default().to_vec();
        self.spawn(move |k| k.encrypt_file(&group, &src, &dst, &aad), bytes)
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn decrypt_file_async(&self, src: String, dst: String, aad: Option<&[u8]>) -> Result<AsyncTask<Job<u64, f64>>> {
        let aad = aad.unwrap_or_default().to_vec();
        self.spawn(move |k| k.decrypt_file(&src, &dst, &aad), bytes)
    }

    // ---- export and import ------------------------------------------------------

    /// `groups`: the names to export, or every group when absent.
    #[napi]
    pub fn export_groups(&self, passphrase: String, groups: Option<Vec<String>>) -> Result<Buffer> {
        let names: Option<Vec<&str>> = groups.as_ref().map(|g| g.iter().map(String::as_str).collect());
        self.sync(|k| k.export(names.as_deref(), &passphrase)).map(Buffer::from)
    }

    /// Returns the container's size in bytes.
    #[napi]
    pub fn export_to_file(&self, path: String, passphrase: String, groups: Option<Vec<String>>) -> Result<f64> {
        let names: Option<Vec<&str>> = groups.as_ref().map(|g| g.iter().map(String::as_str).collect());
        self.sync(|k| k.export_to_file(&path, names.as_deref(), &passphrase)).map(bytes)
    }

    #[napi]
    pub fn import_groups(
        &self,
        container: &[u8],
        passphrase: String,
        preserve_names: bool,
        preview: bool,
    ) -> Result<ImportReport> {
        let options = keystate::ImportOptions { preserve_names, preview };
        self.sync(|k| k.import(container, &passphrase, options)).map(Into::into)
    }

    #[napi(ts_return_type = "Promise<ImportReport>")]
    pub fn import_groups_async(
        &self,
        container: Uint8Array,
        passphrase: String,
        preserve_names: bool,
        preview: bool,
    ) -> Result<AsyncTask<Job<keystate::ImportReport, ImportReport>>> {
        let options = keystate::ImportOptions { preserve_names, preview };
        self.spawn(move |k| k.import(&container, &passphrase, options), ImportReport::from)
    }

    #[napi]
    pub fn import_file(
        &self,
        path: String,
        passphrase: String,
        preserve_names: bool,
        preview: bool,
    ) -> Result<ImportReport> {
        let options = keystate::ImportOptions { preserve_names, preview };
        self.sync(|k| k.import_file(&path, &passphrase, options)).map(Into::into)
    }

    // ---- keystore ---------------------------------------------------------------

    #[napi]
    pub fn quiesce(&self) -> Result<()> {
        self.sync(|k| k.quiesce())
    }

    #[napi]
    pub fn unquiesce(&self) -> Result<()> {
        self.sync(|k| k.unquiesce())
    }

    #[napi]
    pub fn stats(&self) -> Result<Stats> {
        self.sync(|k| k.stats()).map(Into::into)
    }

    // ---- administration -----------------------------------------------------------

    #[napi]
    pub fn set_actor(&self, actor: String) -> Result<()> {
        self.sync(|k| k.set_actor(&actor))
    }

    #[napi(getter)]
    pub fn actor(&self) -> Result<String> {
        Ok(self.get()?.actor())
    }

    /// `since_ms`: milliseconds since the Unix epoch.
    #[napi]
    pub fn audit(
        &self,
        group: Option<String>,
        key: Option<String>,
        action: Option<String>,
        since_ms: Option<f64>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEntry>> {
        let since = since_ms.map(time_from_millis);
        let filter = keystate::AuditFilter { group, key, action, since, limit: limit.map(|n| n as usize) };
        self.sync(|k| k.audit(&filter)).map(|e| e.into_iter().map(Into::into).collect())
    }

    #[napi]
    pub fn verify_audit(&self) -> Result<AuditReport> {
        self.sync(|k| k.verify_audit()).map(Into::into)
    }

    /// `passphrase` absent: a new random key in the key file.
    #[napi]
    pub fn rotate_hmk(&self, passphrase: Option<String>, id: Option<String>) -> Result<()> {
        let new = passphrase.as_deref().map_or(keystate::NewKey::Random, keystate::NewKey::Passphrase);
        self.sync(|k| k.rotate_hmk(new, id.as_deref()))
    }

    #[napi]
    pub fn rotate_kpk(&self, passphrase: Option<String>, id: Option<String>) -> Result<()> {
        let new = passphrase.as_deref().map_or(keystate::NewKey::Random, keystate::NewKey::Passphrase);
        self.sync(|k| k.rotate_kpk(new, id.as_deref()))
    }

    #[napi]
    pub fn faults(&self) -> Result<Vec<RowFault>> {
        self.sync(|k| k.faults()).map(|f| f.into_iter().map(Into::into).collect())
    }
}
