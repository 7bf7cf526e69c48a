'use strict'
// The promise-returning variants: they run on libuv's pool, so the event loop
// keeps ticking; they reject (never throw) with the same KeystateErrors.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const path = require('node:path')
const { test } = require('node:test')

const {
  keystate: { Keystore, KeystateError },
  fresh,
  keyIn,
  scratch,
  rejectsCode,
} = require('./helpers')

test('the event loop keeps ticking while a 64 MiB encryptAsync runs', async () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const data = crypto.randomBytes(64 << 20)
  const aad = Buffer.from('big')

  const period = 5
  let ticks = 0
  let maxGap = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    maxGap = Math.max(maxGap, now - last)
    last = now
    ticks++
  }, period)

  const started = performance.now()
  const pending = ks.encryptAsync('g', data, aad)
  assert.ok(pending instanceof Promise)
  const sealed = await pending
  const tookEncrypt = performance.now() - started
  const encryptTicks = ticks
  const encryptGap = maxGap

  maxGap = 0
  last = performance.now()
  const startedDecrypt = performance.now()
  const plain = await ks.decryptAsync(sealed, aad)
  const tookDecrypt = performance.now() - startedDecrypt
  clearInterval(timer)

  const report = { tookEncrypt, tookDecrypt, encryptTicks, encryptGap, decryptGap: maxGap }
  console.log('64 MiB async:', JSON.stringify(report, (_, v) => (typeof v === 'number' ? Math.round(v) : v)))
  assert.equal(sealed.length, data.length + 60 + 16 * (Math.floor(data.length / 65536) + 1))
  assert.ok(plain.equals(data), 'the result decrypts to the input')
  // The work must take long enough for the measurement to mean something...
  assert.ok(tookEncrypt > 250, `64 MiB took only ${tookEncrypt} ms: the measurement proves nothing`)
  // ...and the timer must have fired on time all along.
  assert.ok(encryptGap < 100, `a timer tick was late by ${encryptGap} ms during encryptAsync (took ${tookEncrypt} ms)`)
  assert.ok(maxGap < 100, `a timer tick was late by ${maxGap} ms during decryptAsync (took ${tookDecrypt} ms)`)
  assert.ok(encryptTicks >= tookEncrypt / period / 4, `only ${encryptTicks} ticks in ${tookEncrypt} ms`)
})

test('the input of encryptAsync is kept alive until the promise settles (it is read in place)', async () => {
  const v8 = require('node:v8')
  const vm = require('node:vm')
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc')
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const expected = crypto.randomBytes(8 << 20)
  let pending = ks.encryptAsync('g', new Uint8Array(expected), Buffer.from('aad')) // the only reference to the input
  for (let i = 0; i < 3; i++) {
    gc()
    Buffer.alloc(8 << 20, 0xee) // memory a freed input might be reused for
  }
  const sealed = await pending
  pending = ks.decryptAsync(Uint8Array.from(sealed), Buffer.from('aad'))
  gc()
  assert.ok((await pending).equals(expected))
})

test('async variants reject with KeystateError and never throw synchronously', async () => {
  const { ks } = fresh()
  ks.createGroup('g')
  const calls = {
    encryptAsync: () => ks.encryptAsync('g', Buffer.from('x')),
    decryptAsync: () => ks.decryptAsync(Buffer.from('junk')),
    createKeyAsync: () => ks.createKeyAsync('g', 'k', { state: 'deprecated' }),
    recoverKeyAsync: () => ks.recoverKeyAsync('g', 'k', '00'.repeat(16), 'p'),
    encryptFileAsync: () => ks.encryptFileAsync('g', '/nonexistent/x', '/nonexistent/y'),
    decryptFileAsync: () => ks.decryptFileAsync('/nonexistent/x', '/nonexistent/y'),
    openAsync: () => Keystore.openAsync(path.join(scratch(), 'missing.db')),
    badArgument: () => ks.encryptAsync('g', 'not bytes'),
    badState: () => ks.createKeyAsync('g', 'k', { state: 'bogus' }),
  }
  const codes = {}
  for (const [name, call] of Object.entries(calls)) {
    let promise
    assert.doesNotThrow(() => {
      promise = call()
    }, name)
    assert.ok(promise instanceof Promise, name)
    await assert.rejects(promise, (e) => {
      assert.ok(e instanceof KeystateError, `${name}: ${e}`)
      codes[name] = e.code
      return true
    })
  }
  assert.deepEqual(codes, {
    encryptAsync: 'KEY_UNUSABLE',
    decryptAsync: 'INTEGRITY',
    createKeyAsync: 'INVALID_TRANSITION',
    recoverKeyAsync: 'WRONG_PASSPHRASE',
    encryptFileAsync: 'NOT_FOUND',
    decryptFileAsync: 'NOT_FOUND',
    openAsync: 'NOT_FOUND',
    badArgument: 'INVALID_ARGUMENT',
    badState: 'INVALID_ARGUMENT',
  })
})

test('createKeyAsync with a pass phrase, recoverKeyAsync, createAsync/openAsync', async () => {
  const file = path.join(scratch(), 'async.db')
  const ks = await Keystore.createAsync(file, { hmkPassphrase: 'h', kpkPassphrase: 'k' })
  assert.ok(ks instanceof Keystore)
  ks.createGroup('g')
  // Two Argon2id runs at once on the pool, while the main thread stays free.
  const [a, b] = await Promise.all([
    ks.createKeyAsync('g', 'a', { passphrase: 'first', state: 'active' }),
    ks.createKeyAsync('g', 'b', { passphrase: 'second' }),
  ])
  assert.equal(a.recoverable && b.recoverable, true)
  assert.ok(a.created instanceof Date)
  assert.equal(ks.key('g', 'a').state, 'active')
  const c = await ks.encryptAsync('g', Buffer.from('pp data'))
  ks.deleteKey('g', 'b')
  await rejectsCode(ks.recoverKeyAsync('g', 'b', b.tag, 'wrong'), 'WRONG_PASSPHRASE')
  const back = await ks.recoverKeyAsync('g', 'b', b.tag, 'second', { state: 'active' })
  assert.deepEqual([back.state, ks.key('g', 'a').state], ['active', 'inactive'])
  ks.close()

  await rejectsCode(Keystore.openAsync(file, { hmkPassphrase: 'x', kpkPassphrase: 'k' }), 'WRONG_PASSPHRASE')
  const again = await Keystore.openAsync(file, { hmkPassphrase: 'h', kpkPassphrase: 'k' })
  assert.equal((await again.decryptAsync(c)).toString(), 'pp data')
  again.close()
})

test('close(): later calls fail, a call already running finishes', async () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const running = ks.encryptAsync('g', Buffer.alloc(4 << 20, 3))
  ks.close()
  assert.equal(ks.closed, true)
  const sealed = await running
  assert.equal(sealed.length, (4 << 20) + 60 + 16 * 65)
  await rejectsCode(ks.encryptAsync('g', Buffer.from('x')), 'INVALID_ARGUMENT', 'closed')
  assert.throws(() => ks.groups(), (e) => e instanceof KeystateError && e.code === 'INVALID_ARGUMENT')
  ks.close() // twice is fine
})
