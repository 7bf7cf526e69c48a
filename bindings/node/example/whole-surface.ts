// Every export and every method of `keystate`, with the types index.d.ts gives
// them. test.sh checks it with `tsc --noEmit --strict`, then compiles and runs
// it. The `@ts-expect-error` lines (in `refused`, never called) prove that the
// types refuse what the library would refuse at run time.

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import {
  allowedOperations,
  canTransition,
  Cipher,
  KeyState,
  Keystore,
  KeystateError,
  type AuditEntry,
  type AuditOptions,
  type AuditReport,
  type Batch,
  type Bytes,
  type CreateGroupOptions,
  type CreateKeyOptions,
  type ExportOptions,
  type ImportedGroup,
  type ImportedKey,
  type ImportOptions,
  type ImportReport,
  type SkipReason,
  type ErrorCode,
  type GroupInfo,
  type KeyInfo,
  type KeysFilter,
  type KeystoreOptions,
  type ModifyOptions,
  type Operation,
  type RecoverKeyOptions,
  type RotateOptions,
  type RowFault,
  type Stats,
} from 'keystate'

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keystate-surface-'))
  const file = path.join(dir, 'keys.db')

  // The rule book.
  const ok: boolean = canTransition(KeyState.Prelive, KeyState.Active)
  const ops: Operation[] = allowedOperations('inactive')
  const state: KeyState = KeyState.Terminated
  const cipher: Cipher = Cipher.Aes128Gcm

  // Opening.
  const options: KeystoreOptions = { hmkPassphrase: 'hmk words', kpkPassphrase: 'kpk words' }
  const ks: Keystore = Keystore.create(file, options)
  ks.close()
  const closed: boolean = ks.closed
  const again: Keystore = Keystore.open(new URL(`file://${file}`), options)
  const other: Keystore = await Keystore.createAsync(path.join(dir, 'other.db'))
  const reopened: Keystore = await Keystore.openAsync(path.join(dir, 'other.db'))

  // Groups.
  const groupOptions: CreateGroupOptions = { cipher, description: 'nightly' }
  const group: GroupInfo = again.createGroup('backups', groupOptions)
  again.createGroup('scratch')
  const groups: GroupInfo[] = again.groups()
  const one: GroupInfo = again.group('backups')
  const changes: ModifyOptions = { description: 'weekly' }
  const renamed: GroupInfo = again.modifyGroup('scratch', { newName: 'tmp', ...changes })
  again.deleteGroup('tmp')
  const activeKey: string | null = one.activeKey
  const created: Date = group.created

  // Keys.
  const keyOptions: CreateKeyOptions = { state: KeyState.Active, description: 'first' }
  const k1: KeyInfo = again.createKey('backups', 'k1', keyOptions)
  const k2: KeyInfo = await again.createKeyAsync('backups', 'k2', { passphrase: 'tape 7' })
  const filter: KeysFilter = { group: 'backups', state: KeyState.Active }
  const keys: KeyInfo[] = again.keys(filter)
  const all: KeyInfo[] = again.keys()
  const byName: KeyInfo = again.key('backups', 'k1')
  const byTag: KeyInfo = again.keyByTag(k1.tag)
  const moved: KeyInfo = again.setState('backups', 'k2', 'active')
  const described: KeyInfo = again.modifyKey('backups', 'k2', { description: 'second' })
  again.createKey('backups', 'p')
  again.deleteKey('backups', 'p')
  const recoverOptions: RecoverKeyOptions = { state: KeyState.Inactive }
  again.setState('backups', 'k2', 'inactive')
  again.setState('backups', 'k2', 'deprecated')
  again.setState('backups', 'k2', 'terminated')
  again.deleteKey('backups', 'k2')
  const back: KeyInfo = again.recoverKey('backups', 'k2', k2.tag, 'tape 7', recoverOptions)
  again.setState('backups', 'k2', 'deprecated')
  again.setState('backups', 'k2', 'terminated')
  again.deleteKey('backups', 'k2')
  const backAsync: KeyInfo = await again.recoverKeyAsync('backups', 'k2', k2.tag, 'tape 7')
  const recoverable: boolean = backAsync.recoverable
  const batched: Array<GroupInfo | KeyInfo | null> = again.batch((b: Batch) => {
    b.createKey('backups', 'b1', { state: KeyState.Prelive })
    b.deleteKey('backups', 'b1')
  })
  const modified: Date = back.modified

  // Data, with k1 active again.
  again.setState('backups', 'k1', KeyState.Active)
  const aad: Bytes = new Uint8Array([1, 2, 3])
  const sealed: Buffer = again.encrypt('backups', Buffer.from('data'), aad)
  const plain: Buffer = again.decrypt(sealed, aad)
  const sealedAsync: Buffer = await again.encryptAsync('backups', new Uint8Array(8), Buffer.from('img'))
  const plainAsync: Buffer = await again.decryptAsync(sealedAsync, Buffer.from('img'))
  fs.writeFileSync(path.join(dir, 'image.tar'), 'image')
  const n1: number = again.encryptFile('backups', path.join(dir, 'image.tar'), path.join(dir, 'image.ks'))
  const n2: number = again.decryptFile(path.join(dir, 'image.ks'), path.join(dir, 'image.out'))
  const n3: number = await again.encryptFileAsync('backups', path.join(dir, 'image.tar'), path.join(dir, 'b.ks'), aad)
  const n4: number = await again.decryptFileAsync(path.join(dir, 'b.ks'), path.join(dir, 'b.out'), aad)

  // The keystore.
  again.quiesce()
  again.unquiesce()
  const stats: Stats = again.stats()
  const perState: number = stats.states.active + stats.states[KeyState.Prelive]
  const faults: RowFault[] = again.faults()

  // Administration.
  again.setActor('surface-example')
  const actor: string = again.actor
  const auditFilter: AuditOptions = { group: 'backups', since: new Date(0), limit: 10 }
  const entries: AuditEntry[] = again.audit(auditFilter)
  const when: Date = entries[0].time
  const report: AuditReport = again.verifyAudit()
  const intact: boolean = report.fault === null
  const rotate: RotateOptions = { passphrase: 'new kpk words', id: 'kpk-2' }
  again.rotateKpk(rotate)
  again.rotateHmk({ passphrase: 'new hmk words' })
  const audited: number = again.stats().auditEntries

  // Export and import.
  const container: Buffer = again.exportGroups('move pass', { groups: ['backups'] })
  const size: number = again.exportToFile(path.join(dir, 'all.ksx'), 'move pass')
  const preview: ImportReport = again.previewImport(container, 'move pass', { preserveNames: true })
  const importReport: ImportReport = await again.importGroupsAsync(container, 'move pass')
  const fromFile: ImportReport = again.importFile(path.join(dir, 'all.ksx'), 'move pass', { preview: true })
  const skipped: SkipReason | undefined = importReport.keysSkipped[0]?.skipped?.reason
  const firstGroup: ImportedGroup | undefined = importReport.groups[0]
  const firstKey: ImportedKey | undefined = fromFile.keys[0]
  const reportArgs: ImportOptions & ExportOptions = { preview: true, groups: 'backups' }
  const imported = again.importGroups(container, 'move pass', reportArgs)

  // Errors.
  try {
    again.setState('backups', 'k1', 'prelive')
  } catch (e) {
    if (e instanceof KeystateError) {
      const code: ErrorCode = e.code
      const message: string = e.message
      console.log(code, message)
    }
  }
  const made = new KeystateError('NOT_FOUND', 'made by hand')
  const asError: Error = made

  for (const k of [ks, again, other, reopened]) k.close()
  fs.rmSync(dir, { recursive: true, force: true })
  const used: unknown[] = [ok, ops, state, closed, groups, renamed, activeKey, created, keys, all, byName, byTag, moved, described]
  used.push(batched, recoverable, modified, plain, plainAsync, n1, n2, n3, n4, perState, faults, asError)
  used.push(actor, when, intact, audited)
  used.push(size, preview, skipped, firstGroup, firstKey, imported)
  console.log(`whole surface: ok (${used.length} results, ${keys.length} active key, ${faults.length} faults)`)
}

/** What the types refuse; never called. */
export function refused(ks: Keystore): void {
  // @ts-expect-error: not a state
  canTransition('retired', 'active')
  // @ts-expect-error: not a cipher
  const noCipher: Cipher = 'DES'
  // @ts-expect-error: made only by create/open
  new Keystore()
  // @ts-expect-error: states are the five names
  ks.setState('backups', 'k2', 'live')
  // @ts-expect-error: bytes, not strings
  ks.encrypt('backups', 'data')
  // @ts-expect-error: codes are the eleven names
  new KeystateError('GONE', 'x')
  // @ts-expect-error: activeKey may be null
  const name: string = ks.group('g').activeKey
  // @ts-expect-error: async variants return promises
  const info: KeyInfo = ks.createKeyAsync('g', 'k')
  console.log(noCipher, name, info)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
