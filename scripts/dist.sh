#!/usr/bin/env bash
# The component as a deliverable: writes
#   dist/keystate.wasm     the component every keystate host runs (keystate::COMPONENT:
#                          guest/ built by host/build.rs with [profile.guest]: opt-level 3,
#                          lto, codegen-units=1, panic=abort, strip; then componentized)
#   dist/wit/keystate.wit  its contract
# and prints the size and SHA-256. The same sources, Cargo.lock and toolchain give the
# same bytes.
#
#   bash scripts/dist.sh            # write dist/
#   bash scripts/dist.sh --check    # also rebuild the guest from scratch in a fresh target
#                                   # directory and check that the bytes are identical
#
# KEYSTATE_DIST_DIR overrides the output folder (default: dist/ at the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${KEYSTATE_DIST_DIR:-$repo/dist}
check=no
case "${1:-}" in
    --check) check=yes ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi

# Write the component the host crate embeds: the bytes in dist/ are the ones every host runs.
cargo run --quiet --locked -p keystate --example dist -- "$out/keystate.wasm"
mkdir -p "$out/wit"
cp wit/keystate.wit "$out/wit/keystate.wit"
size=$(wc -c <"$out/keystate.wasm")
echo "dist: $out/keystate.wasm: $size bytes ($(( (size + 1023) / 1024 )) KiB), sha256 $(sha256sum "$out/keystate.wasm" | cut -d' ' -f1)"
echo "dist: $out/wit/keystate.wit"

if [ "$check" = yes ]; then
    # A second, independent build: the guest compiled from nothing in a fresh target
    # directory (build.rs honours KEYSTATE_GUEST_TARGET_DIR), componentized again.
    fresh=$(mktemp -d "${TMPDIR:-/tmp}/keystate-dist-check.XXXXXX")
    trap 'rm -rf "$fresh"' EXIT
    echo "dist: rebuilding the guest from scratch in $fresh to check reproducibility"
    KEYSTATE_GUEST_TARGET_DIR="$fresh/guest-target" \
        cargo run --quiet --locked -p keystate --example dist -- "$fresh/keystate.wasm"
    if cmp -s "$out/keystate.wasm" "$fresh/keystate.wasm"; then
        echo "dist: reproducible: the fresh build has the same bytes"
    else
        echo "dist: NOT reproducible: the fresh build differs from $out/keystate.wasm" >&2
        exit 1
    fi
    # Leave the normal build as it was (the env var above changed build.rs's inputs).
    cargo build --quiet --locked -p keystate --example dist
fi
