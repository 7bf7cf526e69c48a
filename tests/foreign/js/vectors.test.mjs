// node --test: every conformance vector through the jco-transpiled component in
// plain Node, the README snippet, and the component's imports.
//
// Needs dist/keystate.wasm transpiled into ./keystate-js (tests/foreign/run.sh does
// both: `bash scripts/dist.sh`, then `npx jco transpile dist/keystate.wasm -o
// tests/foreign/js/keystate-js --instantiation async`).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { componentWit } from '@bytecodealliance/jco';

import { VectorInstance, instantiateWith, vectorHost } from './replay.mjs';

const here = new URL('./', import.meta.url);
const repo = new URL('../../../', import.meta.url);
const vectors = new URL('tests/vectors/', repo);
const jcoOut = new URL('keystate-js/', here);
const dist = new URL(process.env.KEYSTATE_DIST_WASM ?? 'dist/keystate.wasm', repo);
const functions = JSON.parse(readFileSync(new URL('functions.json', vectors), 'utf8'));

test('deterministic environment: the known answer of tests/vectors/README.md', () => {
  const host = vectorHost({ 'clock-start': 1700000000000, 'clock-step': 1000, seed: Buffer.from('keystate').toString('hex') });
  assert.deepEqual([host.now(), host.now(), host.now()], [1700000000000n, 1700000001000n, 1700000002000n]);
  const stream = Buffer.concat([host.randomBytes(5), host.randomBytes(35)]).toString('hex');
  assert.equal(stream, '9cf62882cd419efaba0fe965aac83e846adae8636a48643523b9e804ebe4f4686e6728f4fa93a35f');
});

test('dist/keystate.wasm imports no wasi: interface, only keystate:kms/host and its types', async () => {
  const wit = await componentWit(readFileSync(dist));
  const imports = [...wit.matchAll(/^\s*import ([^;]+);/gm)].map((m) => m[1]);
  assert.deepEqual(imports.sort(), ['keystate:kms/host@0.1.0', 'keystate:kms/types@0.1.0']);
  assert.doesNotMatch(wit, /wasi:/);
  const exports = [...wit.matchAll(/^\s*export ([^;]+);/gm)].map((m) => m[1]);
  assert.deepEqual(exports.sort(), ['keystate:kms/keystore@0.1.0', 'keystate:kms/policy@0.1.0']);
});

test('every function of functions.json is in the transpiled component', async () => {
  const exports = await instantiateWith(jcoOut, vectorHost({ 'clock-start': 0, 'clock-step': 1, seed: '' }));
  for (const name of Object.keys(functions)) {
    const [iface, func] = [name.slice(0, name.indexOf('.')), name.slice(name.indexOf('.') + 1)];
    if (func.startsWith('[')) continue; // resource methods: checked by the vectors that call them
    const camel = func.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
    assert.equal(typeof exports[iface]?.[camel], 'function', name);
  }
});

const files = readdirSync(fileURLToPath(vectors)).filter((f) => f.endsWith('.json') && f !== 'functions.json').sort();

test('there are vector files', () => assert.ok(files.length >= 6, files.join(' ')));

for (const file of files) {
  const doc = JSON.parse(readFileSync(new URL(file, vectors), 'utf8'));
  test(file, async (t) => {
    for (const script of doc.scripts) {
      await t.test(script.name, async () => {
        const exports = await instantiateWith(jcoOut, vectorHost(script.env));
        const instance = new VectorInstance(exports, functions);
        script.steps.forEach((step, i) => {
          const got = instance.call(step.call, step.args);
          assert.deepEqual(got, step.expect, `${file}: ${script.name}: step ${i} (${step.call})${step.note ? ` [${step.note}]` : ''}`);
        });
      });
    }
  });
}

test('the README snippet (example.mjs) runs', () => {
  const out = execFileSync(process.execPath, [fileURLToPath(new URL('example.mjs', here))], { encoding: 'utf8' });
  assert.match(out, /^my backup: 85 bytes sealed with k1 \(tag [0-9a-f]{32}\)$/m);
  assert.match(out, /^invalid-transition: key "k1" in group "backups" cannot move from active to terminated/m);
  // header, group, key, audit head and three audit entries
  assert.match(out, /^7 rows stored; active key of backups: k1$/m);
});
