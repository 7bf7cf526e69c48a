#!/usr/bin/env bash
# Run every cargo-fuzz target for a set time (default 600 seconds each), one
# after another, starting from the committed seed corpus. New corpus entries
# go to target/fuzz-corpus/<target> (not committed); a failing input is saved
# by libFuzzer under fuzz/artifacts/<target>/ — copy it to
# fuzz/regressions/<target>/ so `cargo test` replays it from then on.
#
#   bash scripts/fuzz.sh [seconds] [target...]
#
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(data_format rows ops)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

for target in "${targets[@]}"; do
    work="target/fuzz-corpus/$target"
    mkdir -p "$work" "fuzz/corpus/$target" "fuzz/regressions/$target"
    echo "==> fuzzing $target for ${seconds}s"
    (cd fuzz && cargo +nightly fuzz run "$target" "../$work" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1)
done
