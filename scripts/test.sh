#!/usr/bin/env bash
# Every test of keystate. Installs what it needs on a fresh machine: the
# wasm32-unknown-unknown target, the npm packages (jco, fast-check,
# TypeScript), the Python venvs (maturin, pytest, hypothesis, wasmtime-py) and
# PostgreSQL (a private server for the whole run: scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32-unknown-unknown target"
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi

if cargo fmt --version >/dev/null 2>&1; then
    step "formatting"
    cargo fmt --all -- --check
fi

step "PostgreSQL: a private server for the shared-keystore tests"
source scripts/postgres.sh
if ! postgres_start; then
    if [ -n "${CI:-}" ]; then
        echo "postgres: the server did not start; in CI that is a failure" >&2
        exit 1
    fi
    echo "*** WARNING: no PostgreSQL server: every PostgreSQL test will be SKIPPED ***" >&2
fi

# Includes the short reliability harnesses (SECURITY.md): SIGKILL crash safety,
# multi-process history check, storage faults (mounts a small tmpfs when
# allowed), hostile input, secrets hygiene, and a replay of the fuzz corpus.
step "Rust: guest (native), host through wasmtime + SQLite and PostgreSQL, CLI end to end, conformance vectors, reliability harnesses"
cargo test --workspace --locked

step "the tour (README's first command), with the binary the tests built"
KEYSTATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/keystate" bash scripts/tour.sh >/dev/null
echo "tour: ok"

step "foreign hosts: the component in jco (plain Node) and wasmtime-py"
bash tests/foreign/run.sh

step "Node package"
bash bindings/node/test.sh

step "Python package"
bash bindings/python/test.sh
