//! The rule book as pure functions, answered by the component, and the names
//! `index.js` builds its constants from.

use napi_derive::napi;

use crate::error::{Result, from_keystate};
use crate::values::state;

/// May a key move from `from` to `to`? Staying put is allowed.
#[napi]
pub fn can_transition(from: String, to: String) -> Result<bool> {
    keystate::can_transition(state(&from)?, state(&to)?).map_err(from_keystate)
}

/// The operations (`encrypt`, `decrypt`, `delete`) a key in `state` allows.
#[napi]
pub fn allowed_operations(state_name: String) -> Result<Vec<String>> {
    let ops = keystate::allowed_operations(state(&state_name)?).map_err(from_keystate)?;
    Ok(ops.into_iter().map(|op| op.as_str().to_string()).collect())
}

/// The state names, in lifecycle order.
#[napi]
pub fn key_states() -> Vec<String> {
    keystate::KeyState::ALL.iter().map(|s| s.as_str().to_string()).collect()
}

/// The cipher names.
#[napi]
pub fn ciphers() -> Vec<String> {
    keystate::Cipher::ALL.iter().map(|c| c.as_str().to_string()).collect()
}

/// Every `.code` an error of the library can carry.
#[napi]
pub fn error_codes() -> Vec<String> {
    keystate::ErrorKind::ALL.iter().map(|k| k.code().to_string()).collect()
}
