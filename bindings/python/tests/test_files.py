"""encrypt_file / decrypt_file with paths and binary file objects, in any
mix: a few MiB that are not a multiple of the chunk size, output that appears
only when complete, bounded reads, and Python errors that come back as they were."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import key_in

import keystate
from keystate import KeyState, Keystore

SIZE = 3 * 1024 * 1024 + 12345  # not a multiple of the 64 KiB chunk, nor of the 1 MiB stream block


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    p = tmp_path / "plain.bin"
    p.write_bytes(os.urandom(SIZE))
    return p


@pytest.fixture
def ready(ks: Keystore) -> Keystore:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    return ks


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("src_kind", ["str", "pathlib", "bytes", "file"])
@pytest.mark.parametrize("dst_kind", ["str", "pathlib", "file"])
def test_every_mix_of_paths_and_file_objects(ready: Keystore, plain: Path, tmp_path: Path, src_kind: str, dst_kind: str) -> None:
    def src(p: Path) -> Any:
        return {"str": str(p), "pathlib": p, "bytes": os.fsencode(p), "file": None}[src_kind] or open(p, "rb")

    def dst(p: Path) -> Any:
        return {"str": str(p), "pathlib": p, "file": None}[dst_kind] or open(p, "wb")

    enc, out = tmp_path / "plain.ks", tmp_path / "plain.out"
    s, d = src(plain), dst(enc)
    try:
        assert ready.encrypt_file("g", s, d, aad=b"img") == SIZE
    finally:
        for f in (s, d):
            if hasattr(f, "close"):
                f.close()
    assert enc.stat().st_size == 60 + SIZE + 16 * (SIZE // 65536 + 1)
    # Interchangeable with the one-shot API.
    assert ready.decrypt(enc.read_bytes(), b"img") == plain.read_bytes()
    s, d = src(enc), dst(out)
    try:
        assert ready.decrypt_file(s, d, b"img") == SIZE
    finally:
        for f in (s, d):
            if hasattr(f, "close"):
                f.close()
    assert out.read_bytes() == plain.read_bytes()
    assert leftovers(tmp_path) == []


def test_bytesio_round_trip_and_one_shot_interop(ready: Keystore) -> None:
    data = os.urandom(SIZE)
    sealed = io.BytesIO()
    ready.encrypt_file("g", io.BytesIO(data), sealed, b"a")
    assert ready.decrypt(sealed.getvalue(), b"a") == data
    back = io.BytesIO()
    ready.decrypt_file(io.BytesIO(ready.encrypt("g", data, b"a")), back, b"a")
    assert back.getvalue() == data


class Trickle:
    """A reader that makes its data up as it goes and records what it was asked for."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.asked: list[int] = []

    def read(self, n: int) -> bytes:
        self.asked.append(n)
        n = min(n, self.left, 100_000)  # short reads, like a pipe
        self.left -= n
        return b"\x5a" * n


class Counter:
    """A writer that keeps only a count (and the largest write)."""

    def __init__(self) -> None:
        self.total = 0
        self.largest = 0

    def write(self, b: bytes) -> int:
        self.total += len(b)
        self.largest = max(self.largest, len(b))
        return len(b)


def test_streams_use_bounded_memory(ready: Keystore) -> None:
    size = 24 * 1024 * 1024 + 7
    src, dst = Trickle(size), Counter()
    assert ready.encrypt_file("g", src, dst) == size
    assert dst.total == 60 + size + 16 * (size // 65536 + 1)
    # The library reads and writes a bounded batch at a time (1 MiB per sandbox,
    # at most 8 sandboxes), never the whole stream.
    assert max(src.asked) <= 8 << 20
    assert dst.largest <= (8 << 20) + 64 * 1024
    assert len(src.asked) > 2


def test_a_path_destination_appears_only_if_all_authenticated(ready: Keystore, plain: Path, tmp_path: Path) -> None:
    enc = tmp_path / "plain.ks"
    ready.encrypt_file("g", plain, enc)
    sealed = bytearray(enc.read_bytes())
    sealed[len(sealed) // 2] ^= 1
    for src in (bytes(sealed), bytes(sealed[:-100])):
        bad = tmp_path / "bad.ks"
        bad.write_bytes(src)
        for source in (bad, io.BytesIO(src)):
            out = tmp_path / "out.bin"
            with pytest.raises(keystate.IntegrityError):
                ready.decrypt_file(source, out)  # type: ignore[arg-type]
            assert not out.exists()
            assert leftovers(tmp_path) == []
    with pytest.raises(keystate.IntegrityError):
        ready.decrypt_file(enc, tmp_path / "x", aad=b"wrong")
    assert not (tmp_path / "x").exists()


def test_missing_source_and_unusable_key(ready: Keystore, tmp_path: Path) -> None:
    for dst in (tmp_path / "out", io.BytesIO()):
        with pytest.raises(keystate.NotFound):
            ready.encrypt_file("g", tmp_path / "missing", dst)  # type: ignore[arg-type]
    ready.set_state("g", "k", KeyState.INACTIVE)
    with pytest.raises(keystate.KeyUnusable):
        ready.encrypt_file("g", io.BytesIO(b"x"), io.BytesIO())
    assert leftovers(tmp_path) == []


def test_python_errors_in_file_objects_come_back_as_they_were(ready: Keystore, tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    class BadReader:
        def read(self, n: int) -> bytes:
            raise Boom("disk on fire")

    class BadWriter:
        def write(self, b: bytes) -> int:
            raise Boom("no room")

    with pytest.raises(Boom, match="disk on fire"):
        ready.encrypt_file("g", BadReader(), io.BytesIO())
    with pytest.raises(Boom, match="no room"):
        ready.encrypt_file("g", io.BytesIO(b"data"), BadWriter())
    with pytest.raises(Boom):
        ready.encrypt_file("g", BadReader(), tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    # A text-mode file is refused with a hint.
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with open(text) as f, pytest.raises(TypeError, match="binary"):
        ready.encrypt_file("g", f, io.BytesIO())  # type: ignore[arg-type]
    # The keystore is still fine afterwards.
    assert ready.decrypt(ready.encrypt("g", b"ok")) == b"ok"
