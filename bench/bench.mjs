// keystate from Node, beside what a Node user would use instead, in one run.
//
//   node bench/bench.mjs [--quick] [--out results.jsonl]
//
// Peer: node:crypto's AES-256-GCM and ChaCha20-Poly1305 (OpenSSL, in-process).
// Every line of output is one JSON result:
// {"suite", "case", "subject", "median_ns", "p10_ns", "p90_ns", "bytes", "runs"}.
// Loads the package from bindings/node (built by `node bindings/node/build.js`).
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const packageDir = path.join(here, '..', 'bindings', 'node')
const { Keystore, Cipher, KeyState, allowedOperations } = await import(pathToFileURL(path.join(packageDir, 'index.mjs')).href)

const quick = process.argv.includes('--quick')
const outIndex = process.argv.indexOf('--out')
const outFile = outIndex > 0 ? process.argv[outIndex + 1] : null
const KIB = 1024
const MIB = 1024 * KIB

function measure(fn, { runs, inner = 1 }) {
  fn() // warm up
  const samples = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < inner; i++) fn()
    samples.push(Number(process.hrtime.bigint() - t0) / inner)
  }
  samples.sort((a, b) => a - b)
  const median = samples.length % 2 ? samples[(samples.length - 1) / 2] : (samples[samples.length / 2 - 1] + samples[samples.length / 2]) / 2
  return {
    median_ns: median,
    p10_ns: samples[Math.floor(samples.length / 10)],
    p90_ns: samples[Math.floor((samples.length * 9) / 10)],
    runs: runs * inner,
  }
}

function report(kase, subject, result, bytes = 0) {
  const line = JSON.stringify({ suite: 'node', case: kase, subject, bytes, ...result })
  console.log(line)
  if (outFile) fs.appendFileSync(outFile, line + '\n')
}

function dataKeystore(file) {
  const ks = Keystore.create(file)
  for (const [group, cipher] of [['aes', Cipher.Aes256Gcm], ['chacha', Cipher.Chacha20Poly1305]]) {
    ks.createGroup(group, { cipher })
    ks.createKey(group, 'k', { state: KeyState.Active })
  }
  return ks
}

function policy() {
  const rules = { active: new Set(['encrypt', 'decrypt']), inactive: new Set(['decrypt']) }
  const plain = (state) => rules[state]?.has('encrypt') ?? false
  const runs = quick ? 50 : 200
  const kase = 'policy decision: may an active key encrypt?'
  report(kase, 'keystate allowedOperations', measure(() => allowedOperations('active').includes('encrypt'), { runs, inner: 1000 }))
  report(kase, 'plain JavaScript function', measure(() => plain('active'), { runs, inner: 1000 }))
}

const COLD = `
const t0 = process.hrtime.bigint()
const { Keystore } = require(process.argv[1])
const ks = Keystore.open(process.argv[2])
ks.encrypt('aes', Buffer.alloc(1024, 120))
console.log(String(process.hrtime.bigint() - t0))
`

function coldStart(tmp) {
  const file = path.join(tmp, 'cold.db')
  dataKeystore(file).close()
  const run = (cache) =>
    Number(
      execFileSync(process.execPath, ['-e', COLD, packageDir, file], {
        env: { ...process.env, KEYSTATE_CACHE_DIR: cache },
        encoding: 'utf8',
      }).trim(),
    )
  const cache = path.join(tmp, 'cache')
  run(cache)
  const summary = (samples) => {
    samples.sort((a, b) => a - b)
    return { median_ns: samples[Math.floor(samples.length / 2)], p10_ns: samples[0], p90_ns: samples.at(-1), runs: samples.length }
  }
  const warm = Array.from({ length: quick ? 5 : 20 }, () => run(cache))
  const empty = Array.from({ length: quick ? 3 : 5 }, (_, i) => run(path.join(tmp, `empty-${i}`)))
  const kase = 'cold start: require keystate to first encrypt'
  report(kase, 'compiled component cached', summary(warm))
  report(kase, 'empty cache (compiles)', summary(empty))
}

function data(tmp) {
  const file = path.join(tmp, 'data.db')
  dataKeystore(file).close()
  const cores = Math.min(os.availableParallelism(), 8)
  const handles = new Map()
  for (const workers of new Set([1, cores])) {
    process.env.KEYSTATE_WORKERS = String(workers)
    handles.set(workers, Keystore.open(file))
  }
  delete process.env.KEYSTATE_WORKERS
  const key = crypto.randomBytes(32)
  const nonce = crypto.randomBytes(12)
  const aad = Buffer.from('aad')
  const nodeSeal = (algorithm, data) => {
    const c = crypto.createCipheriv(algorithm, key, nonce, { authTagLength: 16 })
    c.setAAD(aad)
    return [Buffer.concat([c.update(data), c.final()]), c.getAuthTag()]
  }
  const nodeOpen = (algorithm, [sealed, tag]) => {
    const d = crypto.createDecipheriv(algorithm, key, nonce, { authTagLength: 16 })
    d.setAAD(aad)
    d.setAuthTag(tag)
    return Buffer.concat([d.update(sealed), d.final()])
  }
  for (const [size, label] of [[KIB, '1 KiB'], [64 * MIB, '64 MiB']]) {
    const big = size > MIB
    const runs = big ? (quick ? 3 : 10) : quick ? 200 : 2000
    const plaintext = crypto.randomBytes(size)
    const seal = new Map()
    const open = new Map()
    for (const [workers, ks] of handles) {
      if (workers > 1 && !big) continue
      const how = workers > 1 ? `${workers} sandboxes` : '1 sandbox'
      for (const [group, cipher] of [['aes', 'AES-256-GCM'], ['chacha', 'ChaCha20-Poly1305']]) {
        const name = `keystate ${cipher}, ${how}`
        seal.set(name, () => ks.encrypt(group, plaintext, aad))
        const sealed = ks.encrypt(group, plaintext, aad)
        open.set(name, () => ks.decrypt(sealed, aad))
      }
    }
    for (const [algorithm, name] of [['aes-256-gcm', 'node:crypto AES-256-GCM'], ['chacha20-poly1305', 'node:crypto ChaCha20-Poly1305']]) {
      seal.set(name, () => nodeSeal(algorithm, plaintext))
      const sealed = nodeSeal(algorithm, plaintext)
      open.set(name, () => nodeOpen(algorithm, sealed))
    }
    for (const [op, table] of [['encrypt', seal], ['decrypt', open]]) {
      for (const [subject, fn] of table) report(`${op} ${label}`, subject, measure(fn, { runs }), size)
    }
  }
  for (const ks of handles.values()) ks.close()
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keystate-bench-'))
try {
  policy()
  coldStart(tmp)
  data(tmp)
} finally {
  fs.rmSync(tmp, { recursive: true, force: true })
}
