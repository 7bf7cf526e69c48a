//! `VectorInstance`: the bare component (`keystate::raw`) with the
//! deterministic host environment of the conformance vectors, called by WIT
//! function name with JSON text. `index.js` exports it for replaying
//! `tests/vectors/*.json` (test/vectors.test.js); not for real keys.

use keystate::raw::{Instance, VectorEnv};
use keystate::{Error as KeystateError, ErrorKind};
use napi_derive::napi;

use crate::error::{Result, from_keystate};

fn invalid(message: String) -> crate::error::Error {
    from_keystate(KeystateError::new(ErrorKind::InvalidArgument, message))
}

fn millis(what: &str, value: f64) -> Result<u64> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9_007_199_254_740_991.0 {
        Ok(value as u64)
    } else {
        Err(invalid(format!("{what} must be a non-negative integer, not {value}")))
    }
}

/// One fresh instance of the component whose clock and entropy are
/// `keystate::raw::VectorEnv::new(seed, clock_start, clock_step)`.
#[napi]
pub struct VectorInstance {
    instance: Instance,
}

#[napi]
impl VectorInstance {
    #[napi(constructor)]
    pub fn new(seed: &[u8], clock_start: f64, clock_step: f64) -> Result<VectorInstance> {
        let env = VectorEnv::new(seed, millis("clockStart", clock_start)?, millis("clockStep", clock_step)?);
        Ok(VectorInstance { instance: Instance::new(env).map_err(from_keystate)? })
    }

    /// Call `name` (`interface.function`) with `args_json`, a JSON object by
    /// parameter name; the result as JSON text (`keystate::raw::Instance::call`).
    #[napi]
    pub fn call(&mut self, name: String, args_json: String) -> Result<String> {
        let args: serde_json::Value =
            serde_json::from_str(&args_json).map_err(|e| invalid(format!("{name}: arguments are not JSON: {e}")))?;
        Ok(self.instance.call(&name, &args).map_err(from_keystate)?.to_string())
    }
}
