//! Data between files, Python binary file objects and the library's
//! `encrypt_stream`/`decrypt_stream`, in bounded memory.
//!
//! - `PyReader`/`PyWriter`: `std::io::Read`/`Write` over a Python object's
//!   `read(n)`/`write(b)`. The library runs with the GIL released; each adapter
//!   call takes the GIL only for the Python call it makes. A Python exception
//!   raised there (or a pending signal, e.g. Ctrl-C) is kept and re-raised as it
//!   was once the library returns, instead of the library's generic I/O error.
//! - `transfer`: from a path or file object to a path or file object. A path
//!   destination is written through `keystate::write_atomically` (as the
//!   library's own `encrypt_file` does), so it appears only complete.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use keystate::{Error, ErrorKind};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// What both adapters share: the Python object and the first exception it raised.
struct Adapter {
    object: Py<PyAny>,
    error: Option<PyErr>,
}

impl Adapter {
    fn call<T>(&mut self, what: &str, f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>) -> io::Result<T> {
        let result = Python::attach(|py| {
            py.check_signals()?;
            f(self.object.bind(py))
        });
        result.map_err(|e| {
            let message = format!("{what} of the Python file object failed: {e}");
            self.error.get_or_insert(e);
            io::Error::other(message)
        })
    }
}

/// Reads by calling the object's `read(n)`, which must return `bytes` (or a bytes-like object).
pub struct PyReader(Adapter);

impl PyReader {
    pub fn new(object: Py<PyAny>) -> PyReader {
        PyReader(Adapter { object, error: None })
    }

    /// The Python exception that stopped the stream, if one did.
    pub fn take_error(&mut self) -> Option<PyErr> {
        self.0.error.take()
    }
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.call("read()", |object| {
            let chunk = object.call_method1("read", (buf.len(),))?;
            if chunk.is_none() {
                return Err(pyo3::exceptions::PyBlockingIOError::new_err(
                    "read() returned None: a non-blocking file object has no data ready; pass a blocking one",
                ));
            }
            let data: pyo3::pybacked::PyBackedBytes = chunk.extract().map_err(|_| {
                let type_name = chunk.get_type().name().map(|n| n.to_string()).unwrap_or_default();
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "read() returned {type_name}, not bytes: open the file in binary mode ('rb')"
                ))
            })?;
            if data.len() > buf.len() {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "read({}) returned {} bytes",
                    buf.len(),
                    data.len()
                )));
            }
            buf[..data.len()].copy_from_slice(&data);
            Ok(data.len())
        })
    }
}

/// Writes by calling the object's `write(bytes)`; honours a short count if it returns one.
pub struct PyWriter(Adapter);

impl PyWriter {
    pub fn new(object: Py<PyAny>) -> PyWriter {
        PyWriter(Adapter { object, error: None })
    }

    pub fn take_error(&mut self) -> Option<PyErr> {
        self.0.error.take()
    }
}

impl Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.call("write()", |object| {
            let written = object.call_method1("write", (PyBytes::new(object.py(), buf),))?;
            // BufferedWriter and friends return the count; a plain object may return None (all of it).
            match written.is_none() {
                true => Ok(buf.len()),
                false => Ok(written.extract::<usize>()?.min(buf.len())),
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.call("flush()", |object| {
            if object.hasattr("flush")? {
                object.call_method0("flush")?;
            }
            Ok(())
        })
    }
}

/// Where data comes from: a file (a `str` path) or a binary file object.
pub enum Input {
    Path(PathBuf),
    Object(PyReader),
}

/// Where data goes: a file (a `str` path, written atomically) or a binary file object.
pub enum Output {
    Path(PathBuf),
    Object(PyWriter),
}

impl Input {
    pub fn of(end: &Bound<'_, PyAny>) -> PyResult<Input> {
        match end.is_instance_of::<PyString>() {
            true => Ok(Input::Path(end.extract()?)),
            false => Ok(Input::Object(PyReader::new(end.clone().unbind()))),
        }
    }

    fn take_error(&mut self) -> Option<PyErr> {
        match self {
            Input::Object(r) => r.take_error(),
            Input::Path(_) => None,
        }
    }
}

impl Output {
    pub fn of(end: &Bound<'_, PyAny>) -> PyResult<Output> {
        match end.is_instance_of::<PyString>() {
            true => Ok(Output::Path(end.extract()?)),
            false => Ok(Output::Object(PyWriter::new(end.clone().unbind()))),
        }
    }

    fn take_error(&mut self) -> Option<PyErr> {
        match self {
            Output::Object(w) => w.take_error(),
            Output::Path(_) => None,
        }
    }
}

/// A reader or writer that counts what passes through.
struct Counting<T> {
    inner: T,
    bytes: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes read from the input and written to the output (counted here: the
/// library's own return value has meant either over time).
pub struct Moved {
    pub read: u64,
    pub written: u64,
}

/// Run `stream` (the library's `encrypt_stream` or `decrypt_stream`) from `input`
/// to `output`. Call it with the GIL released; `finish` it with the GIL.
pub fn transfer(
    input: &mut Input,
    output: &mut Output,
    stream: impl FnOnce(&mut dyn Read, &mut dyn Write) -> keystate::Result<u64>,
) -> keystate::Result<Moved> {
    let mut file;
    let reader: &mut dyn Read = match input {
        Input::Path(path) => {
            file = File::open(&*path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, format!("no file {}", path.display())),
                _ => Error::new(ErrorKind::Storage, format!("opening {}: {e}", path.display())),
            })?;
            &mut file
        }
        Input::Object(r) => r,
    };
    let mut reader = Counting { inner: reader, bytes: 0 };
    let run = |out: &mut dyn Write| {
        let mut writer = Counting { inner: out, bytes: 0 };
        stream(&mut reader, &mut writer)?;
        Ok(writer.bytes)
    };
    let written = match output {
        Output::Path(path) => keystate::write_atomically(path, |out| run(out))?,
        Output::Object(w) => run(w)?,
    };
    Ok(Moved { read: reader.bytes, written })
}

/// The outcome of a transfer: a Python exception from a file object wins.
pub fn finish(
    py: Python<'_>,
    result: keystate::Result<Moved>,
    mut input: Input,
    mut output: Output,
) -> PyResult<Moved> {
    result.map_err(|e| {
        input.take_error().or_else(|| output.take_error()).unwrap_or_else(|| crate::errors::to_pyerr(py, e))
    })
}
