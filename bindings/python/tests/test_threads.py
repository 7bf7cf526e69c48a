"""One Keystore shared by threads: everything round-trips, and the GIL is
released while the library works (other Python threads keep running)."""

from __future__ import annotations

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from conftest import key_in

import keystate
from keystate import KeyState, Keystore


def test_eight_threads_encrypt_and_decrypt_concurrently(ks: Keystore) -> None:
    for g in ("a", "b"):
        key_in(ks, g, "k", KeyState.ACTIVE)
    start = threading.Barrier(8)

    def worker(t: int) -> int:
        start.wait()
        group = "ab"[t % 2]
        done = 0
        for i in range(40):
            msg = os.urandom((t * 997 + i * 131) % 70_000)
            aad = f"{t}/{i}".encode()
            sealed = ks.encrypt(group, msg, aad)
            assert ks.decrypt(sealed, aad) == msg
            if i % 10 == 0:
                out = io.BytesIO()
                ks.decrypt_file(io.BytesIO(sealed), out, aad)
                assert out.getvalue() == msg
                assert ks.key(group, "k").state is KeyState.ACTIVE
            done += 1
        return done

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(worker, range(8))) == [40] * 8


def coverage_during(call: Callable[[], object]) -> tuple[float, float]:
    """While `call` runs, which share of its 5 ms slices saw a pure-Python thread
    make progress (its edges aside, where the GIL changes hands anyway)? And how
    long did it run? A call that holds the GIL scores 0, one that releases it ~1."""
    stamps: list[float] = []
    stop = threading.Event()
    started = threading.Event()

    def counter() -> None:
        n = 0
        started.set()
        while not stop.is_set():
            n += 1
            if n % 100 == 0:
                stamps.append(time.perf_counter())

    t = threading.Thread(target=counter)
    t.start()
    started.wait()
    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    stop.set()
    t.join()
    slice_ = 0.005
    lo, hi = t0 + 0.01, t1 - 0.01  # the GIL may change hands around the call itself
    slices = max(int((hi - lo) / slice_), 0)
    seen = {int((s - lo) / slice_) for s in stamps if lo <= s < lo + slices * slice_}
    return (len(seen) / slices if slices else 0.0), t1 - t0


def test_the_gil_is_released_while_the_library_works(ks: Keystore, tmp_path: Path) -> None:
    key_in(ks, "g", "k", KeyState.ACTIVE)
    big = os.urandom(24 * 1024 * 1024)
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    # The yardstick: a call that holds the GIL throughout.
    held, elapsed = coverage_during(lambda: (big * 4).count(b"\x00\x01\x02\x03\x04\x05"))
    assert elapsed < 0.05 or held < 0.2, f"a GIL-holding call scored {held:.2f}"
    calls: dict[str, Callable[[], object]] = {
        "encrypt": lambda: ks.encrypt("g", big),
        "decrypt": lambda: ks.decrypt(sealed),
        "encrypt_file (paths)": lambda: ks.encrypt_file("g", src, tmp_path / "big.ks"),
        "decrypt_file (file objects)": lambda: ks.decrypt_file(io.BytesIO(sealed), io.BytesIO()),
        "pass phrase derivation": lambda: ks.create_key("g", "pp", passphrase="slow on purpose"),
        "opening a pass phrase keystore": lambda: Keystore.open(tmp_path / "pp.db", "hmk", "kpk").close(),
    }
    sealed = ks.encrypt("g", big)
    Keystore.create(tmp_path / "pp.db", "hmk", "kpk").close()
    for what, call in calls.items():
        share, elapsed = coverage_during(call)
        assert elapsed > 0.03, f"{what} was too quick to tell ({elapsed:.3f}s)"
        assert share > 0.5, f"{what}: another thread ran in only {share:.0%} of {elapsed:.3f}s"


def test_close_while_other_threads_work(path: Path) -> None:
    ks = Keystore.create(path)
    key_in(ks, "g", "k", KeyState.ACTIVE)
    errors: list[str] = []
    go = threading.Event()

    def worker() -> None:
        go.wait()
        for _ in range(200):
            try:
                assert ks.decrypt(ks.encrypt("g", b"x" * 1000)) == b"x" * 1000
            except keystate.KeystateError as e:
                errors.append(e.code)
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    time.sleep(0.05)
    ks.close()
    for t in threads:
        t.join()
    assert set(errors) <= {"CLOSED"}
    with Keystore.open(path) as again:
        assert again.key("g", "k").state is KeyState.ACTIVE
