'use strict'
// Random operation sequences against a small JavaScript model of the rule book
// (test/helpers.js: MOVES, USES, CREATABLE). After every operation the whole
// keystore is compared with the model. Where several rules forbid an operation
// at once, any of their errors is accepted: the model says what is forbidden,
// not which check the component makes first.

const assert = require('node:assert/strict')
const path = require('node:path')
const { test } = require('node:test')
const fc = require('fast-check')

const {
  keystate: { Keystore, KeystateError },
  STATES,
  USES,
  CREATABLE,
  legal,
  scratch,
} = require('./helpers')

const GROUPS = ['a', 'b']
const KEYS = ['k1', 'k2', 'k3']
const PASSPHRASE = 'correct horse'

class Model {
  constructor() {
    /** group name -> Map(key name -> { state, tag, passphrase }) */
    this.groups = new Map()
    this.quiesced = false
    /** messages sealed so far: { tag, data, ciphertext } */
    this.messages = []
    /** deleted keys: { tag, passphrase } (null: a random key) */
    this.deleted = []
  }

  /** The deleted key a recover op names: mostly a pass phrase key, if there is one. */
  gone(op) {
    const pool = op.passphraseKey && this.deleted.some((d) => d.passphrase) ? this.deleted.filter((d) => d.passphrase) : this.deleted
    return pool[op.i % pool.length]
  }

  keyByTag(tag) {
    for (const keys of this.groups.values()) for (const k of keys.values()) if (k.tag === tag) return k
    return undefined
  }

  activate(group, name) {
    for (const [n, k] of this.groups.get(group)) if (k.state === 'active' && n !== name) k.state = 'inactive'
  }

  /** The errors that may answer `op` (empty: it must succeed). */
  forbidden(op) {
    const why = new Set()
    const group = this.groups.get(op.g)
    const key = group && group.get(op.k)
    const mutation = !['encrypt', 'decrypt', 'quiesce', 'unquiesce', 'reopen'].includes(op.op)
    if (mutation && this.quiesced) why.add('QUIESCED')
    switch (op.op) {
      case 'createGroup':
        if (group) why.add('ALREADY_EXISTS')
        break
      case 'deleteGroup':
        if (!group) why.add('NOT_FOUND')
        else if (group.size > 0) why.add('NOT_DELETABLE')
        break
      case 'createKey':
        if (!group) why.add('NOT_FOUND')
        if (!CREATABLE.includes(op.state)) why.add('INVALID_TRANSITION')
        if (key) why.add('ALREADY_EXISTS')
        break
      case 'setState':
        op.from = key ? key.state : 'none'
        if (!key) why.add('NOT_FOUND')
        else if (!legal(key.state, op.to)) why.add('INVALID_TRANSITION')
        break
      case 'deleteKey':
        if (!key) why.add('NOT_FOUND')
        else if (!USES[key.state].includes('delete')) why.add('NOT_DELETABLE')
        break
      case 'renameKey':
        if (!key) why.add('NOT_FOUND')
        else if (op.to !== op.k && group.has(op.to)) why.add('ALREADY_EXISTS')
        break
      case 'encrypt':
        if (!group) why.add('NOT_FOUND')
        else if (![...group.values()].some((k) => k.state === 'active')) why.add('KEY_UNUSABLE')
        break
      case 'decrypt': {
        const m = this.messages[op.i % this.messages.length]
        const owner = this.keyByTag(m.tag)
        if (!owner) why.add('NOT_FOUND')
        else if (!USES[owner.state].includes('decrypt')) why.add('KEY_UNUSABLE')
        break
      }
      case 'recover': {
        const gone = this.gone(op)
        if (!group) why.add('NOT_FOUND')
        if (op.state === 'prelive') why.add('INVALID_TRANSITION')
        if (this.keyByTag(gone.tag) || key) why.add('ALREADY_EXISTS')
        if (gone.passphrase === null || !op.right) why.add('WRONG_PASSPHRASE')
        break
      }
    }
    return why
  }
}

/** Run `op` on the keystore; on success update the model. */
function step(ctx, op) {
  const { model } = ctx
  if (op.op === 'retire') return retire(ctx, resolve(model, op))
  if (op.op === 'decrypt' && model.messages.length === 0) return
  if (op.op === 'recover' && model.deleted.length === 0) return
  op = resolve(model, op)
  const forbidden = model.forbidden(op)
  let result
  try {
    result = perform(ctx, op)
  } catch (e) {
    if (!(e instanceof KeystateError)) throw e
    assert.ok(forbidden.size > 0, `${JSON.stringify(op)} failed with ${e.code} (${e.message}) but the rules allow it`)
    assert.ok(forbidden.has(e.code), `${JSON.stringify(op)} failed with ${e.code} (${e.message}), expected one of ${[...forbidden]}`)
    tally(op, e.code)
    return
  }
  assert.equal(forbidden.size, 0, `${JSON.stringify(op)} succeeded but the rules forbid it: ${[...forbidden]}`)
  apply(ctx, op, result)
  tally(op, 'ok')
}

/** A walk of one key down to terminated, one checked step at a time, then maybe its deletion. */
function retire(ctx, op) {
  for (let i = 0; i < STATES.length; i++) {
    const key = ctx.model.groups.get(op.g)?.get(op.k)
    if (!key || key.state === 'terminated' || ctx.model.quiesced) break
    step(ctx, { op: 'setState', g: op.g, k: op.k, to: 'next' })
  }
  if (op.delete) step(ctx, { op: 'deleteKey', g: op.g, k: op.k })
}

/** `pick` chooses one of the keys there are (generated names mostly miss); `next`/`previous` a neighbouring state. */
function resolve(model, op) {
  const resolved = { ...op }
  if (op.pick !== undefined) {
    const keys = []
    for (const [g, ks] of model.groups) for (const k of ks.keys()) keys.push([g, k])
    ;[resolved.g, resolved.k] = keys.length ? keys[op.pick % keys.length] : [GROUPS[op.pick % GROUPS.length], KEYS[op.pick % KEYS.length]]
  }
  if (op.to === 'next' || op.to === 'previous') {
    // A step along the lifecycle line (prelive, active, ..., terminated), so that walks reach every state.
    const from = model.groups.get(resolved.g)?.get(resolved.k)?.state ?? 'prelive'
    const i = STATES.indexOf(from) + (op.to === 'next' ? 1 : -1)
    resolved.to = STATES[Math.min(Math.max(i, 0), STATES.length - 1)]
  }
  return resolved
}

/** Outcomes seen, per operation: proof that the generator reaches the rules. */
const outcomes = {}
function tally(op, outcome) {
  const what = op.op === 'setState' ? `setState ${op.from}->${op.to}` : op.op === 'createKey' && op.passphrase ? 'createKeyWithPassphrase' : op.op
  outcomes[what] ??= {}
  outcomes[what][outcome] = (outcomes[what][outcome] ?? 0) + 1
}

function perform({ ks, model }, op) {
  const ks_ = ks()
  switch (op.op) {
    case 'createGroup':
      return ks_.createGroup(op.g)
    case 'deleteGroup':
      return ks_.deleteGroup(op.g)
    case 'createKey':
      return ks_.createKey(op.g, op.k, { state: op.state, passphrase: op.passphrase ? PASSPHRASE : undefined })
    case 'setState':
      return ks_.setState(op.g, op.k, op.to)
    case 'deleteKey':
      return ks_.deleteKey(op.g, op.k)
    case 'renameKey':
      return ks_.modifyKey(op.g, op.k, { newName: op.to })
    case 'encrypt':
      return ks_.encrypt(op.g, op.data)
    case 'decrypt':
      return ks_.decrypt(model.messages[op.i % model.messages.length].ciphertext)
    case 'recover': {
      const gone = model.gone(op)
      return ks_.recoverKey(op.g, op.k, gone.tag, op.right ? PASSPHRASE : 'wrong horse', { state: op.state })
    }
    case 'quiesce':
      return ks_.quiesce()
    case 'unquiesce':
      return ks_.unquiesce()
    case 'reopen':
      return ks_.close()
  }
  throw new Error(`unknown op ${op.op}`)
}

function apply(ctx, op, result) {
  const { model } = ctx
  const group = model.groups.get(op.g)
  switch (op.op) {
    case 'createGroup':
      model.groups.set(op.g, new Map())
      break
    case 'deleteGroup':
      model.groups.delete(op.g)
      break
    case 'createKey':
      assert.equal(result.state, op.state)
      assert.equal(result.recoverable, op.passphrase)
      if (op.state === 'active') model.activate(op.g, op.k)
      group.set(op.k, { state: op.state, tag: result.tag, passphrase: op.passphrase ? PASSPHRASE : null })
      break
    case 'setState':
      assert.equal(result.state, op.to)
      if (op.to === 'active') model.activate(op.g, op.k)
      group.get(op.k).state = op.to
      break
    case 'deleteKey': {
      const k = group.get(op.k)
      model.deleted.push({ tag: k.tag, passphrase: k.passphrase })
      group.delete(op.k)
      break
    }
    case 'renameKey': {
      const k = group.get(op.k)
      group.delete(op.k)
      group.set(op.to, k)
      assert.equal(result.tag, k.tag)
      break
    }
    case 'encrypt': {
      const active = [...group.values()].find((k) => k.state === 'active')
      assert.equal(result.subarray(12, 28).toString('hex'), active.tag, 'encrypt uses the group active key')
      model.messages.push({ tag: active.tag, data: Buffer.from(op.data), ciphertext: result })
      break
    }
    case 'decrypt':
      assert.deepEqual(result, model.messages[op.i % model.messages.length].data)
      break
    case 'recover': {
      const gone = model.gone(op)
      assert.deepEqual([result.tag, result.state, result.recoverable], [gone.tag, op.state, true])
      if (op.state === 'active') model.activate(op.g, op.k)
      group.set(op.k, { state: op.state, tag: gone.tag, passphrase: PASSPHRASE })
      break
    }
    case 'quiesce':
      model.quiesced = true
      break
    case 'unquiesce':
      model.quiesced = false
      break
    case 'reopen':
      ctx.handle = Keystore.open(ctx.file)
      break
  }
}

/** The whole keystore equals the model. */
function compare({ ks, model }) {
  const real = ks()
    .keys()
    .map((k) => [k.group, k.name, k.state, k.tag])
  const expected = []
  for (const [g, keys] of model.groups) for (const [n, k] of keys) expected.push([g, n, k.state, k.tag])
  const order = (a, b) => (a[0] + '\0' + a[1] < b[0] + '\0' + b[1] ? -1 : 1)
  assert.deepEqual(real, expected.sort(order))
  const groups = ks()
    .groups()
    .map((g) => [g.name, g.activeKey])
    .sort()
  const expectedGroups = [...model.groups].map(([g, keys]) => [g, [...keys].find(([, k]) => k.state === 'active')?.[0] ?? null]).sort()
  assert.deepEqual(groups, expectedGroups)
  assert.equal(ks().stats().quiesced, model.quiesced)
}

const group = fc.constantFrom(...GROUPS)
const keyName = fc.constantFrom(...KEYS)
const state = fc.constantFrom(...STATES)
// A key: mostly one that exists, sometimes any name.
const target = fc.oneof({ weight: 9, arbitrary: fc.record({ pick: fc.nat(1000) }) }, { weight: 1, arbitrary: fc.record({ g: group, k: keyName }) })
const withTarget = (fields) => fc.tuple(fc.record(fields), target).map(([a, b]) => ({ ...a, ...b }))
// Mostly the states a key can be created in, sometimes one it cannot.
const createState = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...CREATABLE) }, { weight: 1, arbitrary: state })
const operation = fc.oneof(
  { weight: 1, arbitrary: fc.record({ op: fc.constant('createGroup'), g: group }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteGroup'), g: group }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('createKey'),
      g: group,
      k: keyName,
      state: createState,
      // Each pass phrase key costs an Argon2id run (about 40 ms): one create in six.
      passphrase: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
    }),
  },
  { weight: 10, arbitrary: withTarget({ op: fc.constant('setState'), to: fc.oneof({ weight: 1, arbitrary: state }, { weight: 2, arbitrary: fc.constantFrom('next', 'next', 'previous') }) }) },
  { weight: 3, arbitrary: withTarget({ op: fc.constant('deleteKey') }) },
  { weight: 2, arbitrary: withTarget({ op: fc.constant('retire'), delete: fc.boolean() }) },
  { weight: 1, arbitrary: withTarget({ op: fc.constant('renameKey'), to: keyName }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('encrypt'), g: group, data: fc.uint8Array({ maxLength: 48 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('decrypt'), i: fc.nat(1000) }) },
  {
    // A recover that gets as far as the pass phrase costs an Argon2id run too.
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('recover'), i: fc.nat(1000), g: group, k: keyName, right: fc.constantFrom(true, true, true, false), passphraseKey: fc.constantFrom(true, true, true, false), state: fc.constantFrom('inactive', 'inactive', 'active', 'prelive', 'terminated') }),
  },
  // Quiesced, every mutation fails: keep those stretches short.
  { weight: 1, arbitrary: fc.record({ op: fc.constant('quiesce') }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unquiesce') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen') }) },
)

test('random operation sequences agree with the model of the rule book', () => {
  const dir = scratch()
  let run = 0
  let steps = 0
  fc.assert(
    fc.property(fc.array(operation, { minLength: 10, maxLength: 60, size: 'max' }), (ops) => {
      const file = path.join(dir, `run-${run++}.db`)
      const ctx = { file, model: new Model(), handle: Keystore.create(file) }
      ctx.ks = () => ctx.handle
      try {
        for (const g of GROUPS) step(ctx, { op: 'createGroup', g })
        for (const op of ops) {
          step(ctx, op)
          compare(ctx)
          steps++
        }
      } finally {
        ctx.handle.close()
      }
    }),
    { numRuns: 50, includeErrorInReport: true },
  )
  const argon2 = (outcomes.createKeyWithPassphrase?.ok ?? 0) + (outcomes.recover?.ok ?? 0) + (outcomes.recover?.WRONG_PASSPHRASE ?? 0)
  console.log(`property: ${run} runs, ${steps} operations checked against the model, about ${argon2} Argon2id runs`)
  checkCoverage(outcomes)
})

/** The sequences must reach the rules, not just bounce off missing names: the outcomes every run of this test has reached. */
function checkCoverage(outcomes) {
  const why = `(outcomes: ${JSON.stringify(outcomes)})`
  const count = (what, outcome) => Object.entries(outcomes).filter(([op]) => op === what || op.startsWith(what + ' ')).reduce((n, [, o]) => n + (o[outcome] ?? 0), 0)
  for (const move of ['prelive->active', 'active->inactive', 'inactive->deprecated', 'deprecated->terminated', 'inactive->active']) {
    assert.ok(count(`setState ${move}`, 'ok') > 0, `no successful ${move} ${why}`)
  }
  for (const [what, outcome] of [
    ['setState', 'INVALID_TRANSITION'],
    ['createKey', 'ok'],
    ['createKeyWithPassphrase', 'ok'],
    ['createKey', 'INVALID_TRANSITION'],
    ['deleteKey', 'ok'],
    ['deleteKey', 'NOT_DELETABLE'],
    ['encrypt', 'ok'],
    ['encrypt', 'KEY_UNUSABLE'],
    ['decrypt', 'ok'],
    ['recover', 'WRONG_PASSPHRASE'],
    ['deleteGroup', 'NOT_DELETABLE'],
    ['createGroup', 'QUIESCED'],
  ]) {
    assert.ok(count(what, outcome) > 0, `no ${what} ending ${outcome} ${why}`)
  }
}
