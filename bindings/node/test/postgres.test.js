'use strict'
// A keystore in PostgreSQL, by URL: several handles (hosts) on one keystore.
// Needs KEYSTATE_TEST_POSTGRES (scripts/test.sh starts a private server and
// sets it); skipped loudly without it, which is a failure in CI.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { keystate: { Keystore }, scratch, throwsCode } = require('./helpers')

const SERVER = process.env.KEYSTATE_TEST_POSTGRES || ''

function url(t) {
  if (!SERVER) {
    assert.ok(!process.env.CI, 'CI is set but KEYSTATE_TEST_POSTGRES is not: PostgreSQL tests must run')
    t.skip('*** no PostgreSQL server: set KEYSTATE_TEST_POSTGRES (scripts/test.sh does) ***')
    return null
  }
  const dir = scratch()
  const sep = SERVER.includes('?') ? '&' : '?'
  return { url: `${SERVER}${sep}schema=node_${crypto.randomBytes(8).toString('hex')}&key_files=${path.join(dir, 'keys')}`, dir }
}

const passwordOf = (u) => u.split('://')[1].split('@')[0].split(':')[1]

test('a URL keystore is shared between handles', async (t) => {
  const where = url(t)
  if (!where) return
  const a = Keystore.create(where.url)
  const b = await Keystore.openAsync(where.url)
  assert.ok(fs.existsSync(path.join(where.dir, 'keys.hmk')))
  assert.ok(!a.stats().path.includes(passwordOf(where.url)))
  a.createGroup('backups')
  a.createKey('backups', 'k1', { state: 'active' })
  const sealed = b.encrypt('backups', Buffer.from('image bytes'), Buffer.from('img-1'))
  assert.equal(a.decrypt(sealed, Buffer.from('img-1')).toString(), 'image bytes')
  a.setState('backups', 'k1', 'inactive')
  a.setState('backups', 'k1', 'deprecated')
  throwsCode(() => b.encrypt('backups', Buffer.from('more'), Buffer.alloc(0)), 'KEY_UNUSABLE')
  throwsCode(() => b.decrypt(sealed, Buffer.from('img-1')), 'KEY_UNUSABLE')
  b.createKey('backups', 'k2', { state: 'active' })
  assert.equal(a.group('backups').activeKey, 'k2')
})

test('a wrong password is a STORAGE error naming the server, not the password', (t) => {
  const where = url(t)
  if (!where) return
  const bad = where.url.replace(`:${passwordOf(where.url)}@`, ':not-the-Passw0rd@')
  const server = where.url.split('@')[1].split('/')[0]
  throwsCode(() => Keystore.open(bad), 'STORAGE', server)
  try { Keystore.open(bad) } catch (e) { assert.ok(!e.message.includes('not-the-Passw0rd'), e.message) }
})
