"""Replays the keystate conformance vectors (tests/vectors/*.json) with wasmtime-py.

The component is loaded with the `wasmtime` package from PyPI and its
`wasmtime.component` API: no pyo3, no keystate package, the one host import
(keystate:kms/host) written here in Python. Values are converted with the
types wasmtime-py reports for each function. The format, the value encoding and
the deterministic environment are in tests/vectors/README.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

from wasmtime import Engine, Store
from wasmtime.component import (
    BorrowType,
    Component,
    EnumType,
    ListType,
    OptionType,
    OwnType,
    Record,
    RecordType,
    ResultType,
    TupleType,
    U8,
    ValType,
    Variant,
    VariantType,
)
from wasmtime.component import Linker

HOST = "keystate:kms/host@0.1.0"


class VectorEnv:
    """The deterministic host import of a vector script.

    now() counts from clock-start in steps of clock-step; random-bytes(n) hands
    out the next n bytes of SHA-256(seed || u64le(0)) || SHA-256(seed || u64le(1)) || ...
    """

    def __init__(self, clock_start: int, clock_step: int, seed: bytes) -> None:
        self.next = clock_start
        self.step = clock_step
        self.seed = seed
        self.counter = 0
        self.pool = b""

    @classmethod
    def from_json(cls, env: dict) -> "VectorEnv":
        return cls(env["clock-start"], env["clock-step"], bytes.fromhex(env["seed"]))

    def now(self) -> int:
        t = self.next
        self.next += self.step
        return t

    def random_bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if not self.pool:
                self.pool = hashlib.sha256(self.seed + self.counter.to_bytes(8, "little")).digest()
                self.counter += 1
            take = min(n - len(out), len(self.pool))
            out += self.pool[:take]
            self.pool = self.pool[take:]
        return bytes(out)


def instantiate(engine: Engine, component: Component, env: VectorEnv):
    """A store and an instance whose host import answers from `env`."""
    linker = Linker(engine)
    with linker.root() as root:
        with root.add_instance(HOST) as host:
            host.add_func("now", lambda _store: env.now())
            host.add_func("random-bytes", lambda _store, n: env.random_bytes(n))
    store = Store(engine)
    return store, linker.instantiate(store, component)


# ---- WIT values: vector JSON <-> wasmtime-py values ----------------------------------
# wasmtime-py: list<u8> is bytes, a record a Record with attributes named as in WIT,
# an enum a str; a variant, option or result is a Variant(tag, payload) only when
# its cases cannot be told apart by Python type, else the bare payload ("untagged").


def _classes(ty: ValType | None) -> set:
    if ty is None:
        return {object}
    s: set = set()
    ty.add_classes(s)
    return s


def _cases(ty: ValType) -> list:
    if isinstance(ty, VariantType):
        return ty.cases
    if isinstance(ty, OptionType):
        return [("none", None), ("some", ty.payload)]
    if isinstance(ty, ResultType):
        return [("ok", ty.ok), ("err", ty.err)]
    raise TypeError(ty)


def _tagged(ty: ValType) -> bool:
    seen: set = set()
    for _, case_ty in _cases(ty):
        c = _classes(case_ty)
        if c & seen:
            return True
        seen |= c
    return False


def _is_bytes(ty: ValType) -> bool:
    return isinstance(ty, ListType) and isinstance(ty.element, U8)


def to_py(ty: ValType, v: Any, resources: list) -> Any:
    if _is_bytes(ty):
        return bytes.fromhex(v)
    if isinstance(ty, ListType):
        return [to_py(ty.element, e, resources) for e in v]
    if isinstance(ty, TupleType):
        return tuple(to_py(t, e, resources) for t, e in zip(ty.elements, v))
    if isinstance(ty, RecordType):
        r = Record()
        for name, t in ty.fields:
            setattr(r, name, to_py(t, v[name], resources))
        return r
    if isinstance(ty, (VariantType, OptionType, ResultType)):
        if isinstance(ty, OptionType):
            tag, payload = ("none", None) if v is None else ("some", v)
        elif isinstance(ty, ResultType):
            tag, payload = ("ok", v["ok"]) if "ok" in v else ("err", v["error"])
        else:
            ((tag, payload),) = v.items()
        case_ty = dict(_cases(ty))[tag]
        value = None if case_ty is None else to_py(case_ty, payload, resources)
        return Variant(tag, value) if _tagged(ty) else value
    if isinstance(ty, (OwnType, BorrowType)):
        return resources[v["resource"]]
    return v  # bool, integers, string, enum


def from_py(ty: ValType, v: Any, resources: list) -> Any:
    if _is_bytes(ty):
        return bytes(v).hex()
    if isinstance(ty, ListType):
        return [from_py(ty.element, e, resources) for e in v]
    if isinstance(ty, TupleType):
        return [from_py(t, e, resources) for t, e in zip(ty.elements, v)]
    if isinstance(ty, RecordType):
        return {name: from_py(t, getattr(v, name), resources) for name, t in ty.fields}
    if isinstance(ty, (VariantType, OptionType, ResultType)):
        cases = _cases(ty)
        if _tagged(ty):
            tag, payload = v.tag, v.payload
        else:  # the first case whose Python type matches, as wasmtime-py decides
            for tag, case_ty in cases:
                if (v is None) if case_ty is None else isinstance(v, tuple(_classes(case_ty))):
                    break
            else:
                raise TypeError(f"{v!r} fits no case of {ty}")
            payload = v
        case_ty = dict(cases)[tag]
        value = None if case_ty is None else from_py(case_ty, payload, resources)
        if isinstance(ty, OptionType):
            return value
        if isinstance(ty, ResultType):
            return {"ok": value} if tag == "ok" else {"error": value}
        return {tag: value}
    if isinstance(ty, (OwnType, BorrowType)):
        resources.append(v)
        return {"resource": len(resources) - 1}
    if isinstance(ty, EnumType):
        return v
    return v  # bool, integers, string


class VectorInstance:
    """One instance answering vector calls by WIT name (`keystore.create-key`,
    `keystore.[method]encryptor.update`) with JSON values."""

    def __init__(self, engine: Engine, component: Component, env: VectorEnv) -> None:
        self.store, self.instance = instantiate(engine, component, env)
        self.interfaces = {
            name.split("/")[-1].split("@")[0]: name for name in component.type.exports(engine)
        }
        self.resources: list = []

    def func(self, name: str):
        iface, func = name.split(".", 1)
        index = self.instance.get_export_index(self.store, self.interfaces[iface])
        f = self.instance.get_func(self.store, self.instance.get_export_index(self.store, func, index))
        if f is None:
            raise KeyError(f"the component exports no {name}")
        return f

    def call(self, name: str, args: dict) -> Any:
        f = self.func(name)
        fty = f.type(self.store)
        params = [to_py(t, args[p], self.resources) for p, t in fty.params]
        result = f(self.store, *params)
        f.post_return(self.store)
        return None if fty.result is None else from_py(fty.result, result, self.resources)
