#!/usr/bin/env bash
# The Python package: install it the way a user does, then test it.
#
#   bash bindings/python/test.sh        venv: $KEYSTATE_VENV, else <repo>/.venv (created if missing)
#
# Needs only Python >= 3.9 with pip and a Rust toolchain; installs the rest
# (maturin, pytest, hypothesis, mypy from PyPI; the wasm32 target if rustup is
# there). Non-interactive: fine with CI=true and no stdin.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${KEYSTATE_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
# Share the workspace's build directory (wasmtime is built once for everything).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
exec </dev/null

step() { printf '\n==> python: %s\n' "$*"; }
started=$SECONDS

step "toolchain: wasm32-unknown-unknown target (the component is built for it)"
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi

step "venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet "maturin>=1.16,<2" pytest hypothesis mypy

step "pip install ./bindings/python (maturin, release build)"
(cd "$REPO" && "$PY" -m pip install --force-reinstall --no-deps ./bindings/python)

step "the keystate CLI binary, for python -m keystate"
(cd "$REPO" && cargo build --locked -p keystate --bin keystate)
export KEYSTATE_CLI="$CARGO_TARGET_DIR/debug/keystate"
export KEYSTATE_REQUIRE_CLI=1

# Run from a scratch directory, so that `import keystate` is the installed package.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

step "pytest"
set +e
(cd "$HERE" && timeout 1200 "$PY" -m pytest tests -p no:cacheprovider -q)
rc=$?
set -e
case $rc in
    0) ;;
    5) echo "pytest collected no tests: that is a failure here" >&2; exit 1 ;;
    *) exit $rc ;;
esac

step "types: mypy --strict on examples/tour.py, stubtest on the stubs"
(cd "$HERE/examples" && "$PY" -m mypy --strict --cache-dir=/dev/null tour.py)
(cd "$scratch" && "$PY" -m mypy.stubtest keystate --allowlist "$HERE/stubtest-allowlist.txt")

step "examples: the tour and the README's example"
(cd "$scratch" && "$PY" "$HERE/examples/tour.py" "$scratch" >/dev/null && echo "tour: ok")
mkdir "$scratch/readme"
"$PY" - "$HERE/README.md" > "$scratch/readme/example.py" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"```python\n(.*?)```", text, re.S)
assert blocks, "README.md has no python example"
print(blocks[0])
PYEOF
(cd "$scratch/readme" && "$PY" example.py)

step "python -m keystate --help"
help="$(cd "$scratch" && "$PY" -m keystate --help)"
grep -q "Usage: keystate" <<<"$help" || { echo "python -m keystate --help did not run the CLI:" >&2; echo "$help" >&2; exit 1; }
echo "python -m keystate: ok"

echo
echo "python: ok ($((SECONDS - started)) s)"
