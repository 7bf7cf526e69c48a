//! The one mapping from `keystate::Error` to a JavaScript error: its `.code`
//! is `ErrorKind::code()` (`NOT_FOUND`, `KEY_UNUSABLE`, ...), its message the
//! library's. `index.js` turns every error carrying one of these codes into a
//! `KeystateError`.

use napi::Env;
use napi::bindgen_prelude::{JsError, Unknown};

/// The error of a synchronous call: thrown with `code` = the error kind's code.
pub type Error = napi::Error<&'static str>;

/// The result of a synchronous call.
pub type Result<T> = std::result::Result<T, Error>;

pub fn from_keystate(e: keystate::Error) -> Error {
    napi::Error::new(e.kind().code(), e.message())
}

/// Thrown by a handle after `close()`; like a closed file in Python, a misuse of the argument.
pub fn closed() -> Error {
    from_keystate(keystate::Error::new(keystate::ErrorKind::InvalidArgument, "the keystore is closed"))
}

/// The same error as a promise rejection: `Task::resolve` can only return a
/// `napi::Error` with a fixed status, so the JavaScript error object (with its
/// `.code`) is made here on the main thread and handed back verbatim.
pub fn rejection(env: Env, e: keystate::Error) -> napi::Error {
    // SAFETY: `env` is the live environment of the main thread that runs `resolve`.
    unsafe {
        let value = JsError::from(from_keystate(e)).into_value(env.raw());
        napi::Error::from(Unknown::from_raw_unchecked(env.raw(), value))
    }
}
