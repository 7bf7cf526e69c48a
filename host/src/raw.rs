//! The bare component, called by WIT function name with JSON values, with the
//! host import answered by a [`HostEnv`] of your choice.
//!
//! Normal use needs none of this: [`Keystore`](crate::Keystore) hosts the
//! component, persists its change sets and keeps it in step with storage.
//! This module is what the conformance vectors (`tests/vectors/`) are
//! generated and replayed with: an instance whose clock and entropy are
//! deterministic, driven call by call exactly as a foreign host (jco,
//! wasmtime-py) drives the same `.wasm` file. Nothing is stored: change sets
//! come back as values and are the caller's to keep.
//!
//! A function is named `<interface>.<function>` after the WIT:
//! `policy.can-transition`, `keystore.create-key`, and for methods of a
//! resource `keystore.[method]encryptor.update` (its first argument is
//! `self`). Arguments are a JSON object by parameter name; the result is the
//! function's return value, `null` when it has none.
//!
//! # JSON encoding of WIT values
//!
//! | WIT | JSON |
//! |-----|------|
//! | `bool`, `string` | `true`, `"text"` |
//! | `u32`, `u64` (all integers) | a number |
//! | `list<u8>` | a string of lowercase hex digits, two per byte |
//! | `list<T>`, `tuple<..>` | an array |
//! | `record` | an object with every field, by its WIT name (`active-key`) |
//! | `enum` | the case name: `"active"` |
//! | `variant` | an object with one member, case name to payload: `{"raw": "00ff.."}` (payload `null` for a case without one) |
//! | `option<T>` | `null`, or the value |
//! | `result<T, E>` | `{"ok": T}` or `{"error": E}` (`null` where there is no type) |
//! | `flags` | an array of the names that are set |
//! | `own<R>`, `borrow<R>` | `{"resource": n}`: the `n`th resource (from 0) this instance returned |
//!
//! ```
//! use keystate::raw::{Instance, OsEnv};
//! use serde_json::json;
//!
//! let mut c = Instance::new(OsEnv)?;
//! let allowed = c.call("policy.can-transition", &json!({"from-state": "prelive", "to-state": "active"}))?;
//! assert_eq!(allowed, json!(true));
//! let ops = c.call("policy.allowed-operations", &json!({"state": "inactive"}))?;
//! assert_eq!(ops, json!(["decrypt"]));
//! # Ok::<(), keystate::Error>(())
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Func, ResourceAny, Val};

use crate::error::{Error, ErrorKind, Result};
use crate::sandbox::{self, Guest, Limits};

pub use crate::sandbox::{HostEnv, OsEnv};

/// The deterministic host environment the conformance vectors are made and
/// replayed with (`tests/vectors/README.md`, "The host environment"): `now`
/// returns `clock_start`, then `clock_start + clock_step`, and so on;
/// `random-bytes(n)` hands out the next `n` bytes of the stream
/// SHA-256(seed || u64le(0)) || SHA-256(seed || u64le(1)) || ...
///
/// Not random at all: for tests and vectors only, never for real keys.
///
/// ```
/// use keystate::raw::{HostEnv, VectorEnv};
///
/// let mut env = VectorEnv::new(b"keystate", 1_700_000_000_000, 1000);
/// assert_eq!([env.now(), env.now()], [1_700_000_000_000, 1_700_000_001_000]);
/// let mut bytes = [0u8; 4];
/// env.fill(&mut bytes)?;
/// assert_eq!(bytes, [0x9c, 0xf6, 0x28, 0x82]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct VectorEnv {
    next_time: u64,
    step: u64,
    seed: Vec<u8>,
    counter: u64,
    /// Bytes of the current block not yet handed out, last byte first.
    pool: Vec<u8>,
}

impl VectorEnv {
    /// The environment of a script whose `env` is `{"seed": hex(seed),
    /// "clock-start": clock_start, "clock-step": clock_step}`.
    pub fn new(seed: &[u8], clock_start: u64, clock_step: u64) -> VectorEnv {
        VectorEnv { next_time: clock_start, step: clock_step, seed: seed.to_vec(), counter: 0, pool: Vec::new() }
    }
}

impl HostEnv for VectorEnv {
    fn now(&mut self) -> u64 {
        let t = self.next_time;
        self.next_time += self.step;
        t
    }

    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        use sha2::{Digest, Sha256};
        for byte in buf {
            if self.pool.is_empty() {
                let mut h = Sha256::new();
                h.update(&self.seed);
                h.update(self.counter.to_le_bytes());
                self.counter += 1;
                self.pool = h.finalize().to_vec();
                self.pool.reverse(); // pop() hands out the block front to back
            }
            *byte = self.pool.pop().expect("a fresh block has 32 bytes");
        }
        Ok(())
    }
}

/// One instance of the component in its own sandbox (memory cap, deadline
/// per call), with its host import answered by a [`HostEnv`].
pub struct Instance {
    guest: Guest,
    /// Short interface name (`keystore`) to export name (`keystate:kms/keystore@0.1.0`).
    interfaces: BTreeMap<String, String>,
    /// Every resource a call returned, in order: `{"resource": n}` is the `n`th.
    resources: Vec<ResourceAny>,
}

impl Instance {
    /// A fresh instance (no keystore open yet) with the default [`Limits`].
    pub fn new(env: impl HostEnv + 'static) -> Result<Instance> {
        let guest = Guest::with_env(Limits::default(), Box::new(env))?;
        let (engine, component) = sandbox::engine_and_component()?;
        let interfaces = component
            .component_type()
            .exports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(name, _)| (short_interface_name(name).to_string(), name.to_string()))
            .collect();
        Ok(Instance { guest, interfaces, resources: Vec::new() })
    }

    /// Call `func` (`interface.function`, see the module doc) with `args`, a
    /// JSON object by parameter name, and return its result as JSON. An error
    /// the component returns is a value (`{"error": {"not-found": "..."}}`);
    /// `Err` means the call could not be made: an unknown function, arguments
    /// that do not fit its types (`InvalidArgument`), or a trap or limit hit
    /// (`Internal`, after which the instance refuses further calls).
    pub fn call(&mut self, func: &str, args: &Value) -> Result<Value> {
        let (f, ty) = self.lookup(func)?;
        let params = params_from_json(func, &ty, args, &self.resources)?;
        let result_types: Vec<Type> = ty.results().collect();
        let mut results = vec![Val::Bool(false); result_types.len()];
        self.guest.run_raw(|_, store| f.call(store, &params, &mut results))?;
        match (result_types.first(), results.pop()) {
            (Some(rty), Some(val)) => Ok(from_val(rty, val, &mut self.resources)),
            _ => Ok(Value::Null),
        }
    }

    fn lookup(&mut self, func: &str) -> Result<(Func, ComponentFunc)> {
        let unknown = || Error::new(ErrorKind::NotFound, format!("the component exports no function {func:?}"));
        let (interface, name) = func.split_once('.').ok_or_else(unknown)?;
        let export = self.interfaces.get(interface).ok_or_else(unknown)?.clone();
        self.guest
            .run_raw(|instance, store| {
                let found = instance
                    .get_export_index(&mut *store, None, &export)
                    .and_then(|iface| instance.get_export_index(&mut *store, Some(&iface), name))
                    .and_then(|index| instance.get_func(&mut *store, index))
                    .map(|f| (f, f.ty(&*store)));
                Ok(found)
            })?
            .ok_or_else(unknown)
    }
}

/// Test aid for hosting untrusted components with keystate's limits: compile
/// `component` (a component with no imports) on the engine keystores use, in
/// a store configured exactly as a keystore's (memory cap, epoch deadline per
/// call, from `limits`), and call its top-level function `export` with `args`
/// (JSON, as for [`Instance::call`]). A trap or a limit hit is an
/// [`ErrorKind::Internal`] error, and the process carries on; the instance is
/// dropped after the call.
pub fn run_untrusted(component: &[u8], limits: Limits, export: &str, args: &Value) -> Result<Value> {
    let (ty, mut results) =
        sandbox::run_untrusted(component, limits, export, |ty| params_from_json(export, ty, args, &[]))?;
    match (ty.results().next(), results.pop()) {
        (Some(rty), Some(val)) => Ok(from_val(&rty, val, &mut Vec::new())),
        _ => Ok(Value::Null),
    }
}

/// `args`, a JSON object by parameter name, as the parameters of `func`.
fn params_from_json(func: &str, ty: &ComponentFunc, args: &Value, resources: &[ResourceAny]) -> Result<Vec<Val>> {
    let args = args.as_object().ok_or_else(|| invalid(format!("{func}: the arguments must be a JSON object")))?;
    let mut params = Vec::new();
    for (name, pty) in ty.params() {
        let value = args.get(name).ok_or_else(|| invalid(format!("{func}: argument {name:?} is missing")))?;
        params.push(to_val(&pty, value, resources).map_err(|e| invalid(format!("{func}: {name}: {e}")))?);
    }
    if let Some(extra) = args.keys().find(|k| !ty.params().any(|(name, _)| name == k.as_str())) {
        return Err(invalid(format!("{func} has no parameter {extra:?}")));
    }
    Ok(params)
}

/// Every function the component exports, by `interface.function` name, with
/// its parameters (`[name, type]` pairs, in order) and its result type
/// (`null` when it has none). Types are written as `"u64"`, `"string"`,
/// `{"list": T}`, `{"option": T}`, `{"result": {"ok": T, "error": T}}`,
/// `{"tuple": [T, ..]}`, `{"record": [[field, T], ..]}`,
/// `{"variant": [[case, T], ..]}`, `{"enum": [case, ..]}`, `{"flags": [..]}`,
/// `"own"` and `"borrow"` (resources). `tests/vectors/functions.json` is this
/// table: a foreign host that replays the vectors converts values with it.
pub fn functions() -> Result<Value> {
    let (engine, component) = sandbox::engine_and_component()?;
    let mut out = Map::new();
    for (iface_name, iface) in component.component_type().exports(engine) {
        let ComponentItem::ComponentInstance(iface) = iface.ty else { continue };
        for (name, item) in iface.exports(engine) {
            let ComponentItem::ComponentFunc(f) = item.ty else { continue };
            let params: Vec<Value> = f.params().map(|(n, t)| json!([n, type_json(&t)])).collect();
            let result = f.results().next().map(|t| type_json(&t)).unwrap_or(Value::Null);
            out.insert(
                format!("{}.{name}", short_interface_name(iface_name)),
                json!({ "params": params, "result": result }),
            );
        }
    }
    Ok(Value::Object(out))
}

/// `keystate:kms/keystore@0.1.0` -> `keystore`.
fn short_interface_name(export: &str) -> &str {
    let path = export.rsplit_once('/').map_or(export, |(_, p)| p);
    path.split_once('@').map_or(path, |(p, _)| p)
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

fn type_json(ty: &Type) -> Value {
    let opt = |t: Option<Type>| t.map(|t| type_json(&t)).unwrap_or(Value::Null);
    match ty {
        Type::Bool => json!("bool"),
        Type::S8 => json!("s8"),
        Type::U8 => json!("u8"),
        Type::S16 => json!("s16"),
        Type::U16 => json!("u16"),
        Type::S32 => json!("s32"),
        Type::U32 => json!("u32"),
        Type::S64 => json!("s64"),
        Type::U64 => json!("u64"),
        Type::Float32 => json!("f32"),
        Type::Float64 => json!("f64"),
        Type::Char => json!("char"),
        Type::String => json!("string"),
        Type::List(l) => json!({ "list": type_json(&l.ty()) }),
        Type::Record(r) => {
            json!({ "record": r.fields().map(|f| json!([f.name, type_json(&f.ty)])).collect::<Vec<_>>() })
        }
        Type::Tuple(t) => json!({ "tuple": t.types().map(|t| type_json(&t)).collect::<Vec<_>>() }),
        Type::Variant(v) => json!({ "variant": v.cases().map(|c| json!([c.name, opt(c.ty)])).collect::<Vec<_>>() }),
        Type::Enum(e) => json!({ "enum": e.names().collect::<Vec<_>>() }),
        Type::Option(o) => json!({ "option": type_json(&o.ty()) }),
        Type::Result(r) => json!({ "result": { "ok": opt(r.ok()), "error": opt(r.err()) } }),
        Type::Flags(f) => json!({ "flags": f.names().collect::<Vec<_>>() }),
        Type::Own(_) => json!("own"),
        Type::Borrow(_) => json!("borrow"),
        _ => json!("unsupported"),
    }
}

fn is_bytes(ty: &Type) -> bool {
    matches!(ty, Type::List(l) if matches!(l.ty(), Type::U8))
}

/// JSON to a component value of type `ty` (the encoding in the module doc).
fn to_val(ty: &Type, v: &Value, resources: &[ResourceAny]) -> std::result::Result<Val, String> {
    let want = |what: &str| format!("expected {what}, got {v}");
    let int = || v.as_u64().map(|n| n as i128).or_else(|| v.as_i64().map(i128::from)).ok_or_else(|| want("an integer"));
    let ranged = |lo: i128, hi: i128| {
        int().and_then(|n| if (lo..=hi).contains(&n) { Ok(n) } else { Err(format!("{n} is out of range")) })
    };
    let string = || v.as_str().ok_or_else(|| want("a string"));
    let array = || v.as_array().ok_or_else(|| want("an array"));
    let object = || v.as_object().ok_or_else(|| want("an object"));
    let maybe = |t: Option<Type>, v: &Value| match (t, v) {
        (None, Value::Null) => Ok(None),
        (None, _) => Err(format!("expected null, got {v}")),
        (Some(t), v) => to_val(&t, v, resources).map(|x| Some(Box::new(x))),
    };
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| want("true or false"))?),
        Type::S8 => Val::S8(ranged(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(ranged(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(ranged(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(ranged(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(ranged(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(ranged(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(ranged(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(ranged(0, u64::MAX.into())? as u64),
        Type::String => Val::String(string()?.to_string()),
        Type::List(_) if is_bytes(ty) => {
            Val::List(hex::decode(string()?).map_err(|e| format!("bad hex: {e}"))?.into_iter().map(Val::U8).collect())
        }
        Type::List(l) => {
            Val::List(array()?.iter().map(|e| to_val(&l.ty(), e, resources)).collect::<std::result::Result<_, _>>()?)
        }
        Type::Tuple(t) => {
            let items = array()?;
            if items.len() != t.types().len() {
                return Err(want(&format!("{} elements", t.types().len())));
            }
            Val::Tuple(
                t.types().zip(items).map(|(t, e)| to_val(&t, e, resources)).collect::<std::result::Result<_, _>>()?,
            )
        }
        Type::Record(r) => {
            let obj = object()?;
            if let Some(extra) = obj.keys().find(|k| !r.fields().any(|f| f.name == k.as_str())) {
                return Err(format!("the record has no field {extra:?}"));
            }
            let mut fields = Vec::new();
            for f in r.fields() {
                let fv = obj.get(f.name).ok_or_else(|| format!("field {:?} is missing", f.name))?;
                fields
                    .push((f.name.to_string(), to_val(&f.ty, fv, resources).map_err(|e| format!("{}: {e}", f.name))?));
            }
            Val::Record(fields)
        }
        Type::Variant(var) => {
            let obj = object()?;
            let (case, payload) = match obj.iter().next() {
                Some(entry) if obj.len() == 1 => entry,
                _ => return Err(want("an object with one member, the case")),
            };
            let c = var.cases().find(|c| c.name == case.as_str()).ok_or_else(|| format!("no case {case:?}"))?;
            Val::Variant(case.clone(), maybe(c.ty, payload)?)
        }
        Type::Enum(e) => {
            let name = string()?;
            if !e.names().any(|n| n == name) {
                return Err(format!("no case {name:?}"));
            }
            Val::Enum(name.to_string())
        }
        Type::Option(o) => match v {
            Value::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(to_val(&o.ty(), v, resources)?))),
        },
        Type::Result(r) => {
            let obj = object()?;
            match (obj.len(), obj.get("ok"), obj.get("error")) {
                (1, Some(ok), _) => Val::Result(Ok(maybe(r.ok(), ok)?)),
                (1, _, Some(err)) => Val::Result(Err(maybe(r.err(), err)?)),
                _ => return Err(want(r#"{"ok": ..} or {"error": ..}"#)),
            }
        }
        Type::Flags(f) => {
            let names = array()?.iter().map(|n| n.as_str().map(str::to_string).ok_or_else(|| want("flag names")));
            let names: Vec<String> = names.collect::<std::result::Result<_, _>>()?;
            if let Some(bad) = names.iter().find(|n| !f.names().any(|m| m == n.as_str())) {
                return Err(format!("no flag {bad:?}"));
            }
            Val::Flags(names)
        }
        Type::Own(_) | Type::Borrow(_) => {
            let n = object()?.get("resource").and_then(Value::as_u64).ok_or_else(|| want(r#"{"resource": n}"#))?;
            Val::Resource(*resources.get(n as usize).ok_or_else(|| format!("no resource {n} yet"))?)
        }
        other => return Err(format!("values of type {other:?} are not supported")),
    })
}

/// A component value of type `ty` to JSON (the encoding in the module doc).
/// Resources it holds are appended to `resources`.
fn from_val(ty: &Type, val: Val, resources: &mut Vec<ResourceAny>) -> Value {
    fn maybe(t: Option<Type>, v: Option<Box<Val>>, resources: &mut Vec<ResourceAny>) -> Value {
        match (t, v) {
            (Some(t), Some(v)) => from_val(&t, *v, resources),
            _ => Value::Null,
        }
    }
    match (ty, val) {
        (_, Val::Bool(b)) => json!(b),
        (_, Val::S8(n)) => json!(n),
        (_, Val::U8(n)) => json!(n),
        (_, Val::S16(n)) => json!(n),
        (_, Val::U16(n)) => json!(n),
        (_, Val::S32(n)) => json!(n),
        (_, Val::U32(n)) => json!(n),
        (_, Val::S64(n)) => json!(n),
        (_, Val::U64(n)) => json!(n),
        (_, Val::Float32(n)) => json!(n),
        (_, Val::Float64(n)) => json!(n),
        (_, Val::Char(c)) => json!(c.to_string()),
        (_, Val::String(s)) => json!(s),
        (Type::List(_), Val::List(items)) if is_bytes(ty) => {
            json!(hex::encode(items.into_iter().map(|v| if let Val::U8(b) = v { b } else { 0 }).collect::<Vec<u8>>()))
        }
        (Type::List(l), Val::List(items)) => {
            Value::Array(items.into_iter().map(|v| from_val(&l.ty(), v, resources)).collect())
        }
        (Type::Tuple(t), Val::Tuple(items)) => {
            Value::Array(t.types().zip(items).map(|(t, v)| from_val(&t, v, resources)).collect())
        }
        (Type::Record(r), Val::Record(fields)) => {
            Value::Object(r.fields().zip(fields).map(|(f, (name, v))| (name, from_val(&f.ty, v, resources))).collect())
        }
        (Type::Variant(var), Val::Variant(case, payload)) => {
            let cty = var.cases().find(|c| c.name == case).and_then(|c| c.ty);
            json!({ case: maybe(cty, payload, resources) })
        }
        (_, Val::Enum(name)) => json!(name),
        (Type::Option(o), Val::Option(v)) => maybe(Some(o.ty()), v, resources),
        (Type::Result(r), Val::Result(Ok(v))) => json!({ "ok": maybe(r.ok(), v, resources) }),
        (Type::Result(r), Val::Result(Err(v))) => json!({ "error": maybe(r.err(), v, resources) }),
        (_, Val::Flags(names)) => json!(names),
        (_, Val::Resource(r)) => {
            resources.push(r);
            json!({ "resource": resources.len() - 1 })
        }
        (ty, val) => json!({ "unsupported": format!("{val:?} as {ty:?}") }),
    }
}
