// ESM entry: the same module as index.js.
import { createRequire } from 'node:module'

const keystate = createRequire(import.meta.url)('./index.js')

export const { Keystore, KeystateError, KeyState, Cipher, canTransition, allowedOperations, VectorInstance } = keystate
export default keystate
