"""pytest: every conformance vector through the component in wasmtime-py (no pyo3),
the README snippet, and the component's imports.

Needs dist/keystate.wasm (`bash scripts/dist.sh`; KEYSTATE_DIST_WASM overrides the path).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wasmtime import Engine
from wasmtime.component import Component

from keystate_vectors import VectorEnv, VectorInstance

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VECTORS = REPO / "tests" / "vectors"
DIST = Path(os.environ.get("KEYSTATE_DIST_WASM", REPO / "dist" / "keystate.wasm"))
FILES = sorted(p.name for p in VECTORS.glob("*.json") if p.name != "functions.json")


@pytest.fixture(scope="session")
def engine():
    return Engine()


@pytest.fixture(scope="session")
def component(engine):
    assert DIST.exists(), f"{DIST} is missing: run bash scripts/dist.sh"
    return Component.from_file(engine, str(DIST))


def test_deterministic_environment_known_answer():
    env = VectorEnv(1_700_000_000_000, 1000, b"keystate")
    assert [env.now(), env.now(), env.now()] == [1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000]
    stream = env.random_bytes(5) + env.random_bytes(35)
    assert stream.hex() == "9cf62882cd419efaba0fe965aac83e846adae8636a48643523b9e804ebe4f4686e6728f4fa93a35f"


def test_component_imports_only_its_host_interface(engine, component):
    imports = sorted(component.type.imports(engine))
    assert imports == ["keystate:kms/host@0.1.0", "keystate:kms/types@0.1.0"]
    assert not any(name.startswith("wasi:") for name in imports)
    assert sorted(component.type.exports(engine)) == ["keystate:kms/keystore@0.1.0", "keystate:kms/policy@0.1.0"]


def test_there_are_vector_files():
    assert len(FILES) >= 6, FILES


def scripts():
    for name in FILES:
        doc = json.loads((VECTORS / name).read_text())
        for script in doc["scripts"]:
            yield pytest.param(name, script, id=f"{name}:{script['name']}")


@pytest.mark.parametrize("file,script", list(scripts()))
def test_vectors(engine, component, file, script):
    instance = VectorInstance(engine, component, VectorEnv.from_json(script["env"]))
    for i, step in enumerate(script["steps"]):
        got = instance.call(step["call"], step["args"])
        note = f" [{step['note']}]" if "note" in step else ""
        assert got == step["expect"], f"{file}: {script['name']}: step {i} ({step['call']}){note}"


def test_functions_table_agrees_with_wasmtime_py(engine, component):
    """Every function of functions.json exists with the same parameter names."""
    functions = json.loads((VECTORS / "functions.json").read_text())
    instance = VectorInstance(engine, component, VectorEnv(0, 1, b""))
    for name, sig in functions.items():
        fty = instance.func(name).type(instance.store)
        assert [p for p, _ in fty.params] == [p for p, _ in sig["params"]], name
        assert (fty.result is None) == (sig["result"] is None), name


def test_readme_snippet_runs():
    out = subprocess.run(
        [sys.executable, str(HERE / "example.py"), str(DIST)], check=True, capture_output=True, text=True
    ).stdout
    lines = out.splitlines()
    assert lines[0].startswith("my backup: 85 bytes sealed with k1 (tag "), out
    assert lines[1].startswith('invalid-transition: key "k1" in group "backups" cannot move from active to terminated'), out
    # header, group, key, audit head and three audit entries
    assert lines[2] == "7 rows stored; active key of backups: k1", out
    assert lines[3] == "prelive -> active allowed: True", out
