// The README's "Load the component in your own host" JavaScript snippet, run by
// vectors.test.mjs. Before it:
//   npm install @bytecodealliance/jco
//   npx jco transpile dist/keystate.wasm -o keystate-js --instantiation async
import { readFile } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';
import { instantiate } from './keystate-js/keystate.js';

// The one import: wall-clock milliseconds (a u64, so a BigInt) and secure random bytes.
// (jco keys it without the @0.1.0 version.)
const host = {
  now: () => BigInt(Date.now()),
  randomBytes: (len) => randomFillSync(new Uint8Array(len)),
};
const { keystore, policy } = await instantiate(
  async (path) => WebAssembly.compile(await readFile(new URL(`./keystate-js/${path}`, import.meta.url))),
  { 'keystate:kms/host': host },
);

// The keystore lives in the instance. Every mutation returns a change set: rows
// your host must store (atomically, compare-and-swap on versions) before it
// acknowledges anything. Here, a Map stands in for storage.
const rows = new Map();
const persist = (changes) => {
  for (const row of changes.upserts) rows.set(row.id, row);
  for (const gone of changes.deletes) rows.delete(gone.id);
};
const secret = () => ({ tag: 'raw', val: randomFillSync(new Uint8Array(32)) }); // HMK, KPK: keep them safe
persist(keystore.create(secret(), 'hmk-1', secret(), 'kpk-1'));
const [group, groupRows] = keystore.createGroup('backups', 'aes-256-gcm', 'nightly images');
persist(groupRows);
const [k1, keyRows] = keystore.createKey('backups', 'k1', 'active', undefined, '');
persist(keyRows);

const utf8 = (s) => new TextEncoder().encode(s);
const sealed = keystore.encrypt('backups', utf8('my backup'), utf8('img-1'));
const plain = keystore.decrypt(sealed, utf8('img-1'));
console.log(`${new TextDecoder().decode(plain)}: ${sealed.length} bytes sealed with ${k1.name} (tag ${k1.tag})`);

// An error is thrown; .payload is the WIT error variant.
try {
  keystore.setState('backups', 'k1', 'terminated');
} catch (e) {
  console.log(`${e.payload.tag}: ${e.payload.val}`);
}
console.log(`${rows.size} rows stored; active key of ${group.name}: ${keystore.group('backups').activeKey}`);
console.log(`prelive -> active allowed: ${policy.canTransition('prelive', 'active')}`);
