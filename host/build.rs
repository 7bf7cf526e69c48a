//! Builds the guest crate for `wasm32-unknown-unknown`, turns the core module
//! into a component, and leaves it in OUT_DIR for `include_bytes!`. Doing it
//! here means no build of the host, the CLI or a binding can ship a stale or
//! missing component.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host_dir.parent().unwrap();
    // The root manifest holds `[profile.guest]`, which shapes the component.
    for input in ["guest/src", "guest/Cargo.toml", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=KEYSTATE_GUEST_TARGET_DIR");

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // A separate target dir: the outer build holds the lock on its own.
    let target_dir =
        env::var_os("KEYSTATE_GUEST_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| out_dir.join("guest-target"));
    let core = build_guest(root, &target_dir);
    let component = componentize(&core);
    let dest = out_dir.join("keystate.wasm");
    std::fs::write(&dest, component).expect("write keystate.wasm");
    println!("cargo:rustc-env=KEYSTATE_COMPONENT_PATH={}", dest.display());
}

fn build_guest(root: &Path, target_dir: &Path) -> Vec<u8> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--package", "keystate-guest", "--lib", "--profile", "guest"])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(target_dir);
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
    ] {
        cmd.env_remove(var);
    }
    let flags = [
        // Reproducible bytes: panic locations name dependency sources by their
        // absolute path under CARGO_HOME, which differs between machines.
        format!("--remap-path-prefix={}=/cargo", cargo_home().display()),
        // 128-bit SIMD (every host that runs the component has it: wasmtime,
        // V8 and so jco): the software AES, GHASH and ChaCha20 run about 20%
        // faster (BENCHMARKS.md, docs/benchmarks.md).
        "-Ctarget-feature=+simd128".to_string(),
    ];
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    let status = cmd.status().expect("run cargo to build the guest");
    if !status.success() {
        panic!(
            "building the guest component failed ({status}). Is the wasm target installed? \
             Run: rustup target add wasm32-unknown-unknown"
        );
    }
    let wasm = target_dir.join("wasm32-unknown-unknown/guest/keystate_guest.wasm");
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("read {}: {e}", wasm.display()))
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

fn componentize(core: &[u8]) -> Vec<u8> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("turning the guest module into a component failed: {e:#}"))
}
