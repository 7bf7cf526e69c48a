'use strict'
// Shared by the tests: scratch keystores in os.tmpdir(), error assertions,
// and the rule book written out independently of the component (from
// ../../shared/reference/RULES.md), so that a wrong rule in the component fails here.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const keystate = require('..')
const { Keystore, KeystateError } = keystate

const STATES = ['prelive', 'active', 'inactive', 'deprecated', 'terminated']

/** Legal moves (besides staying put): prelive -> active, then one step either way up to terminated. */
const MOVES = {
  prelive: ['active'],
  active: ['inactive'],
  inactive: ['active', 'deprecated'],
  deprecated: ['inactive', 'terminated'],
  terminated: ['deprecated'],
}

const legal = (from, to) => from === to || MOVES[from].includes(to)

/** What each state allows. */
const USES = {
  prelive: ['delete'],
  active: ['encrypt', 'decrypt'],
  inactive: ['decrypt'],
  deprecated: [],
  terminated: ['delete'],
}

const CREATABLE = ['prelive', 'active']

/** The legal steps from active to `state` (inactive, deprecated, terminated). */
const WALK_FROM_ACTIVE = {
  active: [],
  inactive: ['inactive'],
  deprecated: ['inactive', 'deprecated'],
  terminated: ['inactive', 'deprecated', 'terminated'],
}

const scratchDirs = []

/** A fresh directory under os.tmpdir(), removed when the process exits. */
function scratch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keystate-node-'))
  scratchDirs.push(dir)
  return dir
}

process.on('exit', () => {
  for (const dir of scratchDirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** A new keystore with random HMK/KPK key files. */
function fresh(name = 'keys.db') {
  const file = path.join(scratch(), name)
  return { ks: Keystore.create(file), file }
}

/** A key named `name` in `group` (made if missing) brought to `state` by legal steps. */
function keyIn(ks, group, name, state, opts = {}) {
  if (!ks.groups().some((g) => g.name === group)) ks.createGroup(group)
  if (state === 'prelive') return ks.createKey(group, name, { ...opts, state: 'prelive' })
  ks.createKey(group, name, { ...opts, state: 'active' })
  let info = ks.key(group, name)
  for (const step of WALK_FROM_ACTIVE[state]) info = ks.setState(group, name, step)
  return info
}

function checkError(e, code, ...words) {
  assert.ok(e instanceof KeystateError, `expected a KeystateError, got ${e && e.stack}`)
  assert.ok(e instanceof Error)
  assert.equal(e.name, 'KeystateError')
  assert.equal(e.code, code, `code of: ${e.message}`)
  for (const w of words) assert.ok(e.message.includes(w), `message ${JSON.stringify(e.message)} should name ${JSON.stringify(w)}`)
  return true
}

/** `fn()` throws a KeystateError with `code` whose message names each of `words`. */
function throwsCode(fn, code, ...words) {
  assert.throws(fn, (e) => checkError(e, code, ...words))
}

async function rejectsCode(promise, code, ...words) {
  await assert.rejects(promise, (e) => checkError(e, code, ...words))
}

module.exports = {
  keystate,
  STATES,
  MOVES,
  USES,
  CREATABLE,
  WALK_FROM_ACTIVE,
  legal,
  scratch,
  fresh,
  keyIn,
  throwsCode,
  rejectsCode,
}
