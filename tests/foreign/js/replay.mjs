// Replays the conformance vectors (tests/vectors/*.json) against the keystate
// component transpiled to JavaScript by jco, in plain Node: no native addon,
// the one host import (keystate:kms/host) written here in JS. The format, the
// value encoding and the deterministic environment are in tests/vectors/README.md.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

// ---- the deterministic host environment -----------------------------------------------

/**
 * The host import of a vector script: now() counts from clock-start in steps of
 * clock-step; randomBytes(len) hands out the stream
 * SHA-256(seed || u64le(0)) || SHA-256(seed || u64le(1)) || ...
 */
export function vectorHost({ 'clock-start': start, 'clock-step': step, seed }) {
  let next = BigInt(start);
  const seedBytes = Buffer.from(seed, 'hex');
  let counter = 0n;
  let pool = Buffer.alloc(0);
  return {
    now() {
      const t = next;
      next += BigInt(step);
      return t;
    },
    randomBytes(len) {
      const out = new Uint8Array(len);
      for (let i = 0; i < len; i++) {
        if (pool.length === 0) {
          const ctr = Buffer.alloc(8);
          ctr.writeBigUInt64LE(counter++);
          pool = createHash('sha256').update(seedBytes).update(ctr).digest();
        }
        out[i] = pool[0];
        pool = pool.subarray(1);
      }
      return out;
    },
  };
}

// ---- loading the transpiled component ----------------------------------------------------

/** Instantiate the jco output in `dir` (a URL ending in /) with `host` as keystate:kms/host. */
export async function instantiateWith(dir, host) {
  const { instantiate } = await import(new URL('keystate.js', dir));
  return instantiate(
    async (path) => WebAssembly.compile(await readFile(new URL(path, dir))),
    { 'keystate:kms/host': host },
  );
}

// ---- WIT values: vector JSON <-> jco's JavaScript values --------------------------------------
// Types come from tests/vectors/functions.json. jco's conventions: u64 is a BigInt,
// list<u8> a Uint8Array, record fields camelCase, variant {tag, val}, option
// undefined, a top-level result's error thrown as ComponentError with .payload.

const camel = (name) => name.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
const isBytes = (ty) => typeof ty === 'object' && ty.list === 'u8';

function toJs(ty, v, resources) {
  if (typeof ty === 'string') {
    switch (ty) {
      case 'u64': case 's64': return BigInt(v);
      case 'own': case 'borrow': return resources[v.resource];
      default: return v;
    }
  }
  if (isBytes(ty)) return Uint8Array.from(Buffer.from(v, 'hex'));
  if (ty.list) return v.map((e) => toJs(ty.list, e, resources));
  if (ty.tuple) return ty.tuple.map((t, i) => toJs(t, v[i], resources));
  if (ty.record) return Object.fromEntries(ty.record.map(([f, t]) => [camel(f), toJs(t, v[f], resources)]));
  if (ty.variant) {
    const [tag, payload] = Object.entries(v)[0];
    const caseTy = ty.variant.find(([c]) => c === tag)[1];
    return caseTy === null ? { tag } : { tag, val: toJs(caseTy, payload, resources) };
  }
  if (ty.enum) return v;
  if (ty.option) return v === null ? undefined : toJs(ty.option, v, resources);
  if (ty.result) {
    return 'ok' in v
      ? { tag: 'ok', val: ty.result.ok === null ? undefined : toJs(ty.result.ok, v.ok, resources) }
      : { tag: 'err', val: ty.result.error === null ? undefined : toJs(ty.result.error, v.error, resources) };
  }
  if (ty.flags) return Object.fromEntries(ty.flags.map((f) => [camel(f), v.includes(f)]));
  throw new Error(`unsupported type ${JSON.stringify(ty)}`);
}

function fromJs(ty, v, resources) {
  if (typeof ty === 'string') {
    switch (ty) {
      case 'u64': case 's64': {
        const n = Number(v);
        if (!Number.isSafeInteger(n)) throw new Error(`u64 ${v} does not fit a JSON number exactly`);
        return n;
      }
      case 'own': case 'borrow': resources.push(v); return { resource: resources.length - 1 };
      default: return v;
    }
  }
  if (isBytes(ty)) return Buffer.from(v).toString('hex');
  if (ty.list) return v.map((e) => fromJs(ty.list, e, resources));
  if (ty.tuple) return ty.tuple.map((t, i) => fromJs(t, v[i], resources));
  if (ty.record) return Object.fromEntries(ty.record.map(([f, t]) => [f, fromJs(t, v[camel(f)], resources)]));
  if (ty.variant) {
    const caseTy = ty.variant.find(([c]) => c === v.tag)[1];
    return { [v.tag]: caseTy === null ? null : fromJs(caseTy, v.val, resources) };
  }
  if (ty.enum) return v;
  if (ty.option) return v === undefined || v === null ? null : fromJs(ty.option, v, resources);
  if (ty.result) {
    const ok = v.tag === 'ok';
    const t = ok ? ty.result.ok : ty.result.error;
    return { [ok ? 'ok' : 'error']: t === null ? null : fromJs(t, v.val, resources) };
  }
  if (ty.flags) return ty.flags.filter((f) => v[camel(f)]);
  throw new Error(`unsupported type ${JSON.stringify(ty)}`);
}

/**
 * One instance of the component answering vector calls by WIT name
 * (`keystore.create-key`, `keystore.[method]encryptor.update`) with JSON values.
 */
export class VectorInstance {
  constructor(exports, functions) {
    this.exports = exports;
    this.functions = functions;
    this.resources = [];
  }

  call(name, args) {
    const sig = this.functions[name];
    if (!sig) throw new Error(`functions.json has no ${name}`);
    const [iface, func] = [name.slice(0, name.indexOf('.')), name.slice(name.indexOf('.') + 1)];
    const params = sig.params.map(([p, t]) => {
      if (!(p in args)) throw new Error(`${name}: argument ${p} missing`);
      return toJs(t, args[p], this.resources);
    });
    let target;
    let fn;
    const method = func.match(/^\[method\]([a-z0-9-]+)\.([a-z0-9-]+)$/);
    if (method) {
      target = params.shift();
      fn = target[camel(method[2])];
    } else {
      target = this.exports[iface];
      fn = target[camel(func)];
    }
    if (typeof fn !== 'function') throw new Error(`the transpiled component has no ${name}`);
    if (sig.result && sig.result.result) {
      // jco returns a top-level result's ok value and throws its error.
      let value;
      try {
        value = { tag: 'ok', val: fn.apply(target, params) };
      } catch (e) {
        if (!(e && 'payload' in e)) throw e;
        value = { tag: 'err', val: e.payload };
      }
      return fromJs(sig.result, value, this.resources);
    }
    const value = fn.apply(target, params);
    return sig.result === null ? null : fromJs(sig.result, value, this.resources);
  }
}
