//! `keystate._native`: the pyo3 half of the Python package `keystate`.
//!
//! It only converts: Python arguments to the `keystate` crate's Rust API, its
//! results to plain Python values (tuples, dicts, bytes), and its errors to the
//! exception classes of `keystate._errors` (one mapping, in `errors.rs`). Every
//! rule is the component's. The pure-Python package (`python/keystate/`) turns
//! the plain values into `KeyInfo`, `GroupInfo`, `KeyState` and friends.
//!
//! Every call into the library releases the GIL (`Python::detach`), so other
//! Python threads run while a keystore encrypts, decrypts or derives a key.
//!
//! - `handle`: the `Handle` class, one open keystore;
//! - `stream`: `Read`/`Write` adapters over Python binary file objects;
//! - `convert`: info records and stats as Python values;
//! - `errors`: `keystate::Error` to Python exceptions;
//! - `vectors`: `VectorInstance`, the bare component for the conformance vectors.

mod convert;
mod errors;
mod handle;
mod stream;
mod vectors;

/// Native core of the `keystate` package (private: use `import keystate`).
#[pyo3::pymodule]
mod _native {
    use keystate::{Cipher, ErrorKind, KeyState};
    use pyo3::prelude::*;

    use crate::errors;

    #[pymodule_export]
    use crate::handle::Handle;
    #[pymodule_export]
    use crate::vectors::VectorInstance;

    /// Module constants: `STATES` and `CIPHERS` (the names, in the library's order),
    /// `ERROR_CODES` (`ErrorKind::code` of every kind), `VERSION`, and
    /// `BUILD_TARGET_DIR` (where cargo put this build: `python -m keystate` looks
    /// for the CLI binary there).
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("STATES", KeyState::ALL.map(KeyState::as_str).to_vec())?;
        m.add("CIPHERS", Cipher::ALL.map(Cipher::as_str).to_vec())?;
        m.add("ERROR_CODES", ErrorKind::ALL.map(ErrorKind::code).to_vec())?;
        m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
        let target_dir =
            option_env!("CARGO_TARGET_DIR").unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"));
        m.add("BUILD_TARGET_DIR", target_dir)?;
        Ok(())
    }

    /// May a key move from `from_state` to `to_state`? (Staying put is allowed.)
    #[pyfunction]
    fn can_transition(py: Python<'_>, from_state: String, to_state: String) -> PyResult<bool> {
        let (from, to) = (errors::state(py, &from_state)?, errors::state(py, &to_state)?);
        errors::run(py, || keystate::can_transition(from, to))
    }

    /// The operations (`encrypt`, `decrypt`, `delete`) a key in `state` allows.
    #[pyfunction]
    fn allowed_operations(py: Python<'_>, state: String) -> PyResult<Vec<&'static str>> {
        let state = errors::state(py, &state)?;
        let ops = errors::run(py, || keystate::allowed_operations(state))?;
        Ok(ops.into_iter().map(|op| op.as_str()).collect())
    }
}
