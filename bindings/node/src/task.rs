//! Work for libuv's thread pool: the promise-returning variants run a closure
//! over owned arguments off the main thread, then convert its result (or
//! reject with the same error a synchronous call throws) on the main thread.

use std::panic::{AssertUnwindSafe, catch_unwind};

use napi::bindgen_prelude::{AsyncTask, ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::error;

type Work<T> = Box<dyn FnOnce() -> keystate::Result<T> + Send>;

pub struct Job<T, J> {
    work: Option<Work<T>>,
    finish: fn(T) -> J,
}

/// `work` runs on a pool thread; `finish` turns its value into JavaScript on the main thread.
pub fn job<T: Send + 'static, J>(
    work: impl FnOnce() -> keystate::Result<T> + Send + 'static,
    finish: fn(T) -> J,
) -> AsyncTask<Job<T, J>>
where
    J: ToNapiValue + TypeName,
{
    AsyncTask::new(Job { work: Some(Box::new(work)), finish })
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for Job<T, J> {
    type Output = keystate::Result<T>;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let work = self.work.take().expect("a job runs once");
        Ok(catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
            Err(keystate::Error::new(
                keystate::ErrorKind::Internal,
                "keystate panicked; the operation did not complete",
            ))
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<J> {
        output.map(self.finish).map_err(|e| error::rejection(env, e))
    }
}
