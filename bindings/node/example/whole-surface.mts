// The ESM face (index.mjs / index.d.mts): named and default imports.
import keystate, { Keystore, KeyState, KeystateError, type KeyInfo } from 'keystate'

const same: typeof Keystore = keystate.Keystore
const active: 'active' = KeyState.Active
const isError = (e: unknown): e is KeystateError => e instanceof keystate.KeystateError
const show = (k: KeyInfo): string => `${k.group}/${k.name} ${k.state}`
export { same, active, isError, show }
