'use strict'
// keystate for Node: the loader of the native addon (keystate.node, built by
// build.js from src/) and the JavaScript-side pieces: KeystateError, the
// KeyState and Cipher constants, option objects and Date conversion.
// Every rule comes from the component through the addon; nothing here decides one.

const { fileURLToPath } = require('node:url')

const native = loadAddon()

function loadAddon() {
  try {
    return require('./keystate.node')
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes('keystate.node')) {
      throw new Error(`keystate: the native addon is not built; run \`npm run build\` in ${__dirname}`)
    }
    throw e
  }
}

// ---- errors -------------------------------------------------------------------------

/** Every error of keystate: `.code` says which kind (NOT_FOUND, KEY_UNUSABLE, ...). */
class KeystateError extends Error {
  constructor(code, message) {
    super(message)
    this.code = code
  }
}
Object.defineProperty(KeystateError.prototype, 'name', {
  value: 'KeystateError',
  writable: true,
  configurable: true,
})

/** The codes the library's error kinds map to (`keystate::ErrorKind::code`). */
const CODES = new Set(native.errorCodes())

// The statuses napi-rs gives a native argument of the wrong JavaScript type.
const NAPI_ARGUMENT_STATUSES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
])

/** A native error as a KeystateError; anything else unchanged. */
function convert(e) {
  if (e instanceof KeystateError || !(e instanceof Error) || typeof e.code !== 'string') return e
  if (CODES.has(e.code)) return new KeystateError(e.code, e.message)
  if (NAPI_ARGUMENT_STATUSES.has(e.code)) return new KeystateError('INVALID_ARGUMENT', e.message)
  return e
}

function call(fn) {
  try {
    return fn()
  } catch (e) {
    throw convert(e)
  }
}

async function callAsync(fn) {
  try {
    return await fn()
  } catch (e) {
    throw convert(e)
  }
}

// ---- arguments ----------------------------------------------------------------------

function invalid(message) {
  return new KeystateError('INVALID_ARGUMENT', message)
}

function text(what, value) {
  if (typeof value !== 'string') throw invalid(`${what} must be a string, not ${describe(value)}`)
  return value
}

function optionalText(what, value) {
  return value === undefined || value === null ? undefined : text(what, value)
}

function filePath(what, value) {
  if (value instanceof URL) return fileURLToPath(value)
  if (typeof value !== 'string') throw invalid(`${what} must be a path string or a file: URL, not ${describe(value)}`)
  return value
}

/** Bytes as a Uint8Array view (Buffer and Uint8Array as they are; other views and ArrayBuffers are read as their bytes). */
function bytes(what, value) {
  if (value instanceof Uint8Array) return value
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  if (value instanceof ArrayBuffer) return new Uint8Array(value)
  throw invalid(`${what} must be a Buffer or Uint8Array, not ${describe(value)}`)
}

function optionalBytes(what, value) {
  return value === undefined || value === null ? undefined : bytes(what, value)
}

function options(what, value) {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(`${what} must be an object, not ${describe(value)}`)
  return value
}

function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? `a ${value.constructor?.name ?? 'object'}` : `${typeof value} ${String(value).slice(0, 40)}`
}

// ---- values -------------------------------------------------------------------------

function keyInfo(k) {
  return {
    tag: k.tag,
    name: k.name,
    group: k.group,
    state: k.state,
    description: k.description,
    created: new Date(k.created),
    modified: new Date(k.modified),
    recoverable: k.recoverable,
  }
}

function groupInfo(g) {
  return {
    tag: g.tag,
    name: g.name,
    cipher: g.cipher,
    description: g.description,
    created: new Date(g.created),
    modified: new Date(g.modified),
    activeKey: g.activeKey ?? null,
  }
}

function flag(what, value) {
  if (value === undefined || value === null) return false
  if (typeof value !== 'boolean') throw invalid(`${what} must be a boolean, not ${describe(value)}`)
  return value
}

/** A group selection: absent (every group), one name, or an array of names. */
function groupNames(value) {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') return [value]
  if (!Array.isArray(value)) throw invalid(`groups must be a string or an array of strings, not ${describe(value)}`)
  return value.map((g) => text('group name', g))
}

function skip(s) {
  return s ? { reason: s.reason, detail: s.detail } : null
}

function importReport(r) {
  const groups = r.groups.map((g) => ({ sourceName: g.sourceName, name: g.name, cipher: g.cipher, created: g.created, skipped: skip(g.skipped) }))
  const keys = r.keys.map((k) => ({
    sourceGroup: k.sourceGroup,
    group: k.group,
    name: k.name,
    tag: k.tag,
    state: k.state,
    recoverable: k.recoverable,
    imported: k.imported,
    skipped: skip(k.skipped),
  }))
  return {
    preview: r.preview,
    groups,
    keys,
    groupsCreated: groups.filter((g) => g.created),
    keysImported: keys.filter((k) => k.imported),
    keysSkipped: keys.filter((k) => !k.imported),
  }
}

// ---- the keystore -------------------------------------------------------------------

/** An open keystore. Make one with Keystore.create or Keystore.open. */
/** The mutations of one `Keystore.batch`, recorded in order (nothing runs until it ends). */
class Batch {
  ops = []

  createGroup(name, opts) {
    const { cipher, description } = options('options', opts)
    this.ops.push({ kind: 'createGroup', group: '', name: text('name', name), choice: optionalText('cipher', cipher), description: optionalText('description', description) })
  }

  createKey(group, name, opts) {
    const { state, passphrase, description } = options('options', opts)
    this.ops.push({ kind: 'createKey', group: text('group', group), name: text('name', name), choice: optionalText('state', state), passphrase: optionalText('passphrase', passphrase), description: optionalText('description', description) })
  }

  setState(group, name, state) {
    this.ops.push({ kind: 'setState', group: text('group', group), name: text('name', name), choice: text('state', state) })
  }

  deleteKey(group, name) {
    this.ops.push({ kind: 'deleteKey', group: text('group', group), name: text('name', name) })
  }
}

class Keystore {
  #handle

  /** @private use Keystore.create or Keystore.open */
  constructor(handle) {
    if (!(handle instanceof native.KeystoreHandle)) {
      throw new TypeError('keystate: use Keystore.create(path) or Keystore.open(path)')
    }
    this.#handle = handle
  }

  static #args(path, opts) {
    const { hmkPassphrase, kpkPassphrase, actor } = options('options', opts)
    return [
      filePath('path', path),
      optionalText('hmkPassphrase', hmkPassphrase),
      optionalText('kpkPassphrase', kpkPassphrase),
      optionalText('actor', actor),
    ]
  }

  /** Create a keystore; without pass phrases the HMK and KPK are random keys in `<path>.hmk` / `<path>.kpk`. */
  static create(path, opts) {
    return new Keystore(call(() => native.KeystoreHandle.create(...Keystore.#args(path, opts))))
  }

  /** Open a keystore; without pass phrases the key files beside it are read. */
  static open(path, opts) {
    return new Keystore(call(() => native.KeystoreHandle.open(...Keystore.#args(path, opts))))
  }

  static async createAsync(path, opts) {
    return new Keystore(await callAsync(() => native.KeystoreHandle.createAsync(...Keystore.#args(path, opts))))
  }

  static async openAsync(path, opts) {
    return new Keystore(await callAsync(() => native.KeystoreHandle.openAsync(...Keystore.#args(path, opts))))
  }

  /** Let go of the keystore; later calls fail with INVALID_ARGUMENT. Calls already running finish. */
  close() {
    this.#handle.close()
  }

  get closed() {
    return this.#handle.closed
  }

  // groups

  createGroup(name, opts) {
    const { cipher, description } = options('options', opts)
    return groupInfo(call(() => this.#handle.createGroup(text('name', name), optionalText('cipher', cipher), optionalText('description', description))))
  }

  groups() {
    return call(() => this.#handle.groups()).map(groupInfo)
  }

  group(name) {
    return groupInfo(call(() => this.#handle.group(text('name', name))))
  }

  modifyGroup(name, changes) {
    const { newName, description } = options('changes', changes)
    return groupInfo(call(() => this.#handle.modifyGroup(text('name', name), optionalText('newName', newName), optionalText('description', description))))
  }

  deleteGroup(name) {
    call(() => this.#handle.deleteGroup(text('name', name)))
  }

  // keys

  static #keyArgs(group, name, opts) {
    const { state, passphrase, description } = options('options', opts)
    return [text('group', group), text('name', name), optionalText('state', state), optionalText('passphrase', passphrase), optionalText('description', description)]
  }

  createKey(group, name, opts) {
    return keyInfo(call(() => this.#handle.createKey(...Keystore.#keyArgs(group, name, opts))))
  }

  /** createKey off the main thread (a pass phrase key costs an Argon2id run). */
  async createKeyAsync(group, name, opts) {
    return keyInfo(await callAsync(() => this.#handle.createKeyAsync(...Keystore.#keyArgs(group, name, opts))))
  }

  keys(filter) {
    const { group, state } = options('filter', filter)
    return call(() => this.#handle.keys(optionalText('group', group), optionalText('state', state))).map(keyInfo)
  }

  key(group, name) {
    return keyInfo(call(() => this.#handle.key(text('group', group), text('name', name))))
  }

  keyByTag(tag) {
    return keyInfo(call(() => this.#handle.keyByTag(text('tag', tag))))
  }

  setState(group, name, state) {
    return keyInfo(call(() => this.#handle.setState(text('group', group), text('name', name), text('state', state))))
  }

  modifyKey(group, name, changes) {
    const { newName, description } = options('changes', changes)
    return keyInfo(call(() => this.#handle.modifyKey(text('group', group), text('name', name), optionalText('newName', newName), optionalText('description', description))))
  }

  deleteKey(group, name) {
    call(() => this.#handle.deleteKey(text('group', group), text('name', name)))
  }

  /**
   * Run `build(batch)`, which records mutations on `batch`, then commit them
   * as one: all of them, or (a refusal, or `build` throwing) none. Returns one
   * result per mutation: the GroupInfo or KeyInfo it made or moved, or null
   * for a deletion.
   */
  batch(build) {
    if (typeof build !== 'function') throw invalid(`build must be a function, not ${describe(build)}`)
    const batch = new Batch()
    build(batch)
    return call(() => this.#handle.applyBatch(batch.ops)).map((r) => (r.group ? groupInfo(r.group) : r.key ? keyInfo(r.key) : null))
  }

  static #recoverArgs(group, name, tag, passphrase, opts) {
    const { state } = options('options', opts)
    return [text('group', group), text('name', name), text('tag', tag), text('passphrase', passphrase), optionalText('state', state)]
  }

  recoverKey(group, name, tag, passphrase, opts) {
    return keyInfo(call(() => this.#handle.recoverKey(...Keystore.#recoverArgs(group, name, tag, passphrase, opts))))
  }

  async recoverKeyAsync(group, name, tag, passphrase, opts) {
    return keyInfo(await callAsync(() => this.#handle.recoverKeyAsync(...Keystore.#recoverArgs(group, name, tag, passphrase, opts))))
  }

  // data

  encrypt(group, data, aad) {
    return call(() => this.#handle.encrypt(text('group', group), bytes('data', data), optionalBytes('aad', aad)))
  }

  decrypt(ciphertext, aad) {
    return call(() => this.#handle.decrypt(bytes('ciphertext', ciphertext), optionalBytes('aad', aad)))
  }

  /** encrypt on a pool thread. The input is read there, not copied (as with fs.write): do not change it before the promise settles. */
  async encryptAsync(group, data, aad) {
    return callAsync(() => this.#handle.encryptAsync(text('group', group), bytes('data', data), optionalBytes('aad', aad)))
  }

  async decryptAsync(ciphertext, aad) {
    return callAsync(() => this.#handle.decryptAsync(bytes('ciphertext', ciphertext), optionalBytes('aad', aad)))
  }

  /** Encrypt a file of any size in bounded memory; `dst` appears only once complete. Returns the plaintext byte count. */
  encryptFile(group, src, dst, aad) {
    return call(() => this.#handle.encryptFile(text('group', group), filePath('src', src), filePath('dst', dst), optionalBytes('aad', aad)))
  }

  /** Decrypt a file; `dst` appears only if the whole file authenticated. Returns the plaintext byte count. */
  decryptFile(src, dst, aad) {
    return call(() => this.#handle.decryptFile(filePath('src', src), filePath('dst', dst), optionalBytes('aad', aad)))
  }

  async encryptFileAsync(group, src, dst, aad) {
    return callAsync(() => this.#handle.encryptFileAsync(text('group', group), filePath('src', src), filePath('dst', dst), optionalBytes('aad', aad)))
  }

  async decryptFileAsync(src, dst, aad) {
    return callAsync(() => this.#handle.decryptFileAsync(filePath('src', src), filePath('dst', dst), optionalBytes('aad', aad)))
  }

  // export and import

  /** Seal groups (every group unless `options.groups`) with all their keys into an export container. */
  exportGroups(passphrase, opts) {
    const { groups } = options('options', opts)
    return call(() => this.#handle.exportGroups(text('passphrase', passphrase), groupNames(groups)))
  }

  /** exportGroups into a file that appears only when complete (mode 0600). Returns its size. */
  exportToFile(path, passphrase, opts) {
    const { groups } = options('options', opts)
    return call(() => this.#handle.exportToFile(filePath('path', path), text('passphrase', passphrase), groupNames(groups)))
  }

  static #importArgs(passphrase, opts) {
    const { preserveNames, preview } = options('options', opts)
    return [text('passphrase', passphrase), flag('preserveNames', preserveNames), flag('preview', preview)]
  }

  /** Import an export container, all or nothing (or only report, with `preview`). */
  importGroups(container, passphrase, opts) {
    return importReport(call(() => this.#handle.importGroups(bytes('container', container), ...Keystore.#importArgs(passphrase, opts))))
  }

  /** importGroups on a pool thread (it costs an Argon2id run). Do not change `container` before the promise settles. */
  async importGroupsAsync(container, passphrase, opts) {
    return importReport(await callAsync(() => this.#handle.importGroupsAsync(bytes('container', container), ...Keystore.#importArgs(passphrase, opts))))
  }

  /** What importGroups would do; changes nothing. */
  previewImport(container, passphrase, opts) {
    return this.importGroups(container, passphrase, { ...options('options', opts), preview: true })
  }

  importFile(path, passphrase, opts) {
    return importReport(call(() => this.#handle.importFile(filePath('path', path), ...Keystore.#importArgs(passphrase, opts))))
  }

  // the keystore

  quiesce() {
    call(() => this.#handle.quiesce())
  }

  unquiesce() {
    call(() => this.#handle.unquiesce())
  }

  stats() {
    return call(() => this.#handle.stats())
  }

  faults() {
    return call(() => this.#handle.faults())
  }

  // administration

  /** Who this handle's changes are recorded under in the audit trail. */
  get actor() {
    return call(() => this.#handle.actor)
  }

  /** Name who makes the following changes (1-255 bytes, no control characters). */
  setActor(actor) {
    call(() => this.#handle.setActor(text('actor', actor)))
  }

  /**
   * Audit entries, oldest first, narrowed by each option given. The trail is verified
   * as it is read: a broken one throws INTEGRITY naming the first bad entry.
   */
  audit(opts) {
    const { group, key, action, since, limit } = options('options', opts)
    if (since !== undefined && !(since instanceof Date)) {
      throw invalid(`since must be a Date, not ${describe(since)}`)
    }
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      throw invalid(`limit must be a non-negative integer, not ${describe(limit)}`)
    }
    const entries = call(() =>
      this.#handle.audit(
        optionalText('group', group),
        optionalText('key', key),
        optionalText('action', action),
        since === undefined ? undefined : since.getTime(),
        limit,
      ),
    )
    return entries.map((e) => ({
      ...e,
      time: new Date(e.time),
      group: e.group ?? null,
      key: e.key ?? null,
      keyTag: e.keyTag ?? null,
      oldState: e.oldState ?? null,
      newState: e.newState ?? null,
    }))
  }

  /** Verify the whole audit trail; `fault` names the first entry edited, removed or reordered. */
  verifyAudit() {
    const report = call(() => this.#handle.verifyAudit())
    return { ...report, fault: report.fault ?? null }
  }

  /** Replace the HMK: a new pass phrase, or without one a new random key in `<path>.hmk`. */
  rotateHmk(opts) {
    const { passphrase, id } = options('options', opts)
    call(() => this.#handle.rotateHmk(optionalText('passphrase', passphrase), optionalText('id', id)))
  }

  /** Replace the KPK: a new pass phrase, or without one a new random key in `<path>.kpk`. */
  rotateKpk(opts) {
    const { passphrase, id } = options('options', opts)
    call(() => this.#handle.rotateKpk(optionalText('passphrase', passphrase), optionalText('id', id)))
  }
}

// ---- the rule book and names --------------------------------------------------------

/** May a key move from `from` to `to`? Staying put is allowed. */
function canTransition(from, to) {
  return call(() => native.canTransition(text('from', from), text('to', to)))
}

/** The operations a key in `state` allows: an array, a subset of ['encrypt', 'decrypt', 'delete'] in that order. */
function allowedOperations(state) {
  return call(() => native.allowedOperations(text('state', state)))
}

// ---- the conformance vectors --------------------------------------------------------

/**
 * The bare component with the deterministic clock and entropy of the
 * conformance vectors (tests/vectors/README.md): `call(name, argsJson)` calls a
 * WIT function by name with a JSON object of arguments and returns the result
 * as JSON text. For replaying the vectors; never for real keys.
 */
class VectorInstance {
  #native

  constructor(seed, clockStart, clockStep) {
    if (!Number.isSafeInteger(clockStart) || clockStart < 0) throw invalid(`clockStart must be a non-negative integer, not ${describe(clockStart)}`)
    if (!Number.isSafeInteger(clockStep) || clockStep < 0) throw invalid(`clockStep must be a non-negative integer, not ${describe(clockStep)}`)
    this.#native = call(() => new native.VectorInstance(bytes('seed', seed), clockStart, clockStep))
  }

  /** Call `name` (`interface.function`) with `argsJson`, a JSON object by parameter name; the result as JSON text. */
  call(name, argsJson) {
    return call(() => this.#native.call(text('name', name), text('argsJson', argsJson)))
  }
}

const pascal = (name) =>
  name
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')

/** KeyState.Active === 'active', ... */
const KeyState = Object.freeze(Object.fromEntries(native.keyStates().map((s) => [pascal(s), s])))

/** Cipher.Aes256Gcm === 'AES_256_GCM', ... */
const Cipher = Object.freeze(Object.fromEntries(native.ciphers().map((c) => [pascal(c), c])))

module.exports = {
  Keystore,
  KeystateError,
  KeyState,
  Cipher,
  canTransition,
  allowedOperations,
  VectorInstance,
}
