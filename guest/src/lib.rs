//! The keystate component: the key record lifecycle, the keystore model and
//! the crypto, as plain Rust. `component.rs` is the thin glue that exports it
//! through the WIT contract in `wit/keystate.wit`; everything else also
//! compiles natively so `cargo test` exercises it directly.
//!
//! The guest is pure: no I/O, no clock, no OS entropy. Time and random bytes
//! come from the host through [`types::Env`].

#![deny(unsafe_code)]

pub mod audit;
pub mod crypto;
pub mod format;
pub mod keystore;
pub mod rules;
pub mod store;
pub mod types;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the code wit-bindgen generates
mod component;

#[cfg(test)]
mod tests;
