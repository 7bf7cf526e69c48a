//! `keystate::Error` to Python exceptions, in one place.
//!
//! The library gives every error a kind with a stable code (`ErrorKind::code`,
//! e.g. `KEY_UNUSABLE`) and a message that names the key, group and states.
//! `keystate._errors` defines one exception class per code (`_BY_CODE`); this
//! file raises the class of the error's code with the library's message. A
//! kind this build does not know yet still raises `KeystateError` with its code.

use keystate::{Cipher, KeyState};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// `keystate._errors`: the base class and the classes by code.
struct Classes {
    base: Py<PyType>,
    by_code: Py<PyDict>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let module = py.import("keystate._errors")?;
        Ok(Classes {
            base: module.getattr("KeystateError")?.cast_into::<PyType>()?.unbind(),
            by_code: module.getattr("_BY_CODE")?.cast_into::<PyDict>()?.unbind(),
        })
    })
}

/// The Python exception for a library error.
pub fn to_pyerr(py: Python<'_>, error: keystate::Error) -> PyErr {
    let code = error.kind().code();
    raise(py, code, error.message())
}

/// An exception of the class registered for `code` (else `KeystateError`), carrying `code`.
pub fn raise(py: Python<'_>, code: &str, message: &str) -> PyErr {
    let made = classes(py).and_then(|c| {
        let class = match c.by_code.bind(py).get_item(code)? {
            Some(class) => class,
            None => c.base.bind(py).clone().into_any(),
        };
        class.call1((message, code))
    });
    match made {
        Ok(exception) => PyErr::from_value(exception),
        // keystate._errors itself failed to import: say so rather than lose the error.
        Err(import_error) => import_error,
    }
}

/// Run `f` (a call into the library) with the GIL released; map its error.
pub fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> keystate::Result<T> + Send) -> PyResult<T> {
    py.detach(f).map_err(|e| to_pyerr(py, e))
}

/// A state name, parsed by the library (an unknown name is `InvalidArgument`).
pub fn state(py: Python<'_>, name: &str) -> PyResult<KeyState> {
    name.parse().map_err(|e| to_pyerr(py, e))
}

/// A cipher name, parsed by the library.
pub fn cipher(py: Python<'_>, name: &str) -> PyResult<Cipher> {
    name.parse().map_err(|e| to_pyerr(py, e))
}
