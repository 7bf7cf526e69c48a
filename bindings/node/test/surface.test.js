'use strict'
// The package surface: exports (require and import), constants, index.d.ts
// covering every export and method, errors and argument checking.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { keystate, STATES, fresh, throwsCode } = require('./helpers')
const { Keystore, KeystateError, KeyState, Cipher, canTransition, allowedOperations } = keystate

const ROOT = path.join(__dirname, '..')
const EXPORTS = ['Keystore', 'KeystateError', 'KeyState', 'Cipher', 'canTransition', 'allowedOperations', 'VectorInstance']

test('require: the package directory, by its own name, and its main', () => {
  assert.deepEqual(Object.keys(keystate).sort(), [...EXPORTS].sort())
  assert.equal(require(ROOT), keystate)
  assert.equal(require('keystate'), keystate) // self-reference through package.json "exports"
  const pkg = require('../package.json')
  assert.equal(pkg.name, 'keystate')
  assert.equal(require(path.join(ROOT, pkg.main)), keystate)
})

test('import: the ESM entry gives the same objects', async () => {
  const esm = await import('keystate')
  for (const name of EXPORTS) assert.equal(esm[name], keystate[name], name)
  assert.equal(esm.default, keystate)
  const byPath = await import(path.join(ROOT, 'index.mjs'))
  assert.equal(byPath.Keystore, Keystore)
})

test('KeyState and Cipher constants', () => {
  assert.deepEqual(KeyState, {
    Prelive: 'prelive',
    Active: 'active',
    Inactive: 'inactive',
    Deprecated: 'deprecated',
    Terminated: 'terminated',
  })
  assert.deepEqual(Object.values(KeyState), STATES)
  assert.deepEqual(Cipher, { Aes256Gcm: 'AES_256_GCM', Aes128Gcm: 'AES_128_GCM', Chacha20Poly1305: 'CHACHA20_POLY1305' })
  assert.ok(Object.isFrozen(KeyState) && Object.isFrozen(Cipher))
  assert.equal(KeyState.Active, 'active')
})

test('index.d.ts declares every export and every Keystore method', () => {
  const dts = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8')
  for (const name of EXPORTS) {
    assert.match(dts, new RegExp(`export declare (const|class|function) ${name}\\b`), name)
  }
  const body = dts.slice(dts.indexOf('export declare class Keystore'))
  const classBody = body.slice(0, body.indexOf('\n}\n'))
  const instance = Object.getOwnPropertyNames(Keystore.prototype).filter((n) => n !== 'constructor')
  const statics = Object.getOwnPropertyNames(Keystore).filter((n) => typeof Keystore[n] === 'function')
  assert.ok(instance.length >= 28, `${instance.length} methods`)
  for (const m of instance) assert.match(classBody, new RegExp(`\\n  (readonly )?${m}\\b`), `Keystore.prototype.${m}`)
  for (const m of statics) assert.match(classBody, new RegExp(`\\n  static ${m}\\(`), `Keystore.${m}`)
  const esmTypes = fs.readFileSync(path.join(ROOT, 'index.d.mts'), 'utf8')
  assert.match(esmTypes, /export \* from '\.\/index\.js'/)
})

test('KeystateError: an Error subclass with a code, for every code of the library', () => {
  const e = new KeystateError('NOT_FOUND', 'no key named "k"')
  assert.ok(e instanceof Error)
  assert.equal(e.name, 'KeystateError')
  assert.equal(e.code, 'NOT_FOUND')
  assert.equal(e.message, 'no key named "k"')
  assert.match(String(e), /^KeystateError: no key named "k"/)
  assert.ok(e.stack.includes('surface.test.js'))
  // A thrown one carries the caller's stack.
  const { ks } = fresh()
  try {
    ks.group('missing')
    assert.fail('no error')
  } catch (err) {
    assert.ok(err instanceof KeystateError)
    assert.ok(err.stack.includes('surface.test.js'), err.stack)
    assert.equal(err.message, 'no group named "missing"')
  }
})

test('unknown state and cipher names are INVALID_ARGUMENT everywhere', () => {
  const { ks } = fresh()
  ks.createGroup('g')
  ks.createKey('g', 'k')
  throwsCode(() => canTransition('active', 'Active'), 'INVALID_ARGUMENT', 'Active')
  throwsCode(() => canTransition('bogus', 'active'), 'INVALID_ARGUMENT', 'bogus')
  throwsCode(() => allowedOperations('retired'), 'INVALID_ARGUMENT', 'retired')
  throwsCode(() => ks.setState('g', 'k', 'ACTIVE'), 'INVALID_ARGUMENT', 'ACTIVE')
  throwsCode(() => ks.createKey('g', 'k2', { state: '' }), 'INVALID_ARGUMENT')
  throwsCode(() => ks.keys({ state: 'live' }), 'INVALID_ARGUMENT', 'live')
  throwsCode(() => ks.recoverKey('g', 'k3', '00'.repeat(16), 'p', { state: 'x' }), 'INVALID_ARGUMENT')
  throwsCode(() => ks.createGroup('h', { cipher: 'CHACHA20' }), 'INVALID_ARGUMENT', 'CHACHA20')
  assert.equal(ks.createGroup('h', { cipher: 'aes-128-gcm' }).cipher, 'AES_128_GCM', "the library's spellings")
  assert.equal(ks.key('g', 'k').state, 'prelive')
})

test('arguments of the wrong type are INVALID_ARGUMENT naming the argument', () => {
  const { ks } = fresh()
  ks.createGroup('g')
  throwsCode(() => ks.createGroup(42), 'INVALID_ARGUMENT', 'name')
  throwsCode(() => ks.createGroup('x', 'AES_256_GCM'), 'INVALID_ARGUMENT', 'options')
  throwsCode(() => ks.createKey('g', 'k', { state: 1 }), 'INVALID_ARGUMENT', 'state')
  throwsCode(() => ks.createKey('g', 'k', { passphrase: Buffer.from('p') }), 'INVALID_ARGUMENT', 'passphrase')
  throwsCode(() => ks.encrypt('g', 'a string'), 'INVALID_ARGUMENT', 'data')
  throwsCode(() => ks.encrypt('g', Buffer.from('x'), 'aad'), 'INVALID_ARGUMENT', 'aad')
  throwsCode(() => ks.decrypt([1, 2, 3]), 'INVALID_ARGUMENT', 'ciphertext')
  throwsCode(() => ks.encryptFile('g', 1, 'x'), 'INVALID_ARGUMENT', 'src')
  throwsCode(() => Keystore.open(undefined), 'INVALID_ARGUMENT', 'path')
  throwsCode(() => canTransition('active'), 'INVALID_ARGUMENT', 'to')
  assert.throws(() => new Keystore(), TypeError)
  assert.throws(() => new Keystore({}), TypeError)
})

test('stats and faults', () => {
  const { ks, file } = fresh()
  ks.createGroup('g')
  ks.createKey('g', 'k', { state: 'active' })
  ks.createKey('g', 'p')
  const s = ks.stats()
  assert.deepEqual(Object.keys(s).sort(), ['auditEntries', 'corruptRows', 'formatVersion', 'groups', 'hmkId', 'keys', 'kpkId', 'path', 'quiesced', 'states'].sort())
  assert.equal(s.auditEntries, 4) // create, create-group, two create-key
  assert.deepEqual(
    { groups: s.groups, keys: s.keys, states: s.states, corruptRows: s.corruptRows, quiesced: s.quiesced, formatVersion: s.formatVersion },
    { groups: 1, keys: 2, states: { prelive: 1, active: 1, inactive: 0, deprecated: 0, terminated: 0 }, corruptRows: 0, quiesced: false, formatVersion: 1 },
  )
  assert.ok(s.path.endsWith(path.basename(file)), s.path)
  assert.match(s.hmkId, /\S/)
  assert.deepEqual(ks.faults(), [])
})

test('KeyInfo and GroupInfo have exactly the contract fields, camelCase, times as Dates', () => {
  const { ks } = fresh()
  const g = ks.createGroup('g')
  const k = ks.createKey('g', 'k', { state: 'active', description: 'd' })
  assert.deepEqual(Object.keys(g), ['tag', 'name', 'cipher', 'description', 'created', 'modified', 'activeKey'])
  assert.deepEqual(Object.keys(k), ['tag', 'name', 'group', 'state', 'description', 'created', 'modified', 'recoverable'])
  assert.equal(ks.group('g').activeKey, 'k')
  for (const info of [g, k]) {
    assert.ok(info.created instanceof Date && info.modified instanceof Date)
    assert.ok(!Number.isNaN(info.created.getTime()))
  }
  const later = ks.setState('g', 'k', 'inactive')
  assert.ok(later.modified >= k.modified)
  assert.equal(later.created.getTime(), k.created.getTime())
  assert.deepEqual(ks.keyByTag(k.tag), ks.key('g', 'k'))
})

test('the README shows example/readme.js as it is, in 10 lines of code', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const block = readme.match(/```js\n([\s\S]*?)```/)[1]
  const example = fs.readFileSync(path.join(ROOT, 'example', 'readme.js'), 'utf8')
  assert.equal(block, example)
  assert.equal(example.split('\n').filter((l) => l.trim()).length, 10)
})
