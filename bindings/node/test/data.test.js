'use strict'
// Data: round trips in every input type, tamper detection over every byte
// class of the format (docs/format.md), truncation, wrong aad, files.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { fresh, keyIn, scratch, throwsCode, rejectsCode } = require('./helpers')

const HEADER = 60
const TAG = 16
const KEY_TAG = [12, 28] // header bytes naming the key

test('round trips: Buffer, Uint8Array, other views, empty data, aad', () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const data = Buffer.from('the quick brown fox')
  for (const input of [data, new Uint8Array(data), new DataView(data.buffer, data.byteOffset, data.length), data.buffer.slice(data.byteOffset, data.byteOffset + data.length)]) {
    const c = ks.encrypt('g', input, new Uint8Array([1, 2, 3]))
    assert.ok(Buffer.isBuffer(c))
    assert.equal(c.length, HEADER + data.length + TAG)
    const p = ks.decrypt(new Uint8Array(c), Buffer.from([1, 2, 3]))
    assert.ok(Buffer.isBuffer(p))
    assert.deepEqual(p, data)
  }
  const empty = ks.encrypt('g', Buffer.alloc(0))
  assert.equal(empty.length, HEADER + TAG)
  assert.equal(ks.decrypt(empty).length, 0)
  // No aad, an empty aad and an omitted aad are the same.
  assert.equal(ks.decrypt(ks.encrypt('g', data), Buffer.alloc(0)).toString(), data.toString())
  assert.equal(ks.decrypt(ks.encrypt('g', data, null)).toString(), data.toString())
  // Two encryptions of the same data differ (fresh salt).
  assert.notDeepEqual(ks.encrypt('g', data), ks.encrypt('g', data))
})

test('every byte of a ciphertext is protected: flip each one', () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  // Two chunks of the default 64 KiB would make this slow; one chunk covers
  // every byte class: header fields, chunk body, GCM tag.
  const c = ks.encrypt('g', Buffer.from('payload of forty bytes, more or less...'), Buffer.from('aad'))
  let integrity = 0
  let notFound = 0
  for (let i = 0; i < c.length; i++) {
    const bad = Buffer.from(c)
    bad[i] ^= 0x01
    const inKeyTag = i >= KEY_TAG[0] && i < KEY_TAG[1]
    // A changed key tag names a key this keystore does not have.
    throwsCode(() => ks.decrypt(bad, Buffer.from('aad')), inKeyTag ? 'NOT_FOUND' : 'INTEGRITY')
    inKeyTag ? notFound++ : integrity++
  }
  assert.equal(notFound, 16)
  assert.equal(integrity, c.length - 16)
})

test('header fields, chunk bytes and GCM tags of a multi-chunk ciphertext', () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const data = Buffer.alloc(3 * 65536 + 100, 7)
  const c = ks.encrypt('g', data)
  const full = 65536 + TAG
  assert.equal(c.length, HEADER + 3 * full + 100 + TAG)
  const flips = {
    magic: 0,
    version: 4,
    cipher: 5,
    reserved: 6,
    'chunk size': 9,
    salt: 40,
    'first chunk body': HEADER + 10,
    'first chunk tag': HEADER + full - 1,
    'middle chunk body': HEADER + full + 500,
    'middle chunk tag': HEADER + 2 * full - 5,
    'final chunk body': HEADER + 3 * full + 3,
    'final chunk tag': c.length - 1,
  }
  for (const [what, at] of Object.entries(flips)) {
    const bad = Buffer.from(c)
    bad[at] ^= 0x80
    throwsCode(() => ks.decrypt(bad), 'INTEGRITY')
    assert.ok(true, what)
  }
  // Reordered chunks, a dropped chunk, a repeated chunk.
  const chunks = [0, 1, 2].map((i) => c.subarray(HEADER + i * full, HEADER + (i + 1) * full))
  const head = c.subarray(0, HEADER)
  const last = c.subarray(HEADER + 3 * full)
  throwsCode(() => ks.decrypt(Buffer.concat([head, chunks[1], chunks[0], chunks[2], last])), 'INTEGRITY')
  throwsCode(() => ks.decrypt(Buffer.concat([head, chunks[0], chunks[2], last])), 'INTEGRITY')
  throwsCode(() => ks.decrypt(Buffer.concat([head, chunks[0], chunks[0], chunks[1], chunks[2], last])), 'INTEGRITY')
  assert.deepEqual(ks.decrypt(c), data)
})

test('truncation anywhere and appended bytes are INTEGRITY', () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const c = ks.encrypt('g', Buffer.alloc(65536 + 10, 1))
  const full = HEADER + 65536 + TAG
  for (const len of [0, 1, 59, 60, 61, full - 1, full, full + 1, full + 15, c.length - 1]) {
    throwsCode(() => ks.decrypt(c.subarray(0, len)), 'INTEGRITY')
  }
  throwsCode(() => ks.decrypt(Buffer.concat([c, Buffer.from([0])])), 'INTEGRITY')
})

test('wrong associated data is INTEGRITY', () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const c = ks.encrypt('g', Buffer.from('backup image'), Buffer.from('image-17'))
  throwsCode(() => ks.decrypt(c, Buffer.from('image-18')), 'INTEGRITY', 'associated data')
  throwsCode(() => ks.decrypt(c), 'INTEGRITY')
  assert.equal(ks.decrypt(c, Buffer.from('image-17')).toString(), 'backup image')
})

test('data of another keystore is NOT_FOUND; of another group decrypts by tag', () => {
  const a = fresh().ks
  const b = fresh().ks
  keyIn(a, 'g', 'k', 'active')
  keyIn(b, 'g', 'k', 'active')
  throwsCode(() => b.decrypt(a.encrypt('g', Buffer.from('x'))), 'NOT_FOUND')
  keyIn(a, 'h', 'k', 'active')
  assert.equal(a.decrypt(a.encrypt('h', Buffer.from('y'))).toString(), 'y')
})

test('encrypt needs an active key in an existing group', () => {
  const { ks } = fresh()
  throwsCode(() => ks.encrypt('nope', Buffer.from('x')), 'NOT_FOUND', 'nope')
  ks.createGroup('g')
  throwsCode(() => ks.encrypt('g', Buffer.from('x')), 'KEY_UNUSABLE', '"g"', 'no active key')
})

test('encryptFile / decryptFile round trip, sync and async; tampered files leave no output', async () => {
  const { ks } = fresh()
  keyIn(ks, 'g', 'k', 'active')
  const dir = scratch()
  const src = path.join(dir, 'image.tar')
  const data = Buffer.alloc(200_000)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff
  fs.writeFileSync(src, data)

  assert.equal(ks.encryptFile('g', src, path.join(dir, 'a.ks'), Buffer.from('img')), data.length)
  assert.equal(ks.decryptFile(path.join(dir, 'a.ks'), path.join(dir, 'a.out'), Buffer.from('img')), data.length)
  assert.deepEqual(fs.readFileSync(path.join(dir, 'a.out')), data)
  // The file format is the data format.
  assert.deepEqual(ks.decrypt(fs.readFileSync(path.join(dir, 'a.ks')), Buffer.from('img')), data)

  assert.equal(await ks.encryptFileAsync('g', src, path.join(dir, 'b.ks')), data.length)
  assert.equal(await ks.decryptFileAsync(path.join(dir, 'b.ks'), path.join(dir, 'b.out')), data.length)
  assert.deepEqual(fs.readFileSync(path.join(dir, 'b.out')), data)

  const bad = fs.readFileSync(path.join(dir, 'a.ks'))
  bad[bad.length - 100] ^= 1
  fs.writeFileSync(path.join(dir, 'bad.ks'), bad)
  throwsCode(() => ks.decryptFile(path.join(dir, 'bad.ks'), path.join(dir, 'bad.out'), Buffer.from('img')), 'INTEGRITY')
  assert.equal(fs.existsSync(path.join(dir, 'bad.out')), false, 'no output from a tampered file')
  await rejectsCode(ks.decryptFileAsync(path.join(dir, 'bad.ks'), path.join(dir, 'bad2.out'), Buffer.from('img')), 'INTEGRITY')
  assert.equal(fs.existsSync(path.join(dir, 'bad2.out')), false)
  throwsCode(() => ks.decryptFile(path.join(dir, 'a.ks'), path.join(dir, 'c.out'), Buffer.from('other')), 'INTEGRITY')
  throwsCode(() => ks.encryptFile('g', path.join(dir, 'missing'), path.join(dir, 'x.ks')), 'NOT_FOUND', 'missing')
  throwsCode(() => ks.encryptFile('g', src, path.join(dir, 'no-such-dir', 'x.ks')), 'STORAGE', 'no-such-dir')
  await rejectsCode(ks.encryptFileAsync('nope', src, path.join(dir, 'y.ks')), 'NOT_FOUND', 'nope')
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left')
})
