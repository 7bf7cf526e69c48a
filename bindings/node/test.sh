#!/usr/bin/env bash
# Every test of the Node package, from a fresh machine (CI=true, no stdin):
# installs the npm dev dependencies (package-lock.json), builds the addon
# (release), runs the node --test suite, type-checks and runs the
# whole-surface example, runs the README example, and installs the package
# into a scratch project the way a user would. Needs node >= 20 with npm, and
# cargo; installs the wasm32 target the component is built for if rustup is there.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
started=$SECONDS

step() { printf '\n==> node: %s\n' "$*"; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/keystate-node-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

step "toolchain: node $(node --version), npm $(npm --version), wasm32-unknown-unknown"
node -e 'const [major] = process.versions.node.split(".").map(Number); if (major < 20) { console.error("keystate needs Node >= 20"); process.exit(1) }'
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi

step "npm ci: dev dependencies (fast-check, typescript, @types/node)"
# --ignore-scripts: the package's own install script is the build, run next.
npm ci --ignore-scripts --no-audit --no-fund

step "build the addon: cargo build --release -p keystate-node -> keystate.node"
node build.js

step "node --test test/"
node --test test/*.test.js

TSC=(npx --no-install tsc --strict --module nodenext --moduleResolution nodenext --target es2022 --types node)
step "tsc --noEmit --strict example/whole-surface.ts (and its ESM twin)"
"${TSC[@]}" --noEmit example/whole-surface.ts example/whole-surface.mts

step "the whole-surface example, compiled and run"
mkdir -p "$scratch/surface/node_modules"
ln -s "$HERE" "$scratch/surface/node_modules/keystate"
"${TSC[@]}" --rootDir example --outDir "$scratch/surface/out" example/whole-surface.ts example/whole-surface.mts
node "$scratch/surface/out/whole-surface.js" | tail -n 1
node --input-type=module -e "import('$scratch/surface/out/whole-surface.mjs').then((m) => { if (m.active !== 'active') process.exit(1) })"

step "the README example (example/readme.js)"
mkdir "$scratch/readme"
(cd "$scratch/readme" && node "$HERE/example/readme.js") | tee "$scratch/readme.out"
grep -q '^image bytes inactive$' "$scratch/readme.out"
grep -q '^true KEY_UNUSABLE key "k1" in group "backups" is deprecated' "$scratch/readme.out"
grep -q '^k1 deprecated, k2 active$' "$scratch/readme.out"

step "npm install <repo>/bindings/node into a scratch project; require and import"
mkdir "$scratch/app"
cd "$scratch/app"
npm init -y >/dev/null
npm install --no-audit --no-fund "$HERE"
cp "$HERE/example/readme.js" .
node readme.js >/dev/null
node -e "const k = require('keystate'); if (typeof k.Keystore.open !== 'function') process.exit(1)"
node --input-type=module -e "import keystate, { Keystore, KeyState } from 'keystate'; if (keystate.Keystore !== Keystore || KeyState.Active !== 'active') process.exit(1)"
echo "require and import: ok"

echo
echo "node: all passed in $((SECONDS - started)) s"
