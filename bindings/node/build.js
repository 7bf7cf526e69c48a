#!/usr/bin/env node
'use strict'
// Builds the native addon with cargo and puts it beside index.js as
// keystate.node. `node build.js` builds release; `node build.js --debug` a
// debug build (faster to compile, much slower to run). Run by `npm run build`
// and by npm's `install` step.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const debug = process.argv.includes('--debug')
const cargo = process.env.CARGO || 'cargo'
const manifest = path.join(__dirname, 'Cargo.toml')

const args = ['build', '--manifest-path', manifest, '-p', 'keystate-node', '--lib']
if (!debug) args.push('--release')
try {
  execFileSync(cargo, args, { stdio: 'inherit' })
} catch (e) {
  console.error(`keystate: \`${cargo} ${args.join(' ')}\` failed. Rust is needed to build the addon: https://rustup.rs`)
  process.exit(1)
}

const metadata = JSON.parse(
  execFileSync(cargo, ['metadata', '--manifest-path', manifest, '--format-version', '1', '--no-deps'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  }),
)
const library = {
  linux: 'libkeystate_node.so',
  darwin: 'libkeystate_node.dylib',
  win32: 'keystate_node.dll',
}[process.platform] ?? 'libkeystate_node.so'
const built = path.join(metadata.target_directory, debug ? 'debug' : 'release', library)
const dest = path.join(__dirname, 'keystate.node')

// Copy, then rename into place: a process that has the old addon loaded keeps its copy intact.
const tmp = `${dest}.${process.pid}.tmp`
fs.copyFileSync(built, tmp)
fs.renameSync(tmp, dest)
console.log(`keystate: ${path.relative(process.cwd(), built) || built} -> ${dest}`)
