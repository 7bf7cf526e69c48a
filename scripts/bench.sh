#!/usr/bin/env bash
# Every benchmark of keystate and its peers, in one run, then BENCHMARKS.md.
#
#   bash scripts/bench.sh            # full run (about half an hour on 2 cores)
#   bash scripts/bench.sh --quick    # a few samples each: checks the harness, not the speed
#
# KEYSTATE_BENCH_SIZES=1000,100000,1000000 adds the million-key keystore to the
# mutation and open benchmarks (filled once, then kept in the target dir).
# Installs what it needs: the wasm target, a venv with maturin, cryptography
# and tink from PyPI, and the release builds of the Python and Node packages.
# Run it on a machine that is otherwise idle; the numbers are only as quiet
# as the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
quick=""
[ "${1:-}" = "--quick" ] && quick="--quick"
venv="${KEYSTATE_BENCH_VENV:-$CARGO_TARGET_DIR/bench-venv}"
results="$CARGO_TARGET_DIR/bench-results.jsonl"
command="bash scripts/bench.sh${quick:+ $quick}${KEYSTATE_BENCH_SIZES:+ (KEYSTATE_BENCH_SIZES=$KEYSTATE_BENCH_SIZES)}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32-unknown-unknown target"
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi

step "Python: venv with the package (release build), cryptography and tink"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "maturin>=1.16,<2" cryptography tink
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps ./bindings/python

step "Node: the package (release build)"
node bindings/node/build.js

rm -rf "$CARGO_TARGET_DIR/criterion" "$results"
step "Rust: cargo bench (criterion)"
if [ -n "$quick" ]; then
    KEYSTATE_BENCH_RESULTS="$results" cargo bench --locked -p keystate --bench keystate -- --quick --noplot
else
    KEYSTATE_BENCH_RESULTS="$results" cargo bench --locked -p keystate --bench keystate -- --noplot
fi

step "Python: bench/bench.py"
"$venv/bin/python" bench/bench.py $quick --out "$results" >/dev/null

step "Node: bench/bench.mjs"
node bench/bench.mjs $quick --out "$results" >/dev/null

step "BENCHMARKS.md"
python3 bench/report.py --criterion "$CARGO_TARGET_DIR/criterion" --results "$results" \
    --command "$command" --notes bench/notes.md --out BENCHMARKS.md
echo "wrote BENCHMARKS.md"
