'use strict'
// wasmtime (inside the addon) and V8 both handle SIGSEGV/SIGILL/SIGFPE to turn
// faults in generated code into traps. Both must keep working in one process,
// whichever installed its handlers first, and while both run at once. Each
// case runs in a child process, so that a clash shows up as a crash there
// (signal, exit code) instead of taking the test runner down.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { test } = require('node:test')

const ROOT = path.join(__dirname, '..')

// A JavaScript WebAssembly module (run by V8) whose functions trap:
// (memory 1)
// (func (export "load") (param i32) (result i32) local.get 0 i32.load)
// (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
// (func (export "unreachable") unreachable)
// (func $rec (export "rec") (param i32) (result i32) local.get 0 i32.const 1 i32.add call $rec)
const V8_WASM = `
const sec = (id, body) => [id, body.length, ...body] // every length here is < 128: one LEB128 byte
const vec = (items) => [items.length, ...items.flat()]
const name = (s) => [s.length, ...Buffer.from(s)]
const func = (code) => [code.length + 2, 0x00, ...code, 0x0b] // no locals, body, end
const bytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...sec(1, vec([[0x60, 1, 0x7f, 1, 0x7f], [0x60, 2, 0x7f, 0x7f, 1, 0x7f], [0x60, 0, 0]])),
  ...sec(3, vec([[0], [1], [2], [0]])),
  ...sec(5, vec([[0x00, 1]])),
  ...sec(7, vec([[...name('load'), 0, 0], [...name('div'), 0, 1], [...name('unreachable'), 0, 2], [...name('rec'), 0, 3]])),
  ...sec(10, vec([
    func([0x20, 0, 0x28, 0x02, 0x00]),
    func([0x20, 0, 0x20, 1, 0x6d]),
    func([0x00]),
    func([0x20, 0, 0x41, 1, 0x6a, 0x10, 3]),
  ])),
])
const v8wasm = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports
function v8Traps(round) {
  const got = []
  const expect = (fn, kind, pattern) => {
    try { fn(); got.push('no trap') } catch (e) {
      if (!(e instanceof kind) || !pattern.test(e.message)) throw new Error('round ' + round + ': unexpected ' + e)
      got.push(e.constructor.name)
    }
  }
  if (v8wasm.load(16) !== 0) throw new Error('in-bounds load')
  expect(() => v8wasm.load(65536), WebAssembly.RuntimeError, /out of bounds/)   // guard-page fault: SIGSEGV
  expect(() => v8wasm.load(-1), WebAssembly.RuntimeError, /out of bounds/)
  expect(() => v8wasm.div(1, 0), WebAssembly.RuntimeError, /divi/)             // SIGFPE on x86 where V8 uses signals
  expect(() => v8wasm.unreachable(), WebAssembly.RuntimeError, /unreachable/)  // ud2: SIGILL
  expect(() => v8wasm.rec(0), RangeError, /stack/)
  return got
}
`

const KEYSTATE = `
const fs = require('node:fs'), os = require('node:os'), path = require('node:path')
const { Keystore } = require(${JSON.stringify(ROOT)})
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keystate-signals-'))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
const ks = Keystore.create(path.join(dir, 'k.db'))
ks.createGroup('g'); ks.createKey('g', 'k', { state: 'active' })
function keystateWorks() {
  const c = ks.encrypt('g', Buffer.from('through wasmtime'))
  if (ks.decrypt(c).toString() !== 'through wasmtime') throw new Error('round trip')
  try { ks.decrypt(c.subarray(0, 70)); throw new Error('no error') } catch (e) { if (e.code !== 'INTEGRITY') throw e }
}
`

function run(body) {
  const r = spawnSync(process.execPath, ['-e', body], { encoding: 'utf8', timeout: 120_000 })
  const output = `status ${r.status}, signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`
  assert.equal(r.signal, null, `the child died of a signal:\n${output}`)
  assert.equal(r.status, 0, output)
  return r.stdout
}

test('V8 wasm traps still work after wasmtime installed its handlers', () => {
  const out = run(`${V8_WASM}${KEYSTATE}
    keystateWorks()
    const got = v8Traps(1)
    keystateWorks()
    console.log(JSON.stringify(got))`)
  assert.deepEqual(JSON.parse(out), ['RuntimeError', 'RuntimeError', 'RuntimeError', 'RuntimeError', 'RangeError'])
})

test('keystate works after V8 wasm trapped first', () => {
  run(`${V8_WASM}
    v8Traps(0)
    ${KEYSTATE}
    keystateWorks()
    v8Traps(1)
    keystateWorks()`)
})

test('V8 traps on the main thread while wasmtime runs on pool threads', () => {
  run(`${V8_WASM}${KEYSTATE}
    const big = Buffer.alloc(8 << 20, 5)
    let rounds = 0, done = false
    const work = Promise.all([ks.encryptAsync('g', big), ks.encryptAsync('g', big), ks.createKeyAsync('g', 'pp', { passphrase: 'x' })])
      .then(([a, b]) => Promise.all([ks.decryptAsync(a), ks.decryptAsync(b)]))
      .then(([a, b]) => { if (!a.equals(big) || !b.equals(big)) throw new Error('round trip'); done = true })
    const spin = () => { if (done) return; v8Traps(++rounds); setImmediate(spin) }
    spin()
    work.then(() => { keystateWorks(); if (rounds < 1) throw new Error('no overlap'); console.log(rounds) })`)
})

test('a keystore in a worker thread, V8 traps in both threads', () => {
  run(`${V8_WASM}${KEYSTATE}
    const { Worker } = require('node:worker_threads')
    const code = ${JSON.stringify(V8_WASM + KEYSTATE)} + "keystateWorks(); v8Traps(9); require('node:worker_threads').parentPort.postMessage('ok')"
    const w = new Worker(code, { eval: true })
    w.on('message', (m) => { if (m !== 'ok') throw new Error(m) })
    w.on('error', (e) => { throw e })
    w.on('exit', (c) => { if (c !== 0) throw new Error('worker exit ' + c); keystateWorks(); v8Traps(2) })
    keystateWorks(); v8Traps(1)`)
})
