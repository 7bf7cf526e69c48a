#!/usr/bin/env bash
# The component in two hosts nobody here wrote: every conformance vector
# (tests/vectors/*.json) replayed through dist/keystate.wasm in
#   - plain Node, the component transpiled to JavaScript by jco (no native addon), and
#   - Python with wasmtime-py's wasmtime.component API (no pyo3),
# each with the host import written in that language, compared byte for byte.
# Also checks that the component imports no wasi: interface, and runs the README
# snippets ("Load the component in your own host").
#
# Installs what it needs on a fresh machine with Python 3 (+ venv, pip) and Node 20+ (npm):
# jco from npm into tests/foreign/js/node_modules (package-lock.json), wasmtime and
# pytest from PyPI into a venv ($KEYSTATE_VENV, default target/foreign/venv).
# Exits non-zero if anything fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
venv=${KEYSTATE_VENV:-$repo/target/foreign/venv}
dist_wasm=$repo/dist/keystate.wasm

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'foreign: %s\n' "$*" >&2; exit 1; }
seconds() { date +%s; }

command -v node >/dev/null || die "node is missing (Node 20 or newer)"
command -v npm >/dev/null || die "npm is missing"
command -v python3 >/dev/null || die "python3 is missing"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node $(node --version) is too old: jco needs Node 20 or newer"

step "dist: the component and its WIT"
bash scripts/dist.sh || die "scripts/dist.sh failed"
export KEYSTATE_DIST_WASM=$dist_wasm

step "JavaScript: jco (npm ci from package-lock.json), transpile, node --test"
t0=$(seconds)
(
    set -e
    cd tests/foreign/js
    # npm ci only when node_modules does not match the lock file.
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
    rm -rf keystate-js
    npx --no-install jco transpile "$dist_wasm" -o keystate-js --instantiation async --name keystate --quiet
    node --test vectors.test.mjs
)
js_status=$?
js_time=$(( $(seconds) - t0 ))

step "Python: wasmtime-py in $venv, pytest"
t0=$(seconds)
(
    set -e
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/foreign/python/requirements.txt
    "$venv/bin/python" -m pytest -p no:cacheprovider tests/foreign/python
)
py_status=$?   # pytest: 1 = tests failed, 5 = no tests collected; both are failures here
py_time=$(( $(seconds) - t0 ))

printf '\nforeign hosts: jco/Node %s (%ss), wasmtime-py %s (%ss)\n' \
    "$([ $js_status -eq 0 ] && echo passed || echo "FAILED ($js_status)")" "$js_time" \
    "$([ $py_status -eq 0 ] && echo passed || echo "FAILED ($py_status)")" "$py_time"
[ $js_status -eq 0 ] && [ $py_status -eq 0 ]
