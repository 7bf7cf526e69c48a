'use strict'
// The rule book from JavaScript: every (state, state) pair, creation in each
// state, every (state, operation) pair, the bump, deletion and recovery.

const assert = require('node:assert/strict')
const path = require('node:path')
const { test } = require('node:test')

const {
  keystate: { Keystore, canTransition, allowedOperations },
  STATES,
  USES,
  CREATABLE,
  legal,
  scratch,
  fresh,
  keyIn,
  throwsCode,
} = require('./helpers')

test('canTransition and allowedOperations answer the rule book', () => {
  for (const from of STATES) {
    for (const to of STATES) assert.equal(canTransition(from, to), legal(from, to), `${from} -> ${to}`)
    assert.deepEqual(allowedOperations(from), USES[from], from)
  }
})

test('all 25 transition pairs through a keystore', () => {
  const { ks } = fresh()
  let moved = 0
  let refused = 0
  for (const from of STATES) {
    for (const to of STATES) {
      const group = `g-${from}-${to}`
      const before = keyIn(ks, group, 'k', from)
      assert.equal(before.state, from)
      if (legal(from, to)) {
        const after = ks.setState(group, 'k', to)
        assert.equal(after.state, to, `${from} -> ${to}`)
        assert.equal(ks.key(group, 'k').state, to)
        assert.equal(after.tag, before.tag)
        moved++
      } else {
        throwsCode(() => ks.setState(group, 'k', to), 'INVALID_TRANSITION', from, to, '"k"', group)
        assert.equal(ks.key(group, 'k').state, from, `${from} -> ${to} refused leaves the key as it was`)
        refused++
      }
    }
  }
  // 5 stays + 7 adjacent moves are legal; the other 13 are refused.
  assert.deepEqual([moved, refused], [12, 13])
})

test('keys are created prelive or active, never in another state', () => {
  const { ks } = fresh()
  ks.createGroup('g')
  for (const state of STATES) {
    if (CREATABLE.includes(state)) {
      assert.equal(ks.createKey('g', state, { state }).state, state)
    } else {
      throwsCode(() => ks.createKey('g', state, { state }), 'INVALID_TRANSITION', state)
    }
  }
  assert.equal(ks.createKey('g', 'default').state, 'prelive', 'the default state is prelive')
  assert.deepEqual(
    ks.keys({ group: 'g' }).map((k) => k.name),
    ['active', 'default', 'prelive'],
  )
})

test('every state and operation pair: encrypt, decrypt, delete', () => {
  const { ks } = fresh()
  for (const state of STATES) {
    const group = `use-${state}`
    const allowed = USES[state]
    // Data sealed while the key was active; a prelive key never made any, so
    // its tag is put into another key's ciphertext (the key is looked up
    // before anything is authenticated).
    let sealed
    if (state === 'prelive') {
      const k = keyIn(ks, group, 'k', 'prelive')
      ks.createGroup(`${group}-donor`)
      ks.createKey(`${group}-donor`, 'donor', { state: 'active' })
      sealed = Buffer.from(ks.encrypt(`${group}-donor`, Buffer.from('payload')))
      Buffer.from(k.tag, 'hex').copy(sealed, 12)
    } else {
      keyIn(ks, group, 'k', 'active')
      sealed = ks.encrypt(group, Buffer.from('payload'))
      keyIn(ks, group, 'k2', 'prelive')
      for (const step of { active: [], inactive: ['inactive'], deprecated: ['inactive', 'deprecated'], terminated: ['inactive', 'deprecated', 'terminated'] }[state]) {
        ks.setState(group, 'k', step)
      }
    }
    assert.equal(ks.key(group, 'k').state, state)

    if (allowed.includes('encrypt')) {
      const c = ks.encrypt(group, Buffer.from('x'))
      assert.equal(ks.decrypt(c).toString(), 'x')
      assert.equal(ks.keyByTag(c.subarray(12, 28).toString('hex')).name, 'k', 'encrypt used the active key')
    } else {
      throwsCode(() => ks.encrypt(group, Buffer.from('x')), 'KEY_UNUSABLE', group)
    }

    if (allowed.includes('decrypt')) {
      assert.equal(ks.decrypt(sealed).toString(), 'payload')
    } else {
      throwsCode(() => ks.decrypt(sealed), 'KEY_UNUSABLE', state, 'decrypt', '"k"', group)
    }

    if (allowed.includes('delete')) {
      ks.deleteKey(group, 'k')
      throwsCode(() => ks.key(group, 'k'), 'NOT_FOUND', '"k"')
    } else {
      throwsCode(() => ks.deleteKey(group, 'k'), 'NOT_DELETABLE', state, '"k"', group)
      assert.equal(ks.key(group, 'k').state, state)
    }
  }
})

test('activating bumps the active key to inactive (create, prelive -> active, inactive -> active), also after reopen', () => {
  const { ks, file } = fresh()
  ks.createGroup('g')
  ks.createGroup('other')
  ks.createKey('other', 'o', { state: 'active' })
  ks.createKey('g', 'k1', { state: 'active' })
  assert.equal(ks.group('g').activeKey, 'k1')

  ks.createKey('g', 'k2', { state: 'active' }) // by creation
  assert.deepEqual(ks.keys({ group: 'g' }).map((k) => [k.name, k.state]), [['k1', 'inactive'], ['k2', 'active']])

  ks.createKey('g', 'k3')
  ks.setState('g', 'k3', 'active') // prelive -> active
  assert.deepEqual(ks.keys({ group: 'g' }).map((k) => k.state), ['inactive', 'inactive', 'active'])

  ks.setState('g', 'k1', 'active') // inactive -> active
  assert.deepEqual(ks.keys({ group: 'g' }).map((k) => k.state), ['active', 'inactive', 'inactive'])
  assert.equal(ks.key('other', 'o').state, 'active', 'another group keeps its active key')

  const c = ks.encrypt('g', Buffer.from('after the bump'))
  assert.equal(ks.keyByTag(c.subarray(12, 28).toString('hex')).name, 'k1')
  ks.close()

  const again = Keystore.open(file)
  assert.deepEqual(again.keys({ group: 'g', state: 'active' }).map((k) => k.name), ['k1'])
  assert.equal(again.group('g').activeKey, 'k1')
  assert.deepEqual(again.keys({ state: 'inactive' }).map((k) => k.name), ['k2', 'k3'])
  again.setState('g', 'k2', 'active')
  assert.deepEqual(again.keys({ group: 'g' }).map((k) => k.state), ['inactive', 'active', 'inactive'])
  assert.equal(again.decrypt(c).toString(), 'after the bump', 'the bumped key still decrypts')
  again.close()
})

test('delete rules: prelive and terminated keys, empty groups; deleted keys are gone for good', () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'p', 'prelive')
  keyIn(ks, 'g', 't', 'active')
  const c = ks.encrypt('g', Buffer.from('secret'))
  throwsCode(() => ks.deleteGroup('g'), 'NOT_DELETABLE', '"g"')
  ks.deleteKey('g', 'p')
  throwsCode(() => ks.deleteKey('g', 't'), 'NOT_DELETABLE', 'active')
  for (const s of ['inactive', 'deprecated']) {
    ks.setState('g', 't', s)
    throwsCode(() => ks.deleteKey('g', 't'), 'NOT_DELETABLE', s)
  }
  ks.setState('g', 't', 'terminated')
  const tag = ks.key('g', 't').tag
  ks.deleteKey('g', 't')
  throwsCode(() => ks.deleteKey('g', 't'), 'NOT_FOUND')
  throwsCode(() => ks.keyByTag(tag), 'NOT_FOUND', tag)
  throwsCode(() => ks.decrypt(c), 'NOT_FOUND', tag)
  ks.deleteGroup('g')
  throwsCode(() => ks.group('g'), 'NOT_FOUND', '"g"')
  throwsCode(() => ks.deleteGroup('g'), 'NOT_FOUND')
  assert.deepEqual(ks.groups(), [])
})

test('recover: a pass phrase key comes back with the right pass phrase only; a random key never', () => {
  const { ks, file } = fresh()
  ks.createGroup('g', { cipher: 'AES_128_GCM' })
  const key = ks.createKey('g', 'pp', { state: 'active', passphrase: 'offsite tape 7', description: 'weekly' })
  assert.equal(key.recoverable, true)
  const c = ks.encrypt('g', Buffer.from('before deletion'), Buffer.from('img'))
  throwsCode(() => ks.recoverKey('g', 'again', key.tag, 'offsite tape 7'), 'ALREADY_EXISTS', key.tag)
  for (const s of ['inactive', 'deprecated', 'terminated']) ks.setState('g', 'pp', s)
  ks.deleteKey('g', 'pp')
  throwsCode(() => ks.decrypt(c, Buffer.from('img')), 'NOT_FOUND')

  throwsCode(() => ks.recoverKey('g', 'pp', key.tag, 'offsite tape 8'), 'WRONG_PASSPHRASE', key.tag)
  throwsCode(() => ks.recoverKey('g', 'pp', key.tag, 'offsite tape 7', { state: 'prelive' }), 'INVALID_TRANSITION', 'prelive')
  throwsCode(() => ks.recoverKey('g', 'pp', 'not-a-tag', 'offsite tape 7'), 'INVALID_ARGUMENT')
  throwsCode(() => ks.recoverKey('nope', 'pp', key.tag, 'offsite tape 7'), 'NOT_FOUND', 'nope')
  assert.deepEqual(ks.keys(), [])

  const back = ks.recoverKey('g', 'pp', key.tag, 'offsite tape 7')
  assert.equal(back.tag, key.tag)
  assert.equal(back.state, 'inactive', 'recovered inactive by default')
  assert.equal(back.recoverable, true)
  assert.equal(ks.decrypt(c, Buffer.from('img')).toString(), 'before deletion')
  ks.close()

  const again = Keystore.open(file)
  assert.equal(again.keyByTag(key.tag).name, 'pp')
  assert.equal(again.decrypt(c, Buffer.from('img')).toString(), 'before deletion')

  const rnd = again.createKey('g', 'rnd')
  assert.equal(rnd.recoverable, false)
  again.deleteKey('g', 'rnd')
  throwsCode(() => again.recoverKey('g', 'rnd', rnd.tag, ''), 'WRONG_PASSPHRASE')
  throwsCode(() => again.recoverKey('g', 'rnd', rnd.tag, 'anything'), 'WRONG_PASSPHRASE')
  again.close()
})

test('recover into a chosen state', () => {
  const { ks } = fresh()
  ks.createGroup('g')
  const k = ks.createKey('g', 'pp', { passphrase: 'p' })
  ks.deleteKey('g', 'pp')
  const back = ks.recoverKey('g', 'pp', k.tag, 'p', { state: 'active' })
  assert.equal(back.state, 'active')
  assert.equal(ks.group('g').activeKey, 'pp')
})

test('names and descriptions: rename, describe, duplicates, bad names', () => {
  const { ks } = fresh()
  const g = ks.createGroup('g', { description: 'nightly' })
  assert.equal(g.description, 'nightly')
  assert.equal(g.cipher, 'AES_256_GCM')
  assert.equal(g.activeKey, null)
  assert.ok(g.created instanceof Date && g.modified instanceof Date)
  assert.ok(Math.abs(g.created.getTime() - Date.now()) < 60_000)
  assert.match(g.tag, /^[0-9a-f]{32}$/)
  throwsCode(() => ks.createGroup('g'), 'ALREADY_EXISTS', '"g"')
  throwsCode(() => ks.createGroup(' g'), 'INVALID_ARGUMENT')
  throwsCode(() => ks.createGroup('h', { cipher: 'DES' }), 'INVALID_ARGUMENT', 'DES')

  const renamed = ks.modifyGroup('g', { newName: 'backups', description: 'weekly' })
  assert.deepEqual([renamed.name, renamed.description, renamed.tag], ['backups', 'weekly', g.tag])
  throwsCode(() => ks.group('g'), 'NOT_FOUND')

  const k = ks.createKey('backups', 'k1', { description: 'first' })
  ks.createKey('backups', 'k2')
  throwsCode(() => ks.createKey('backups', 'k1'), 'ALREADY_EXISTS', '"k1"')
  throwsCode(() => ks.modifyKey('backups', 'k2', { newName: 'k1' }), 'ALREADY_EXISTS', '"k1"')
  const mk = ks.modifyKey('backups', 'k1', { newName: 'first', description: 'renamed' })
  assert.deepEqual([mk.name, mk.description, mk.tag, mk.group], ['first', 'renamed', k.tag, 'backups'])
  assert.equal(ks.modifyKey('backups', 'first', {}).description, 'renamed', 'absent fields stay')
  assert.deepEqual(ks.keys().map((x) => x.name), ['first', 'k2'])
})

test('quiesce makes the keystore read-only for mutations; reads and data still work', () => {
  const { ks, file } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  ks.quiesce()
  assert.equal(ks.stats().quiesced, true)
  throwsCode(() => ks.createGroup('h'), 'QUIESCED')
  throwsCode(() => ks.createKey('g', 'k2'), 'QUIESCED')
  throwsCode(() => ks.setState('g', 'k', 'inactive'), 'QUIESCED')
  throwsCode(() => ks.modifyKey('g', 'k', { description: 'x' }), 'QUIESCED')
  assert.equal(ks.key('g', 'k').state, 'active')
  assert.equal(ks.decrypt(ks.encrypt('g', Buffer.from('read-only'))).toString(), 'read-only')
  const other = Keystore.open(file)
  throwsCode(() => other.createGroup('h'), 'QUIESCED')
  ks.unquiesce()
  other.createGroup('h')
  assert.equal(ks.group('h').name, 'h', 'a change by another handle is seen at once')
  other.close()
})

test('reopen after every kind of mutation shows the same keystore', () => {
  const { ks, file } = fresh()
  ks.createGroup('a', { description: 'one' })
  ks.createGroup('b', { cipher: 'AES_128_GCM' })
  ks.createGroup('gone')
  ks.deleteGroup('gone')
  ks.modifyGroup('a', { description: 'uno' })
  keyIn(ks, 'a', 'k2', 'terminated')
  keyIn(ks, 'a', 'k1', 'active')
  keyIn(ks, 'b', 'k3', 'deprecated')
  keyIn(ks, 'b', 'k4', 'prelive')
  ks.modifyKey('b', 'k4', { newName: 'k5', description: 'renamed' })
  ks.deleteKey('a', 'k2')
  ks.quiesce()
  const groups = ks.groups()
  const keys = ks.keys()
  const stats = ks.stats()
  const c = ks.encrypt('a', Buffer.from('data'), Buffer.from('aad'))
  ks.close()
  assert.equal(ks.closed, true)

  const again = Keystore.open(file)
  assert.deepEqual(again.groups(), groups)
  assert.deepEqual(again.keys(), keys)
  assert.deepEqual(again.stats(), stats)
  assert.deepEqual(stats.states, { prelive: 1, active: 1, inactive: 0, deprecated: 1, terminated: 0 })
  assert.equal(stats.keys, 3)
  assert.equal(stats.groups, 2)
  assert.equal(stats.quiesced, true)
  assert.deepEqual(again.faults(), [])
  assert.equal(again.decrypt(c, Buffer.from('aad')).toString(), 'data')
  again.close()
})

test('pass phrase keystores: wrong HMK or KPK pass phrase is WRONG_PASSPHRASE', () => {
  const file = path.join(scratch(), 'pp.db')
  const ks = Keystore.create(file, { hmkPassphrase: 'hmk words', kpkPassphrase: 'kpk words' })
  keyIn(ks, 'g', 'k', 'active')
  const c = ks.encrypt('g', Buffer.from('x'))
  ks.close()
  throwsCode(() => Keystore.open(file, { hmkPassphrase: 'hmk wordz', kpkPassphrase: 'kpk words' }), 'WRONG_PASSPHRASE', 'HMK')
  throwsCode(() => Keystore.open(file, { hmkPassphrase: 'hmk words', kpkPassphrase: 'kpk wordz' }), 'WRONG_PASSPHRASE', 'KPK')
  throwsCode(() => Keystore.open(file), 'INVALID_ARGUMENT', 'pass phrase')
  const again = Keystore.open(file, { hmkPassphrase: 'hmk words', kpkPassphrase: 'kpk words' })
  assert.equal(again.decrypt(c).toString(), 'x')
  again.close()
})

test('keystore files: missing, existing, random-key keystore given a pass phrase', () => {
  const dir = scratch()
  throwsCode(() => Keystore.open(path.join(dir, 'none.db')), 'NOT_FOUND')
  const file = path.join(dir, 'k.db')
  Keystore.create(file).close()
  throwsCode(() => Keystore.create(file), 'ALREADY_EXISTS')
  throwsCode(() => Keystore.open(file, { hmkPassphrase: 'x' }), 'INVALID_ARGUMENT', 'HMK')
  Keystore.open(new URL(`file://${file}`)).close()
})
