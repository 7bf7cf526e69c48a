// Types of `require('keystate')` / `import ... from 'keystate'`. Written by hand
// to match index.js; test/surface.test.js checks that every runtime export and
// method is declared here, and example/whole-surface.ts is compiled with
// `tsc --noEmit --strict`.

/// <reference types="node" />

/** A key record's state. */
export type KeyState = 'prelive' | 'active' | 'inactive' | 'deprecated' | 'terminated'

/** The state names: `KeyState.Active === 'active'`, ... */
export declare const KeyState: Readonly<{
  Prelive: 'prelive'
  Active: 'active'
  Inactive: 'inactive'
  Deprecated: 'deprecated'
  Terminated: 'terminated'
}>

/** A key group's cipher. */
export type Cipher = 'AES_256_GCM' | 'AES_128_GCM' | 'CHACHA20_POLY1305'

/** The cipher names: `Cipher.Aes256Gcm === 'AES_256_GCM'`, ... */
export declare const Cipher: Readonly<{
  Aes256Gcm: 'AES_256_GCM'
  Aes128Gcm: 'AES_128_GCM'
  Chacha20Poly1305: 'CHACHA20_POLY1305'
}>

/** A use of a key that its state may allow. */
export type Operation = 'encrypt' | 'decrypt' | 'delete'

/** `KeystateError.code`: one per kind of error of the library. */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'INVALID_TRANSITION'
  | 'KEY_UNUSABLE'
  | 'NOT_DELETABLE'
  | 'WRONG_PASSPHRASE'
  | 'INTEGRITY'
  | 'QUIESCED'
  | 'INVALID_ARGUMENT'
  | 'STORAGE'
  | 'INTERNAL'

/** Every error keystate throws or rejects with. */
export declare class KeystateError extends Error {
  constructor(code: ErrorCode, message: string)
  /** What went wrong: NOT_FOUND, KEY_UNUSABLE (the state forbids the use), INTEGRITY (tampered, truncated, wrong key or aad), ... */
  readonly code: ErrorCode
}

/** Bytes in: a Buffer or Uint8Array (another typed array or an ArrayBuffer is read as its bytes). */
export type Bytes = Uint8Array | ArrayBufferView | ArrayBuffer

/** A file path: a string or a `file:` URL. */
export type Path = string | URL

/** A key record (never its key material). */
export interface KeyInfo {
  /** 32 lowercase hex digits; names the key inside every ciphertext it made. */
  tag: string
  name: string
  group: string
  state: KeyState
  description: string
  created: Date
  modified: Date
  /** Made from a pass phrase: recoverKey can re-create it after deletion. */
  recoverable: boolean
}

/** A key group. */
export interface GroupInfo {
  tag: string
  name: string
  cipher: Cipher
  description: string
  created: Date
  modified: Date
  /** The name of the group's active key, if it has one. */
  activeKey: string | null
}

/** Counts over a keystore. */
export interface Stats {
  groups: number
  keys: number
  states: Record<KeyState, number>
  /** Rows that failed to load (tampered or corrupt); see `faults()`. */
  corruptRows: number
  quiesced: boolean
  hmkId: string
  kpkId: string
  /** Entries in the audit trail. */
  auditEntries: number
  formatVersion: number
  path: string
}

/** One entry of the audit trail: who changed what, when. */
export interface AuditEntry {
  /** Position in the trail: 1, 2, 3, ... with no gaps. */
  seq: number
  time: Date
  /** `create`, `create-group`, `set-state`, `rotate-hmk`, ... */
  action: string
  actor: string
  group: string | null
  key: string | null
  keyTag: string | null
  /** The key's state before (null: it did not exist). */
  oldState: KeyState | null
  /** The key's state after (null: it was deleted). */
  newState: KeyState | null
  detail: string
  /** This entry's chain hash (64 hex digits). */
  hash: string
}

/** The first audit entry that cannot be trusted. */
export interface AuditFault {
  problem: 'edited' | 'removed' | 'reordered'
  seq: number
  rowId: string
  message: string
}

/** What `verifyAudit()` found. */
export interface AuditReport {
  verified: number
  headSeq: number
  headHash: string
  fault: AuditFault | null
}

export interface AuditOptions {
  group?: string
  /** A key name or tag. */
  key?: string
  action?: string
  since?: Date
  /** At most this many: the most recent ones. */
  limit?: number
}

export interface RotateOptions {
  /** The new pass phrase; without it a new random key in the key file. */
  passphrase?: string
  /** A label for the new key (random when absent). */
  id?: string
}

/** A row that failed to load, and why. */
export interface RowFault {
  id: string
  message: string
}

/** Why an import leaves a group or key out. */
export type SkipReason = 'tag-exists' | 'material-exists' | 'group-exists' | 'no-new-keys'

/** A skip, and a sentence naming what is already there (never key material). */
export interface Skip {
  reason: SkipReason
  detail: string
}

/** What an import does (or would do) with one group of the container. */
export interface ImportedGroup {
  /** The group's name in the container. */
  sourceName: string
  /** Its name in this keystore (`<name>_<YYYYMMDDTHHMMSSZ>` unless names are preserved). */
  name: string
  cipher: Cipher
  created: boolean
  skipped: Skip | null
}

/** What an import does (or would do) with one key of the container. */
export interface ImportedKey {
  sourceGroup: string
  /** The key's group in this keystore. */
  group: string
  name: string
  /** Kept as it is, so data encrypted elsewhere still finds the key. */
  tag: string
  state: KeyState
  recoverable: boolean
  imported: boolean
  skipped: Skip | null
}

/** Everything an import decided, in container order. */
export interface ImportReport {
  /** True when nothing was changed. */
  preview: boolean
  groups: ImportedGroup[]
  keys: ImportedKey[]
  groupsCreated: ImportedGroup[]
  keysImported: ImportedKey[]
  keysSkipped: ImportedKey[]
}

export interface ExportOptions {
  /** The groups to export (one name or several); default every group. */
  groups?: string | string[]
}

export interface ImportOptions {
  /** Keep group names; a group whose name exists is skipped, never merged. Default false. */
  preserveNames?: boolean
  /** Only report what would happen. Default false. */
  preview?: boolean
}

export interface KeystoreOptions {
  /** Pass phrase of the host master key; without it a random key in `<path>.hmk`. */
  hmkPassphrase?: string
  /** Pass phrase of the key protection key; without it a random key in `<path>.kpk`. */
  kpkPassphrase?: string
  /** Who this handle's changes are recorded under in the audit trail (default: user@host). */
  actor?: string
}

export interface CreateGroupOptions {
  /** Default `'AES_256_GCM'`. */
  cipher?: Cipher
  /** Default `''`. */
  description?: string
}

export interface CreateKeyOptions {
  /** `'prelive'` (default) or `'active'` (bumps the group's active key to inactive). */
  state?: KeyState
  /** Derive the key from this pass phrase (Argon2id), so it can be recovered. Default: a random key. */
  passphrase?: string
  description?: string
}

export interface RecoverKeyOptions {
  /** Any state but prelive; default `'inactive'`. */
  state?: KeyState
}

/** The mutations of one `Keystore.batch`: recorded in order, committed together when `build` returns. */
export interface Batch {
  createGroup(name: string, options?: CreateGroupOptions): void
  createKey(group: string, name: string, options?: CreateKeyOptions): void
  setState(group: string, name: string, state: KeyState): void
  deleteKey(group: string, name: string): void
}

/** What to change; an absent field stays as it is. */
export interface ModifyOptions {
  newName?: string
  description?: string
}

export interface KeysFilter {
  group?: string
  state?: KeyState
}

/** An open keystore. Every method throws (or rejects with) a KeystateError. */
export declare class Keystore {
  private constructor()
  /** Create a keystore file (SQLite); fails with ALREADY_EXISTS if `path` exists. */
  static create(path: Path, options?: KeystoreOptions): Keystore
  /** Open a keystore; pass phrases are needed if it was created with them. */
  static open(path: Path, options?: KeystoreOptions): Keystore
  /** `create` on a pool thread (pass phrases cost an Argon2id run each). */
  static createAsync(path: Path, options?: KeystoreOptions): Promise<Keystore>
  /** `open` on a pool thread. */
  static openAsync(path: Path, options?: KeystoreOptions): Promise<Keystore>

  /** Let go of the keystore; later calls fail with INVALID_ARGUMENT. Calls already running finish. */
  close(): void
  readonly closed: boolean

  createGroup(name: string, options?: CreateGroupOptions): GroupInfo
  groups(): GroupInfo[]
  group(name: string): GroupInfo
  modifyGroup(name: string, changes: ModifyOptions): GroupInfo
  /** Delete an empty group (else NOT_DELETABLE). */
  deleteGroup(name: string): void

  createKey(group: string, name: string, options?: CreateKeyOptions): KeyInfo
  /** `createKey` on a pool thread. */
  createKeyAsync(group: string, name: string, options?: CreateKeyOptions): Promise<KeyInfo>
  /** Keys sorted by group and name, optionally of one group and/or in one state. */
  keys(filter?: KeysFilter): KeyInfo[]
  key(group: string, name: string): KeyInfo
  keyByTag(tag: string): KeyInfo
  /** Move one adjacent step (else INVALID_TRANSITION); activating bumps the group's active key to inactive. */
  setState(group: string, name: string, state: KeyState): KeyInfo
  modifyKey(group: string, name: string, changes: ModifyOptions): KeyInfo
  /** Delete a prelive or terminated key (else NOT_DELETABLE). */
  deleteKey(group: string, name: string): void
  /**
   * Mutations recorded by `build` committed as one: all of them, or (a refusal,
   * or `build` throwing) none. One result per mutation: the GroupInfo or
   * KeyInfo it made or moved, null for a deletion.
   */
  batch(build: (batch: Batch) => void): Array<GroupInfo | KeyInfo | null>
  /** Re-create a deleted pass phrase key from its tag (WRONG_PASSPHRASE if it does not match). */
  recoverKey(group: string, name: string, tag: string, passphrase: string, options?: RecoverKeyOptions): KeyInfo
  /** `recoverKey` on a pool thread. */
  recoverKeyAsync(group: string, name: string, tag: string, passphrase: string, options?: RecoverKeyOptions): Promise<KeyInfo>

  /** Encrypt with the group's active key (KEY_UNUSABLE if it has none). */
  encrypt(group: string, data: Bytes, aad?: Bytes): Buffer
  /** Decrypt with the key named by the tag inside (INTEGRITY if tampered, truncated or the aad differs). */
  decrypt(ciphertext: Bytes, aad?: Bytes): Buffer
  /** `encrypt` on a pool thread. The input is read there, not copied (as with `fs.write`): do not change it before the promise settles. */
  encryptAsync(group: string, data: Bytes, aad?: Bytes): Promise<Buffer>
  /** `decrypt` on a pool thread; the same holds for its input. */
  decryptAsync(ciphertext: Bytes, aad?: Bytes): Promise<Buffer>
  /** Encrypt a file of any size in bounded memory; `dst` appears only once complete. Returns the plaintext bytes. */
  encryptFile(group: string, src: Path, dst: Path, aad?: Bytes): number
  /** Decrypt a file; `dst` appears only if all of it authenticated. Returns the plaintext bytes. */
  decryptFile(src: Path, dst: Path, aad?: Bytes): number
  encryptFileAsync(group: string, src: Path, dst: Path, aad?: Bytes): Promise<number>
  decryptFileAsync(src: Path, dst: Path, aad?: Bytes): Promise<number>

  /** Seal groups with all their keys into an export container (NOT_FOUND for an unknown group). */
  exportGroups(passphrase: string, options?: ExportOptions): Buffer
  /** `exportGroups` into a file that appears only when complete (mode 0600). Returns its size. */
  exportToFile(path: Path, passphrase: string, options?: ExportOptions): number
  /** Import a container, all or nothing: WRONG_PASSPHRASE, INTEGRITY (not an intact container), QUIESCED. */
  importGroups(container: Bytes, passphrase: string, options?: ImportOptions): ImportReport
  /** `importGroups` on a pool thread. */
  importGroupsAsync(container: Bytes, passphrase: string, options?: ImportOptions): Promise<ImportReport>
  /** What `importGroups` would do; changes nothing. */
  previewImport(container: Bytes, passphrase: string, options?: ImportOptions): ImportReport
  importFile(path: Path, passphrase: string, options?: ImportOptions): ImportReport

  /** Make the keystore read-only for every process: mutations fail with QUIESCED. */
  quiesce(): void
  unquiesce(): void
  stats(): Stats
  /** Rows that failed to load (tampered or corrupt). */
  faults(): RowFault[]

  /** Who this handle's changes are recorded under in the audit trail. */
  readonly actor: string
  setActor(actor: string): void
  /** Audit entries, oldest first; a broken trail throws INTEGRITY naming the first bad entry. */
  audit(opts?: AuditOptions): AuditEntry[]
  /** Verify the whole audit trail. */
  verifyAudit(): AuditReport
  /** Replace the HMK (every row re-sealed in one transaction). */
  rotateHmk(opts?: RotateOptions): void
  /** Replace the KPK (every key re-wrapped in one transaction). */
  rotateKpk(opts?: RotateOptions): void
}

/** May a key move from `from` to `to`? Staying put is allowed. INVALID_ARGUMENT for an unknown state. */
export declare function canTransition(from: KeyState, to: KeyState): boolean

/** The operations a key in `state` allows, in the order encrypt, decrypt, delete. */
export declare function allowedOperations(state: KeyState): Operation[]

/**
 * The bare component with the deterministic clock and entropy of the
 * conformance vectors (tests/vectors/README.md). For replaying the vectors;
 * never for real keys.
 */
export declare class VectorInstance {
  constructor(seed: Bytes, clockStart: number, clockStep: number)
  /** Call `name` (`interface.function`) with `argsJson`, a JSON object by parameter name; the result as JSON text. */
  call(name: string, argsJson: string): string
}
