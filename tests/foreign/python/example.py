"""The README's "Load the component in your own host" Python snippet, run by
test_vectors.py: `pip install wasmtime`, then `python example.py dist/keystate.wasm`."""

import os
import sys
import time

from wasmtime import Engine, Store
from wasmtime.component import Component, Linker, Variant

engine = Engine()
component = Component.from_file(engine, sys.argv[1] if len(sys.argv) > 1 else "dist/keystate.wasm")
linker = Linker(engine)
with linker.root() as root:
    with root.add_instance("keystate:kms/host@0.1.0") as host:  # the one import
        host.add_func("now", lambda store: time.time_ns() // 1_000_000)  # ms since the Unix epoch
        host.add_func("random-bytes", lambda store, n: os.urandom(n))  # the OS CSPRNG
store = Store(engine)
instance = linker.instantiate(store, component)


def export(name, interface="keystate:kms/keystore@0.1.0"):
    f = instance.get_func(store, instance.get_export_index(store, name, instance.get_export_index(store, interface)))

    def call(*args):
        result = f(store, *args)
        f.post_return(store)
        return result

    return call


def ok(result):
    """A WIT error comes back as a value: Variant(tag=<error kind>, payload=<message>)."""
    if isinstance(result, Variant):
        raise RuntimeError(f"{result.tag}: {result.payload}")
    return result


# The keystore lives in the instance. Every mutation returns a change set: rows
# your host must store (atomically, compare-and-swap on versions) before it
# acknowledges anything. Here, a dict stands in for storage.
rows = {}


def persist(changes):
    for row in changes.upserts:
        rows[row.id] = row
    for gone in changes.deletes:
        rows.pop(gone.id, None)


# A secret is bytes (a raw 32-byte key) or str (a pass phrase). Keep them safe.
persist(ok(export("create")(os.urandom(32), "hmk-1", os.urandom(32), "kpk-1")))
group, changes = ok(export("create-group")("backups", "aes-256-gcm", "nightly images"))
persist(changes)
k1, changes = ok(export("create-key")("backups", "k1", "active", None, ""))
persist(changes)

sealed = ok(export("encrypt")("backups", b"my backup", b"img-1"))  # keep per-call data small:
plain = ok(export("decrypt")(sealed, b"img-1"))  # list<u8> crosses byte by byte in wasmtime-py
print(f"{plain.decode()}: {len(sealed)} bytes sealed with {k1.name} (tag {k1.tag})")

refused = export("set-state")("backups", "k1", "terminated")
print(f"{refused.tag}: {refused.payload}")
active = getattr(ok(export("group")("backups")), "active-key")  # record fields keep their WIT names
print(f"{len(rows)} rows stored; active key of {group.name}: {active}")
print("prelive -> active allowed:", export("can-transition", "keystate:kms/policy@0.1.0")("prelive", "active"))
