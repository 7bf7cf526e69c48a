const { Keystore, KeyState, KeystateError } = require('keystate')

const ks = Keystore.create('keys.db') // random HMK and KPK in keys.db.hmk / keys.db.kpk
ks.createGroup('backups', { description: 'nightly images' })
ks.createKey('backups', 'k1', { state: KeyState.Active })
const sealed = ks.encrypt('backups', Buffer.from('image bytes'), Buffer.from('img-1'))
ks.createKey('backups', 'k2', { state: KeyState.Active }) // bumps k1 to inactive
console.log(ks.decrypt(sealed, Buffer.from('img-1')).toString(), ks.key('backups', 'k1').state)
ks.setState('backups', 'k1', KeyState.Deprecated) // suspected compromise: every use refused
try { ks.decrypt(sealed, Buffer.from('img-1')) } catch (e) { console.log(e instanceof KeystateError, e.code, e.message) }
console.log(ks.keys().map((k) => `${k.name} ${k.state}`).join(', '))
