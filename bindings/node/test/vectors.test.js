'use strict'
// The conformance vectors (tests/vectors/*.json) replayed through this build's
// addon, exactly as host/tests/vectors.rs replays them in Rust: per script, a
// fresh VectorInstance with the script's deterministic clock and entropy; per
// step, call `call` with `args` (resources are {"resource": n} values, resolved
// by the instance) and compare the JSON result with `expect`, stopping at the
// first mismatch. One test per script.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { VectorInstance, KeystateError } = require('..')

const VECTORS = path.join(__dirname, '..', '..', '..', 'tests', 'vectors')
const FILES = fs
  .readdirSync(VECTORS)
  .filter((n) => n.endsWith('.json') && n !== 'functions.json')
  .sort()

/** JSON equality; object member order does not matter. */
function same(a, b) {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => same(x, b[i]))
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]))
}

test('the vector files are there', () => {
  assert.deepEqual(FILES, ['admin.json', 'data.json', 'lifecycle.json', 'passphrase.json', 'policy.json', 'rows.json', 'tamper.json'])
})

test('library errors are KeystateErrors with the code', () => {
  const instance = new VectorInstance(Buffer.alloc(0), 0, 1)
  assert.throws(() => instance.call('policy.no-such-function', '{}'), (e) => e instanceof KeystateError && e.code === 'NOT_FOUND')
  assert.throws(() => instance.call('policy.can-transition', 'not json'), (e) => e instanceof KeystateError && e.code === 'INVALID_ARGUMENT')
  assert.throws(() => new VectorInstance(Buffer.alloc(0), -1, 1), (e) => e instanceof KeystateError && e.code === 'INVALID_ARGUMENT')
})

for (const file of FILES) {
  const doc = JSON.parse(fs.readFileSync(path.join(VECTORS, file), 'utf8'))
  assert.ok(Array.isArray(doc.scripts) && doc.scripts.length > 0, `${file}: no scripts`)
  for (const script of doc.scripts) {
    test(`${path.basename(file, '.json')}: ${script.name}`, () => {
      const env = script.env
      const instance = new VectorInstance(Buffer.from(env.seed, 'hex'), env['clock-start'], env['clock-step'])
      assert.ok(script.steps.length > 0, `${file}: script ${script.name} has no steps`)
      script.steps.forEach((step, i) => {
        let got
        try {
          got = JSON.parse(instance.call(step.call, JSON.stringify(step.args)))
        } catch (e) {
          if (!(e instanceof KeystateError)) throw e
          got = { 'call failed': e.message }
        }
        if (!same(got, step.expect)) {
          assert.fail(
            `${file}: script ${JSON.stringify(script.name)}, step ${i} (${step.call})${step.note ? ` [${step.note}]` : ''}\n` +
              `  args:     ${JSON.stringify(step.args)}\n` +
              `  expected: ${JSON.stringify(step.expect)}\n` +
              `  got:      ${JSON.stringify(got)}\n` +
              'If the change is intended, regenerate with\n' +
              '  KEYSTATE_REGENERATE_VECTORS=1 cargo test -p keystate --test vectors',
          )
        }
      })
    })
  }
}
