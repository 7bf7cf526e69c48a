//! `VectorInstance`: the bare component (`keystate::raw`) with the
//! deterministic host environment of the conformance vectors, called by WIT
//! function name with JSON text. For `tests/test_vectors.py`, which replays
//! `tests/vectors/*.json` through this build; not part of the public API.

use std::sync::Mutex;

use keystate::raw::{Instance, VectorEnv};
use keystate::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use crate::errors;

/// One fresh instance of the component whose clock and entropy are
/// `keystate::raw::VectorEnv::new(seed, clock_start, clock_step)`.
#[pyclass(frozen, module = "keystate._native")]
pub struct VectorInstance {
    instance: Mutex<Instance>,
}

#[pymethods]
impl VectorInstance {
    #[new]
    fn new(py: Python<'_>, seed: PyBackedBytes, clock_start: u64, clock_step: u64) -> PyResult<VectorInstance> {
        let instance = errors::run(py, || Instance::new(VectorEnv::new(&seed, clock_start, clock_step)))?;
        Ok(VectorInstance { instance: Mutex::new(instance) })
    }

    /// Call `name` (`interface.function`) with `args_json`, a JSON object by
    /// parameter name; return the result as JSON text (`keystate::raw::Instance::call`).
    fn call(&self, py: Python<'_>, name: &str, args_json: &str) -> PyResult<String> {
        errors::run(py, || {
            let args: serde_json::Value = serde_json::from_str(args_json)
                .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("{name}: arguments are not JSON: {e}")))?;
            let mut instance = self.instance.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            Ok(instance.call(name, &args)?.to_string())
        })
    }
}
