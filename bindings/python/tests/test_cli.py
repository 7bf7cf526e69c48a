"""`python -m keystate ...` runs the keystate CLI binary (see keystate/_cli.py):
the same keystore from the command line and from Python, and a clear message
when the binary cannot be found.

The tests that need the binary are skipped when it is not found, unless
KEYSTATE_REQUIRE_CLI=1 (test.sh sets it, after building the binary)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keystate
from keystate import KeyState, Keystore, _cli


def run(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "keystate", *args],
        env={**os.environ, **(env or {})},
        input=input if input is not None else b"",
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def cli() -> str:
    found = _cli.find_cli()
    if found is None:
        if os.environ.get("KEYSTATE_REQUIRE_CLI") == "1":
            pytest.fail(f"the keystate CLI binary was not found (looked in {_cli.candidates()})")
        pytest.skip("the keystate CLI binary was not found (set KEYSTATE_CLI)")
    return found


def test_help_is_the_cli_help(cli: str) -> None:
    r = run("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "Usage: keystate" in out and "group" in out and "key" in out


def test_the_cli_and_python_share_a_keystore(cli: str, tmp_path: Path) -> None:
    path = str(tmp_path / "keys.db")
    for args in (("init",), ("group", "create", "backups"), ("key", "create", "backups", "k1", "--state", "active")):
        r = run("--keystore", path, *args)
        assert r.returncode == 0, (args, r.stderr.decode())
    sealed = run("--keystore", path, "encrypt", "--group", "backups", "--aad", "img-1", input=b"from the CLI")
    assert sealed.returncode == 0, sealed.stderr.decode()
    with Keystore.open(path) as ks:
        assert ks.key("backups", "k1").state is KeyState.ACTIVE
        assert ks.decrypt(sealed.stdout, b"img-1") == b"from the CLI"
        k2 = ks.create_key("backups", "k2", KeyState.ACTIVE)  # bumps k1
        from_python = ks.encrypt("backups", b"from Python", b"img-2")
    listed = run("--keystore", path, "--json", "key", "list")
    assert listed.returncode == 0, listed.stderr.decode()
    keys = {k["name"]: k for k in json.loads(listed.stdout)}
    assert keys["k1"]["state"] == "inactive" and keys["k2"]["tag"] == k2.tag
    plain = run("--keystore", path, "decrypt", "--aad", "img-2", input=from_python)
    assert plain.returncode == 0 and plain.stdout == b"from Python", plain.stderr.decode()


def test_cli_errors_keep_their_exit_codes(cli: str, tmp_path: Path) -> None:
    path = str(tmp_path / "keys.db")
    Keystore.create(path).close()
    r = run("--keystore", path, "key", "show", "nope", "k")
    assert r.returncode == 3, r  # not found (README's exit code table)
    assert "nope" in r.stderr.decode()


def test_without_the_binary_it_says_where_it_looked(tmp_path: Path) -> None:
    missing = {"KEYSTATE_CLI": str(tmp_path / "no-such-keystate")}
    r = run("--help", env=missing)
    assert r.returncode == 0
    assert "KEYSTATE_CLI" in r.stdout.decode() and str(tmp_path) in r.stdout.decode()
    r = run("group", "list", env=missing)
    assert r.returncode == 2 and b"not found" in r.stderr and r.stdout == b""


def test_the_module_still_imports_without_the_binary() -> None:
    assert keystate.Keystore is not None and callable(_cli.main)
