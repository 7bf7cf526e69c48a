'use strict'
// Keystore.batch: many mutations in one commit, all of them or none.

const assert = require('node:assert/strict')
const { test } = require('node:test')

const {
  keystate: { Keystore, Cipher },
  fresh,
  keyIn,
  throwsCode,
} = require('./helpers')

test('a batch commits every mutation and returns their records', () => {
  const { ks, file } = fresh()
  const other = Keystore.open(file)
  const results = ks.batch((b) => {
    b.createGroup('tapes', { cipher: Cipher.Chacha20Poly1305 })
    for (let i = 0; i < 200; i++) b.createKey('tapes', `tape-${i}`)
    b.setState('tapes', 'tape-0', 'active')
    b.setState('tapes', 'tape-1', 'active') // bumps tape-0, made in this batch
    b.deleteKey('tapes', 'tape-199')
    b.createKey('tapes', 'recoverable', { passphrase: 'tape 7 offsite' })
  })
  assert.equal(results.length, 205)
  assert.equal(results[0].cipher, 'CHACHA20_POLY1305')
  assert.deepEqual(results.slice(1, 201).map((k) => k.name), Array.from({ length: 200 }, (_, i) => `tape-${i}`))
  assert.equal(results[202].state, 'active')
  assert.equal(results[203], null)
  assert.equal(results[204].recoverable, true)
  assert.equal(other.keys({ group: 'tapes' }).length, 200)
  assert.equal(other.key('tapes', 'tape-0').state, 'inactive')
  assert.equal(other.group('tapes').activeKey, 'tape-1')
  assert.deepEqual(other.decrypt(ks.encrypt('tapes', Buffer.from('tape'))), Buffer.from('tape'))
  other.close()
})

test('a refused mutation commits none of the batch', () => {
  const { ks, file } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  throwsCode(() => ks.batch((b) => {
    b.createKey('g', 'new')
    b.setState('g', 'k', 'inactive')
    b.setState('g', 'new', 'terminated') // prelive -> terminated is not a move
  }), 'INVALID_TRANSITION')
  for (const handle of [ks, Keystore.open(file)]) {
    throwsCode(() => handle.key('g', 'new'), 'NOT_FOUND')
    assert.equal(handle.key('g', 'k').state, 'active')
  }
})

test('a build function that throws commits nothing, and bad names are refused first', () => {
  const { ks } = fresh()
  assert.throws(() => ks.batch((b) => {
    b.createGroup('g')
    throw new Error('changed my mind')
  }), /changed my mind/)
  throwsCode(() => ks.batch((b) => {
    b.createGroup('g')
    b.createKey('g', 'k', { state: 'alive' })
  }), 'INVALID_ARGUMENT')
  throwsCode(() => ks.batch((b) => b.createGroup(3)), 'INVALID_ARGUMENT')
  throwsCode(() => ks.batch('not a function'), 'INVALID_ARGUMENT')
  assert.deepEqual(ks.groups(), [])
})
