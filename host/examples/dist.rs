//! Writes the component this crate embeds (`keystate::COMPONENT`, built from
//! `guest/` by `host/build.rs` with `[profile.guest]`) to the path given, and
//! prints its size and SHA-256. `scripts/dist.sh` runs it, so the file in
//! `dist/` is byte for byte the component every keystate host runs.
//!
//! ```sh
//! cargo run -p keystate --example dist -- dist/keystate.wasm
//! ```

use std::process::ExitCode;

use sha2::{Digest, Sha256};

fn main() -> ExitCode {
    let Some(dest) = std::env::args_os().nth(1) else {
        eprintln!("usage: dist <path of the .wasm to write>");
        return ExitCode::from(2);
    };
    let dest = std::path::PathBuf::from(dest);
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("dist: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::write(&dest, keystate::COMPONENT) {
        eprintln!("dist: cannot write {}: {e}", dest.display());
        return ExitCode::FAILURE;
    }
    println!(
        "{}  {} bytes  sha256 {}",
        dest.display(),
        keystate::COMPONENT.len(),
        hex::encode(Sha256::digest(keystate::COMPONENT))
    );
    ExitCode::SUCCESS
}
