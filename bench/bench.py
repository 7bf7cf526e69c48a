"""keystate from Python, beside what a Python user would use instead, in one run.

    python bench/bench.py [--quick] [--out results.jsonl]

Peers: `cryptography`'s AESGCM and ChaCha20Poly1305, and `tink`'s AEAD, each
called in-process like keystate. Every line of output is one JSON result:
{"suite", "case", "subject", "median_ns", "p10_ns", "p90_ns", "bytes", "runs"}.
`scripts/bench.sh` installs the packages and turns the results into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import keystate

KIB = 1024
MIB = 1024 * KIB


def measure(fn: Callable[[], object], *, runs: int, inner: int = 1) -> Dict[str, float]:
    """Times `runs` samples of `inner` calls each; per-call nanoseconds."""
    fn()  # warm up
    samples: List[float] = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - t0) / inner)
    samples.sort()
    return {
        "median_ns": statistics.median(samples),
        "p10_ns": samples[len(samples) // 10],
        "p90_ns": samples[(len(samples) * 9) // 10],
        "runs": runs * inner,
    }


class Report:
    def __init__(self, out: Optional[str]) -> None:
        self.file = open(out, "a") if out else None

    def add(self, suite: str, case: str, subject: str, result: Dict[str, float], size: int = 0) -> None:
        line = json.dumps({"suite": suite, "case": case, "subject": subject, "bytes": size, **result})
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")
            self.file.flush()


def policy(report: Report, quick: bool) -> None:
    rules = {"active": {"encrypt", "decrypt"}, "inactive": {"decrypt"}}

    def plain(state: str) -> bool:
        return "encrypt" in rules.get(state, set())

    runs = 50 if quick else 200
    report.add("python", "policy decision: may an active key encrypt?", "keystate.allowed_operations",
               measure(lambda: "encrypt" in keystate.allowed_operations("active"), runs=runs, inner=1000))
    report.add("python", "policy decision: may an active key encrypt?", "plain Python function",
               measure(lambda: plain("active"), runs=runs, inner=1000))


def open_data_keystore(path: str) -> keystate.Keystore:
    ks = keystate.Keystore.create(path)
    for group, cipher in [("aes", keystate.Cipher.AES_256_GCM), ("chacha", keystate.Cipher.CHACHA20_POLY1305)]:
        ks.create_group(group, cipher)
        ks.create_key(group, "k", state=keystate.KeyState.ACTIVE)
    return ks


def data(report: Report, quick: bool, tmp: str) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    path = os.path.join(tmp, "data.db")
    open_data_keystore(path).close()
    cores = os.cpu_count() or 1
    # KEYSTATE_WORKERS is read when a handle opens: one handle per parallelism.
    handles = {}
    for workers in sorted({1, min(cores, 8)}):
        os.environ["KEYSTATE_WORKERS"] = str(workers)
        handles[workers] = keystate.Keystore.open(path)
    del os.environ["KEYSTATE_WORKERS"]

    aesgcm = AESGCM(AESGCM.generate_key(bit_length=256))
    chacha = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
    nonce = os.urandom(12)
    tink_aead = make_tink()

    for size, label in [(KIB, "1 KiB"), (64 * MIB, "64 MiB")]:
        big = size > MIB
        runs = (3 if quick else 10) if big else (200 if quick else 2000)
        plaintext = os.urandom(size)
        subjects: Dict[str, Callable[[], bytes]] = {}
        openers: Dict[str, Callable[[], bytes]] = {}
        for workers, ks in handles.items():
            if workers > 1 and not big:
                continue
            how = f"{workers} sandbox" + ("es" if workers > 1 else "")
            for group, cipher in [("aes", "AES-256-GCM"), ("chacha", "ChaCha20-Poly1305")]:
                name = f"keystate {cipher}, {how}"
                subjects[name] = lambda ks=ks, group=group: ks.encrypt(group, plaintext, b"aad")
                sealed = ks.encrypt(group, plaintext, b"aad")
                openers[name] = lambda ks=ks, sealed=sealed: ks.decrypt(sealed, b"aad")
        subjects["cryptography AESGCM (AES-256)"] = lambda: aesgcm.encrypt(nonce, plaintext, b"aad")
        sealed_aes = aesgcm.encrypt(nonce, plaintext, b"aad")
        openers["cryptography AESGCM (AES-256)"] = lambda: aesgcm.decrypt(nonce, sealed_aes, b"aad")
        subjects["cryptography ChaCha20Poly1305"] = lambda: chacha.encrypt(nonce, plaintext, b"aad")
        sealed_chacha = chacha.encrypt(nonce, plaintext, b"aad")
        openers["cryptography ChaCha20Poly1305"] = lambda: chacha.decrypt(nonce, sealed_chacha, b"aad")
        if tink_aead is not None:
            subjects["tink AEAD (AES256_GCM)"] = lambda: tink_aead.encrypt(plaintext, b"aad")
            sealed_tink = tink_aead.encrypt(plaintext, b"aad")
            openers["tink AEAD (AES256_GCM)"] = lambda: tink_aead.decrypt(sealed_tink, b"aad")
        for op, table in [("encrypt", subjects), ("decrypt", openers)]:
            for subject, fn in table.items():
                report.add("python", f"{op} {label}", subject, measure(fn, runs=runs), size)
    for ks in handles.values():
        ks.close()


def make_tink():  # type: ignore[no-untyped-def]
    try:
        import tink
        from tink import aead
    except ImportError:
        print("tink is not installed: its rows are missing", file=sys.stderr)
        return None
    aead.register()
    handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    return handle.primitive(aead.Aead)


COLD = """
import time, sys
t0 = time.perf_counter_ns()
import keystate
ks = keystate.Keystore.open(sys.argv[1])
ks.encrypt("aes", b"x" * 1024, b"")
print(time.perf_counter_ns() - t0)
"""


def cold_start(report: Report, quick: bool, tmp: str) -> None:
    """A new process: from `import keystate` to its first encrypt, with the
    compiled component cached (the usual case) and with an empty cache."""
    path = os.path.join(tmp, "cold.db")
    open_data_keystore(path).close()

    def run(cache: str) -> float:
        env = dict(os.environ, KEYSTATE_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", COLD, path], env=env, check=True, capture_output=True, text=True)
        return float(out.stdout.strip())

    cache = os.path.join(tmp, "cache")
    run(cache)  # fills the cache
    runs = 5 if quick else 20
    warm = sorted(run(cache) for _ in range(runs))
    empty = sorted(run(os.path.join(tmp, f"empty-{i}")) for i in range(3 if quick else 5))
    for subject, samples in [("compiled component cached", warm), ("empty cache (compiles)", empty)]:
        result = {"median_ns": statistics.median(samples), "p10_ns": samples[0], "p90_ns": samples[-1],
                  "runs": len(samples)}
        report.add("python", "cold start: import keystate to first encrypt", subject, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs: checks the script, not the speed")
    parser.add_argument("--out", help="also append the JSON lines to this file")
    args = parser.parse_args()
    report = Report(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        policy(report, args.quick)
        cold_start(report, args.quick, tmp)
        data(report, args.quick, tmp)


if __name__ == "__main__":
    main()
