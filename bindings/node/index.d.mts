// Types of the ESM entry (index.mjs): the same declarations as index.d.ts.
import * as keystate from './index.js'

export * from './index.js'
export default keystate
