//! Node bindings of keystate (napi-rs): the native half of `require('keystate')`.
//!
//! Thin by design: every rule and all the crypto live in the component,
//! reached through the `keystate` crate. This crate converts arguments and
//! results, maps `keystate::Error` to an error with a `.code` once
//! (`error.rs`), and runs the heavy operations on libuv's thread pool
//! (`task.rs`). The JavaScript half (`index.js`) turns those errors into
//! `KeystateError`, times into `Date`s and option objects into arguments.

#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod handle;
mod policy;
mod task;
mod values;
mod vectors;
