"""The conformance vectors (``tests/vectors/*.json``) replayed through this
build's native module, exactly as ``host/tests/vectors.rs`` replays them in
Rust: per script, a fresh ``_native.VectorInstance`` with the script's
deterministic clock and entropy; per step, call ``call`` with ``args``
(resources are ``{"resource": n}`` values, resolved by the instance) and
compare the JSON result with ``expect``, stopping at the first mismatch.
One test per script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keystate import KeystateError, _native

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors"
FILES = sorted(p for p in VECTORS.glob("*.json") if p.name != "functions.json")


def _scripts() -> list[Any]:
    params = []
    for path in FILES:
        doc = json.loads(path.read_text())
        scripts = doc["scripts"]
        assert scripts, f"{path.name}: no scripts"
        for script in scripts:
            params.append(pytest.param(path.name, script, id=f"{path.stem}:{script['name']}"))
    return params


def test_the_vectors_are_there() -> None:
    assert [p.name for p in FILES] == ["admin.json", "data.json", "lifecycle.json", "passphrase.json", "policy.json", "rows.json", "tamper.json"]


def test_library_errors_raise_the_mapped_exception() -> None:
    inst = _native.VectorInstance(b"", 0, 1)
    with pytest.raises(KeystateError) as info:
        inst.call("policy.no-such-function", "{}")
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(KeystateError) as info:
        inst.call("policy.can-transition", "not json")
    assert info.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("file", "script"), _scripts())
def test_vector_script(file: str, script: dict[str, Any]) -> None:
    env = script["env"]
    instance = _native.VectorInstance(bytes.fromhex(env["seed"]), env["clock-start"], env["clock-step"])
    steps = script["steps"]
    assert steps, f"{file}: script {script['name']!r} has no steps"
    for i, step in enumerate(steps):
        call = step["call"]
        try:
            got = json.loads(instance.call(call, json.dumps(step["args"])))
        except KeystateError as e:
            got = {"call failed": str(e)}
        if got != step["expect"]:
            note = f" [{step['note']}]" if "note" in step else ""
            pytest.fail(
                f"{file}: script {script['name']!r}, step {i} ({call}){note}\n"
                f"  args:     {json.dumps(step['args'])}\n"
                f"  expected: {json.dumps(step['expect'])}\n"
                f"  got:      {json.dumps(got)}\n"
                "If the change is intended, regenerate with\n"
                "  KEYSTATE_REGENERATE_VECTORS=1 cargo test -p keystate --test vectors",
                pytrace=False,
            )
