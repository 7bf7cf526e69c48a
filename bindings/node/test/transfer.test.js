'use strict'
// Export and import between keystores: round trip, duplicates, preview,
// names, errors, files, and the async variant.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { fresh, keyIn, rejectsCode, throwsCode } = require('./helpers')

const PASS = 'move them 2026'

function source() {
  const { ks, file } = fresh('source.db')
  keyIn(ks, 'g', 'old', 'inactive')
  ks.createKey('g', 'phrase', { state: 'active', passphrase: 'tape 7 offsite' })
  ks.createGroup('small', { cipher: 'AES_128_GCM' })
  ks.createKey('small', 's1', { state: 'active' })
  return { ks, file }
}

test('round trip: old data decrypts, tags and states are kept, groups are renamed', () => {
  const { ks: src } = source()
  const old = src.encrypt('g', Buffer.from('old backup'), Buffer.from('img'))
  const container = src.exportGroups(PASS)
  const { ks: dst } = fresh('target.db')
  const report = dst.importGroups(container, PASS)
  assert.equal(report.preview, false)
  assert.deepEqual(report.groupsCreated.map((g) => g.sourceName), ['g', 'small'])
  assert.match(report.groups[0].name, /^g_\d{8}T\d{6}Z$/)
  assert.equal(report.keysImported.length, 3)
  assert.deepEqual(report.keysSkipped, [])
  assert.equal(report.groups[0].skipped, null)
  assert.equal(dst.decrypt(old, Buffer.from('img')).toString(), 'old backup')
  const phrase = report.keys.find((k) => k.name === 'phrase')
  assert.equal(phrase.state, 'active')
  assert.equal(phrase.recoverable, true)
  assert.equal(dst.keyByTag(phrase.tag).group, report.groups[0].name)
})

test('a second import skips every key; preview changes nothing', async () => {
  const { ks: src } = source()
  const container = src.exportGroups(PASS, { groups: 'small' })
  const { ks: dst } = fresh('target.db')
  const preview = dst.previewImport(container, PASS, { preserveNames: true })
  assert.equal(preview.preview, true)
  assert.deepEqual(dst.groups(), [])
  const report = await dst.importGroupsAsync(new Uint8Array(container), PASS, { preserveNames: true })
  assert.deepEqual(report.groups, preview.groups)
  assert.deepEqual(report.keys, preview.keys)
  assert.deepEqual(dst.groups().map((g) => g.name), ['small'])
  const again = dst.importGroups(container, PASS, { preserveNames: true })
  assert.equal(again.groups[0].skipped.reason, 'group-exists')
  assert.equal(again.keys[0].skipped.reason, 'tag-exists')
  assert.match(again.keys[0].skipped.detail, /s1/)
  const renamed = dst.importGroups(container, PASS)
  assert.equal(renamed.groups[0].skipped.reason, 'no-new-keys')
  assert.equal(dst.groups().length, 1)
})

test('errors: wrong pass phrase, tampered container, unknown group, quiesced, bad arguments', async () => {
  const { ks: src } = source()
  const container = src.exportGroups(PASS)
  const { ks: dst } = fresh('target.db')
  throwsCode(() => dst.importGroups(container, 'not it'), 'WRONG_PASSPHRASE')
  await rejectsCode(dst.importGroupsAsync(container, 'not it'), 'WRONG_PASSPHRASE')
  const tampered = Buffer.from(container)
  tampered[tampered.length - 2] ^= 1
  throwsCode(() => dst.importGroups(tampered, PASS), 'INTEGRITY')
  throwsCode(() => dst.importGroups(Buffer.from('not a container'), PASS), 'INTEGRITY')
  throwsCode(() => src.exportGroups(PASS, { groups: ['nope'] }), 'NOT_FOUND')
  throwsCode(() => src.exportGroups(PASS, { groups: 7 }), 'INVALID_ARGUMENT')
  throwsCode(() => dst.importGroups(container, PASS, { preview: 'yes' }), 'INVALID_ARGUMENT')
  throwsCode(() => dst.importGroups('text', PASS), 'INVALID_ARGUMENT')
  dst.quiesce()
  throwsCode(() => dst.importGroups(container, PASS), 'QUIESCED')
  dst.unquiesce()
  assert.deepEqual(dst.groups(), [])
})

test('files: the export is private, the import reads it, a pass phrase key recovers', () => {
  const { ks: src, file } = source()
  const old = src.encrypt('g', Buffer.from('by phrase'))
  const out = path.join(path.dirname(file), 'out.ksx')
  const size = src.exportToFile(out, PASS, { groups: ['g'] })
  assert.equal(fs.statSync(out).size, size)
  assert.equal(fs.statSync(out).mode & 0o777, 0o600)
  const { ks: dst } = fresh('target.db')
  const report = dst.importFile(out, PASS, { preserveNames: true })
  assert.deepEqual(report.groupsCreated.map((g) => g.name), ['g'])
  const tag = dst.key('g', 'phrase').tag
  for (const state of ['inactive', 'deprecated', 'terminated']) dst.setState('g', 'phrase', state)
  dst.deleteKey('g', 'phrase')
  dst.recoverKey('g', 'phrase', tag, 'tape 7 offsite')
  assert.equal(dst.decrypt(old).toString(), 'by phrase')
  throwsCode(() => dst.importFile(path.join(path.dirname(file), 'missing.ksx'), PASS), 'NOT_FOUND')
})
