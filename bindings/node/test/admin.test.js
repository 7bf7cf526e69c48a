'use strict'
// Administration from Node: the audit trail with an actor, verification
// against a row edited in the database, and HMK/KPK rotation.

const assert = require('node:assert/strict')
const path = require('node:path')
const { test } = require('node:test')
const { execFileSync } = require('node:child_process')

const { keystate, fresh, throwsCode } = require('./helpers')
const { Keystore } = keystate

test('audit entries name the actor and the states', () => {
  const { ks, file } = fresh()
  ks.setActor('node-admin')
  assert.equal(ks.actor, 'node-admin')
  ks.createGroup('g')
  ks.createKey('g', 'k1', { state: 'active' })
  const other = Keystore.open(file, { actor: 'node-other' })
  other.createKey('g', 'k2', { state: 'active' })
  const entries = ks.audit()
  assert.deepEqual(
    entries.map((e) => [e.seq, e.action, e.actor]),
    [
      [1, 'create', entries[0].actor],
      [2, 'create-group', 'node-admin'],
      [3, 'create-key', 'node-admin'],
      [4, 'create-key', 'node-other'],
      [5, 'set-state', 'node-other'],
    ],
  )
  assert.deepEqual([entries[4].key, entries[4].oldState, entries[4].newState], ['k1', 'active', 'inactive'])
  assert.ok(entries[0].time instanceof Date)
  assert.deepEqual(ks.audit({ key: 'k1' }).map((e) => e.seq), [3, 5])
  assert.deepEqual(ks.audit({ limit: 1 }).map((e) => e.seq), [5])
  assert.deepEqual(ks.audit({ since: new Date(Date.now() + 86400000) }), [])
  throwsCode(() => ks.audit({ since: 'yesterday' }), 'INVALID_ARGUMENT', 'since')
  throwsCode(() => ks.setActor('bad\nactor'), 'INVALID_ARGUMENT', 'actor')
  const report = ks.verifyAudit()
  assert.equal(report.fault, null)
  assert.equal(report.verified, 5)
  assert.equal(report.headSeq, 5)
  assert.equal(ks.stats().auditEntries, 5)
})

/** Run SQL on the keystore file behind the library's back (Python's sqlite3; Node 20 has none). */
function sql(file, statement) {
  const script = 'import json, sqlite3, sys\n' +
    'db = sqlite3.connect(sys.argv[1])\n' +
    'rows = db.execute(sys.argv[2]).fetchall()\n' +
    'db.commit()\n' +
    'print(json.dumps(rows))'
  return JSON.parse(execFileSync('python3', ['-c', script, file, statement], { encoding: 'utf8' }))
}

test('verifyAudit names an entry edited in the database', () => {
  const { ks, file } = fresh()
  ks.createGroup('g')
  ks.createGroup('h')
  const ids = sql(file, 'SELECT id FROM audit ORDER BY id').map((r) => r[0])
  sql(file, `UPDATE audit SET body = CAST(body || x'00' AS BLOB) WHERE id = '${ids[1]}'`)
  const { fault } = ks.verifyAudit()
  assert.deepEqual([fault.problem, fault.seq, fault.rowId], ['edited', 2, ids[1]])
  throwsCode(() => ks.audit(), 'INTEGRITY', 'entry 2')
})

test('rotation: the old pass phrase is refused, the new one opens, data still decrypts', () => {
  const { file } = fresh('other.db')
  const dir = path.dirname(file)
  const target = path.join(dir, 'rotating.db')
  const ks = Keystore.create(target, { hmkPassphrase: 'old hmk' })
  ks.createGroup('g')
  ks.createKey('g', 'k', { state: 'active' })
  const sealed = ks.encrypt('g', Buffer.from('payload'))
  ks.rotateHmk({ passphrase: 'new hmk', id: 'hmk-2' })
  ks.rotateKpk()
  assert.equal(ks.stats().hmkId, 'hmk-2')
  ks.close()
  throwsCode(() => Keystore.open(target, { hmkPassphrase: 'old hmk' }), 'WRONG_PASSPHRASE')
  const again = Keystore.open(target, { hmkPassphrase: 'new hmk' })
  assert.equal(again.decrypt(sealed).toString(), 'payload')
  again.quiesce()
  throwsCode(() => again.rotateKpk({ passphrase: 'x' }), 'QUIESCED')
})
