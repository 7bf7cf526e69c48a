//! `Handle`: one open `keystate::Keystore`, as the Python `Keystore` holds it.
//!
//! Each method converts its arguments, calls the library with the GIL released,
//! and converts the result. `close` lets go of the keystore; a call already
//! running keeps it alive until it returns (the `Arc`), later calls raise.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use keystate::{Applied, AuditFilter, CreateOptions, Keystore, Mutation, NewKey, OpenOptions};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};
use zeroize::Zeroizing;

use crate::convert::{self, GroupTuple, KeyTuple};
use crate::errors::{self, run};
use crate::stream::{Input, Output, finish, transfer};

/// An open keystore (private: `keystate.Keystore` wraps it).
#[pyclass(frozen, module = "keystate._native")]
pub struct Handle {
    keystore: RwLock<Option<Arc<Keystore>>>,
    path: String,
}

/// A pass phrase, wiped from this side's memory once used.
type Secret = Option<Zeroizing<String>>;

fn secret(passphrase: Option<String>) -> Secret {
    passphrase.map(Zeroizing::new)
}

fn as_str(secret: &Secret) -> Option<&str> {
    secret.as_deref().map(String::as_str)
}

/// One mutation of `apply_batch` as Python sends it.
type BatchOp = (String, String, String, Option<String>, Option<String>, String);

impl Handle {
    fn new(keystore: Keystore) -> Handle {
        // The location as the library shows it: a URL's password left out.
        let path = keystore.location();
        Handle { keystore: RwLock::new(Some(Arc::new(keystore))), path }
    }

    /// The keystore, unless closed.
    fn ks(&self, py: Python<'_>) -> PyResult<Arc<Keystore>> {
        let slot = self.keystore.read().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(ks) => Ok(Arc::clone(ks)),
            None => Err(errors::raise(py, "CLOSED", &format!("the keystore {} is closed", self.path))),
        }
    }
}

#[pymethods]
impl Handle {
    #[staticmethod]
    #[pyo3(signature = (path, hmk_passphrase=None, kpk_passphrase=None, actor=None))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        hmk_passphrase: Option<String>,
        kpk_passphrase: Option<String>,
        actor: Option<String>,
    ) -> PyResult<Handle> {
        let (hmk, kpk) = (secret(hmk_passphrase), secret(kpk_passphrase));
        let options = CreateOptions {
            hmk_passphrase: as_str(&hmk),
            kpk_passphrase: as_str(&kpk),
            actor: actor.as_deref(),
            ..Default::default()
        };
        let ks = run(py, || Keystore::create_with(&path, options))?;
        Ok(Handle::new(ks))
    }

    #[staticmethod]
    #[pyo3(signature = (path, hmk_passphrase=None, kpk_passphrase=None, actor=None))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        hmk_passphrase: Option<String>,
        kpk_passphrase: Option<String>,
        actor: Option<String>,
    ) -> PyResult<Handle> {
        let (hmk, kpk) = (secret(hmk_passphrase), secret(kpk_passphrase));
        let options = OpenOptions {
            hmk_passphrase: as_str(&hmk),
            kpk_passphrase: as_str(&kpk),
            actor: actor.as_deref(),
            ..Default::default()
        };
        let ks = run(py, || Keystore::open_with(&path, options))?;
        Ok(Handle::new(ks))
    }

    /// Let go of the keystore (idempotent).
    fn close(&self, py: Python<'_>) {
        let taken = self.keystore.write().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(|| drop(taken));
    }

    #[getter]
    fn closed(&self) -> bool {
        self.keystore.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    // ---- groups ---------------------------------------------------------------------

    fn create_group(&self, py: Python<'_>, name: String, cipher: String, description: String) -> PyResult<GroupTuple> {
        let (ks, cipher) = (self.ks(py)?, errors::cipher(py, &cipher)?);
        run(py, || ks.create_group(&name, cipher, &description)).map(convert::group)
    }

    fn groups(&self, py: Python<'_>) -> PyResult<Vec<GroupTuple>> {
        let ks = self.ks(py)?;
        Ok(run(py, || ks.groups())?.into_iter().map(convert::group).collect())
    }

    fn group(&self, py: Python<'_>, name: String) -> PyResult<GroupTuple> {
        let ks = self.ks(py)?;
        run(py, || ks.group(&name)).map(convert::group)
    }

    fn modify_group(
        &self,
        py: Python<'_>,
        name: String,
        new_name: Option<String>,
        description: Option<String>,
    ) -> PyResult<GroupTuple> {
        let ks = self.ks(py)?;
        run(py, || ks.modify_group(&name, new_name.as_deref(), description.as_deref())).map(convert::group)
    }

    fn delete_group(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let ks = self.ks(py)?;
        run(py, || ks.delete_group(&name))
    }

    // ---- keys -----------------------------------------------------------------------

    fn create_key(
        &self,
        py: Python<'_>,
        group: String,
        name: String,
        state: String,
        passphrase: Option<String>,
        description: String,
    ) -> PyResult<KeyTuple> {
        let (ks, state, passphrase) = (self.ks(py)?, errors::state(py, &state)?, secret(passphrase));
        run(py, || ks.create_key(&group, &name, state, as_str(&passphrase), &description)).map(convert::key)
    }

    fn keys(&self, py: Python<'_>, group: Option<String>, state: Option<String>) -> PyResult<Vec<KeyTuple>> {
        let ks = self.ks(py)?;
        let state = state.map(|s| errors::state(py, &s)).transpose()?;
        Ok(run(py, || ks.keys(group.as_deref(), state))?.into_iter().map(convert::key).collect())
    }

    fn key(&self, py: Python<'_>, group: String, name: String) -> PyResult<KeyTuple> {
        let ks = self.ks(py)?;
        run(py, || ks.key(&group, &name)).map(convert::key)
    }

    fn key_by_tag(&self, py: Python<'_>, tag: String) -> PyResult<KeyTuple> {
        let ks = self.ks(py)?;
        run(py, || ks.key_by_tag(&tag)).map(convert::key)
    }

    fn set_state(&self, py: Python<'_>, group: String, name: String, state: String) -> PyResult<KeyTuple> {
        let (ks, state) = (self.ks(py)?, errors::state(py, &state)?);
        run(py, || ks.set_state(&group, &name, state)).map(convert::key)
    }

    fn modify_key(
        &self,
        py: Python<'_>,
        group: String,
        name: String,
        new_name: Option<String>,
        description: Option<String>,
    ) -> PyResult<KeyTuple> {
        let ks = self.ks(py)?;
        run(py, || ks.modify_key(&group, &name, new_name.as_deref(), description.as_deref())).map(convert::key)
    }

    fn delete_key(&self, py: Python<'_>, group: String, name: String) -> PyResult<()> {
        let ks = self.ks(py)?;
        run(py, || ks.delete_key(&group, &name))
    }

    /// Several mutations in one commit, as `keystate.Batch` recorded them:
    /// `(kind, group, name, state or cipher, passphrase, description)`. One
    /// result per mutation: the group it made, or the key it made or moved.
    fn apply_batch(&self, py: Python<'_>, ops: Vec<BatchOp>) -> PyResult<Vec<(Option<GroupTuple>, Option<KeyTuple>)>> {
        let ks = self.ks(py)?;
        // Names are checked before anything runs.
        let mutations = ops
            .into_iter()
            .map(|(kind, group, name, choice, passphrase, description)| {
                let choice = choice.unwrap_or_default();
                Ok(match kind.as_str() {
                    "create_group" => Mutation::CreateGroup { name, cipher: errors::cipher(py, &choice)?, description },
                    "create_key" => Mutation::CreateKey {
                        group,
                        name,
                        state: errors::state(py, &choice)?,
                        passphrase: secret(passphrase),
                        description,
                    },
                    "set_state" => Mutation::SetState { group, name, state: errors::state(py, &choice)? },
                    "delete_key" => Mutation::DeleteKey { group, name },
                    other => {
                        return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown mutation {other:?}")));
                    }
                })
            })
            .collect::<PyResult<Vec<Mutation>>>()?;
        let applied = run(py, || ks.apply(&mutations))?;
        Ok(applied
            .into_iter()
            .map(|a| match a {
                Applied::Group(g) => (Some(convert::group(g)), None),
                Applied::Key(k) => (None, Some(convert::key(k))),
                Applied::Deleted => (None, None),
            })
            .collect())
    }

    fn recover_key(
        &self,
        py: Python<'_>,
        group: String,
        name: String,
        tag: String,
        passphrase: String,
        state: String,
    ) -> PyResult<KeyTuple> {
        let (ks, state, passphrase) = (self.ks(py)?, errors::state(py, &state)?, Zeroizing::new(passphrase));
        run(py, || ks.recover_key(&group, &name, &tag, &passphrase, state)).map(convert::key)
    }

    // ---- keystore -------------------------------------------------------------------

    fn quiesce(&self, py: Python<'_>) -> PyResult<()> {
        let ks = self.ks(py)?;
        run(py, || ks.quiesce())
    }

    fn unquiesce(&self, py: Python<'_>) -> PyResult<()> {
        let ks = self.ks(py)?;
        run(py, || ks.unquiesce())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ks = self.ks(py)?;
        convert::stats(py, run(py, || ks.stats())?)
    }

    fn faults(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        let ks = self.ks(py)?;
        Ok(run(py, || ks.faults())?.into_iter().map(convert::fault).collect())
    }

    // ---- export and import ----------------------------------------------------------

    #[pyo3(signature = (passphrase, groups=None))]
    fn export_groups<'py>(
        &self,
        py: Python<'py>,
        passphrase: String,
        groups: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (ks, passphrase) = (self.ks(py)?, Zeroizing::new(passphrase));
        let groups: Option<Vec<&str>> = groups.as_ref().map(|g| g.iter().map(String::as_str).collect());
        let container = Zeroizing::new(run(py, || ks.export(groups.as_deref(), &passphrase))?);
        Ok(PyBytes::new(py, &container))
    }

    #[pyo3(signature = (path, passphrase, groups=None))]
    fn export_to_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        passphrase: String,
        groups: Option<Vec<String>>,
    ) -> PyResult<u64> {
        let (ks, passphrase) = (self.ks(py)?, Zeroizing::new(passphrase));
        let groups: Option<Vec<&str>> = groups.as_ref().map(|g| g.iter().map(String::as_str).collect());
        run(py, || ks.export_to_file(&path, groups.as_deref(), &passphrase))
    }

    fn import_groups(
        &self,
        py: Python<'_>,
        container: PyBackedBytes,
        passphrase: String,
        preserve_names: bool,
        preview: bool,
    ) -> PyResult<convert::ReportTuple> {
        let (ks, passphrase) = (self.ks(py)?, Zeroizing::new(passphrase));
        let options = keystate::ImportOptions { preserve_names, preview };
        run(py, || ks.import(&container, &passphrase, options)).map(convert::report)
    }

    fn import_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        passphrase: String,
        preserve_names: bool,
        preview: bool,
    ) -> PyResult<convert::ReportTuple> {
        let (ks, passphrase) = (self.ks(py)?, Zeroizing::new(passphrase));
        let options = keystate::ImportOptions { preserve_names, preview };
        run(py, || ks.import_file(&path, &passphrase, options)).map(convert::report)
    }

    // ---- administration ---------------------------------------------------------------

    fn set_actor(&self, py: Python<'_>, actor: String) -> PyResult<()> {
        let ks = self.ks(py)?;
        run(py, || ks.set_actor(&actor))
    }

    #[getter]
    fn actor(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.ks(py)?.actor())
    }

    /// `since_us`: microseconds since the Unix epoch.
    fn audit(
        &self,
        py: Python<'_>,
        group: Option<String>,
        key: Option<String>,
        action: Option<String>,
        since_us: Option<i64>,
        limit: Option<usize>,
    ) -> PyResult<Vec<convert::AuditTuple>> {
        let ks = self.ks(py)?;
        let since = since_us.map(convert::time_from_micros);
        let filter = AuditFilter { group, key, action, since, limit };
        Ok(run(py, || ks.audit(&filter))?.into_iter().map(convert::audit_entry).collect())
    }

    fn verify_audit(&self, py: Python<'_>) -> PyResult<convert::AuditReportTuple> {
        let ks = self.ks(py)?;
        run(py, || ks.verify_audit()).map(convert::audit_report)
    }

    /// `passphrase` None: a new random key in the key file.
    fn rotate_hmk(&self, py: Python<'_>, passphrase: Option<String>, id: Option<String>) -> PyResult<()> {
        let (ks, passphrase) = (self.ks(py)?, secret(passphrase));
        let new = as_str(&passphrase).map_or(NewKey::Random, NewKey::Passphrase);
        run(py, || ks.rotate_hmk(new, id.as_deref()))
    }

    fn rotate_kpk(&self, py: Python<'_>, passphrase: Option<String>, id: Option<String>) -> PyResult<()> {
        let (ks, passphrase) = (self.ks(py)?, secret(passphrase));
        let new = as_str(&passphrase).map_or(NewKey::Random, NewKey::Passphrase);
        run(py, || ks.rotate_kpk(new, id.as_deref()))
    }

    // ---- data -----------------------------------------------------------------------

    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        group: String,
        data: PyBackedBytes,
        aad: PyBackedBytes,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ks = self.ks(py)?;
        let sealed = run(py, || ks.encrypt(&group, &data, &aad))?;
        Ok(PyBytes::new(py, &sealed))
    }

    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        ciphertext: PyBackedBytes,
        aad: PyBackedBytes,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ks = self.ks(py)?;
        let plain = Zeroizing::new(run(py, || ks.decrypt(&ciphertext, &aad))?);
        Ok(PyBytes::new(py, &plain))
    }

    /// `src` and `dst` are each a `str` path or a binary file object. A path `dst`
    /// appears only once complete. Returns the plaintext size.
    fn encrypt_file(
        &self,
        py: Python<'_>,
        group: String,
        src: Bound<'_, PyAny>,
        dst: Bound<'_, PyAny>,
        aad: PyBackedBytes,
    ) -> PyResult<u64> {
        let ks = self.ks(py)?;
        let (mut input, mut output) = (Input::of(&src)?, Output::of(&dst)?);
        let moved =
            py.detach(|| transfer(&mut input, &mut output, |r, w| ks.encrypt_stream(&group, r, w, &aad, &mut |_| {})));
        Ok(finish(py, moved, input, output)?.read)
    }

    /// `src` and `dst` are each a `str` path or a binary file object. A path `dst`
    /// appears only if all of `src` authenticated; a file object gets plaintext as
    /// it authenticates (discard it on error). Returns the plaintext size.
    fn decrypt_file(
        &self,
        py: Python<'_>,
        src: Bound<'_, PyAny>,
        dst: Bound<'_, PyAny>,
        aad: PyBackedBytes,
    ) -> PyResult<u64> {
        let ks = self.ks(py)?;
        let (mut input, mut output) = (Input::of(&src)?, Output::of(&dst)?);
        let moved = py.detach(|| transfer(&mut input, &mut output, |r, w| ks.decrypt_stream(r, w, &aad, &mut |_| {})));
        Ok(finish(py, moved, input, output)?.written)
    }
}
