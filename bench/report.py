"""Turns one benchmark run into BENCHMARKS.md.

    python bench/report.py --criterion TARGET/criterion --results results.jsonl \
        --command "bash scripts/bench.sh" --out BENCHMARKS.md

Rust results come from criterion's own files (sample.json: the per-iteration
times of every sample); Python and Node results are the JSON lines their
scripts print. Every case gets one table, keystate and its peers side by side.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
from collections import OrderedDict
from typing import Dict, List

# The single-instance rate of bulk encryption before the data path was worked
# on (one sandbox, AES-256-GCM, the guest without SIMD): the "today's rate" the
# bulk target is a multiple of. Measured on the machine of BENCHMARKS.md, 39.6
# MiB/s through the Rust host (40 MB/s from Python); docs/performance.md.
BASELINE_BULK_MBPS = 41.5

Rows = List[Dict[str, object]]


def find(rows: Rows, suite: str, case: str, subject: str = "") -> List[Dict[str, object]]:
    return [r for r in rows if r["suite"] == suite and str(r["case"]).startswith(case)
            and str(r.get("subject", "")).startswith(subject) and "median_ns" in r]


def rate(r: Dict[str, object]) -> float:
    return float(r["bytes"]) / (float(r["median_ns"]) / 1e9) / 1e6


def targets(rows: Rows) -> List[str]:
    """One line per target of the issue: what it is, what this run measured, met or not."""
    out = ["| target | measured in this run | met |", "|---|---|---|"]

    def line(target: str, measured: str, met: "bool | None") -> None:
        out.append(f"| {target} | {measured} | {'yes' if met else 'no' if met is not None else 'not measured'} |")

    r = find(rows, "rust", "policy", "keystate: may an active key encrypt? (allows)")
    line("policy decision <= 200 ns through the Rust host",
         f"`keystate::allows`: {fmt_time(float(r[0]['median_ns']))}" if r else "-",
         float(r[0]["median_ns"]) <= 200 if r else None)
    for suite, name in [("python", "Python"), ("node", "Node")]:
        r = find(rows, suite, "policy decision", "keystate")
        line(f"policy decision <= 2 us from {name}", fmt_time(float(r[0]["median_ns"])) if r else "-",
             float(r[0]["median_ns"]) <= 2000 if r else None)
    # Flat: the largest keystore's median within 1.5x of the smallest's, for every mutation.
    worst = None
    for case in sorted({str(r["case"]) for r in find(rows, "rust", "mutation:")}):
        by_size = sorted(find(rows, "rust", case), key=lambda r: int(str(r["subject"]).split()[0]))
        if len(by_size) > 1:
            ratio = float(by_size[-1]["median_ns"]) / float(by_size[0]["median_ns"])
            if worst is None or ratio > worst[0]:
                worst = (ratio, case.split(": ", 1)[1], by_size[0]["subject"], by_size[-1]["subject"])
    line("mutation latency independent of keystore size",
         f"worst: {worst[1]}, {worst[3]} / {worst[2]} = x{worst[0]:.2f}" if worst else "-",
         worst[0] <= 1.5 if worst else None)
    r = find(rows, "rust", "open: open keystore", "1000000 keys")
    peak = [x for x in rows if str(x["case"]).startswith("open: peak") and x["subject"] == "1000000 keys"]
    memory = f", peak memory {int(peak[0]['peak_rss_bytes']) / 2**20:,.0f} MiB" if peak else ""
    line("1M keys open in <= 2 s", f"{fmt_time(float(r[0]['median_ns']))}{memory}" if r else "-",
         float(r[0]["median_ns"]) <= 2e9 if r else None)
    for suite, name in [("python", "Python"), ("node", "Node")]:
        r = find(rows, suite, "cold start", "compiled component cached")
        line(f"cold start to first encrypt <= 50 ms from {name}, after the first run",
             fmt_time(float(r[0]["median_ns"])) if r else "-", float(r[0]["median_ns"]) <= 50e6 if r else None)
    one = find(rows, "python", "encrypt 64 MiB", "keystate AES-256-GCM, 1 sandbox")
    many = [r for r in find(rows, "python", "encrypt 64 MiB", "keystate AES-256-GCM") if "sandboxes" in str(r["subject"])]
    peer = find(rows, "python", "encrypt 64 MiB", "cryptography AESGCM")
    if many:
        best = max(rate(r) for r in many)
        line(f"bulk encrypt from Python >= 2x the single-instance rate before this work ({BASELINE_BULK_MBPS} MB/s)",
             f"{best:,.0f} MB/s = x{best / BASELINE_BULK_MBPS:.2f}", best >= 2 * BASELINE_BULK_MBPS)
    else:
        line("bulk encrypt from Python >= 2x the single-instance rate", "-", None)
    if one and many:
        n = max(many, key=rate)
        cores = str(n["subject"]).split(", ")[1]
        scale = rate(n) / rate(one[0])
        workers = int(cores.split()[0])
        line(f"... and linear in cores ({cores} vs 1)", f"x{scale:.2f} (linear: x{workers})", scale >= 0.85 * workers)
    if peer and many:
        out.append(f"| (the honest ratio) keystate AES-256-GCM, all cores, to `cryptography` AESGCM "
                   f"| {max(rate(r) for r in many) / rate(peer[0]):.3f} | |")
        chacha = [r for r in find(rows, "python", "encrypt 64 MiB", "keystate ChaCha20-Poly1305")]
        if chacha:
            out.append(f"| (the honest ratio) keystate ChaCha20-Poly1305, all cores, to `cryptography` AESGCM "
                       f"| {max(rate(r) for r in chacha) / rate(peer[0]):.3f} | |")
    return out


def order(r: Dict[str, object]) -> "tuple[bool, int, str]":
    """keystate first, then its peers; key counts by number."""
    subject = str(r["subject"])
    count = subject.split()[0]
    return (not subject.startswith("keystate"), int(count) if count.isdigit() else 0, subject)


def criterion_results(root: str) -> List[Dict[str, object]]:
    results = []
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "sample.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "sample.json")) as f:
            sample = json.load(f)
        per_iter = sorted(t / n for t, n in zip(sample["times"], sample["iters"]))
        throughput = bench.get("throughput") or {}
        case = bench["group_id"]
        subject = bench["function_id"] or bench["group_id"]
        if bench.get("value_str"):
            case = f"{case}: {subject}"
            subject = f"{bench['value_str']} keys"
        results.append({
            "suite": "rust",
            "case": case,
            "subject": subject,
            "bytes": throughput.get("Bytes", 0),
            "median_ns": statistics.median(per_iter),
            "p10_ns": per_iter[len(per_iter) // 10],
            "p90_ns": per_iter[(len(per_iter) * 9) // 10],
            "runs": int(sum(sample["iters"])),
        })
    return results


def fmt_time(ns: float) -> str:
    for unit, scale in [("s", 1e9), ("ms", 1e6), ("us", 1e3)]:
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(size: int, ns: float) -> str:
    return f"{size / (ns / 1e9) / 1e6:,.0f} MB/s" if size else ""


def table(rows: List[Dict[str, object]]) -> List[str]:
    if all("peak_rss_bytes" in r for r in rows):
        lines = ["| subject | peak resident memory |", "|---|---|"]
        lines += [f"| {r['subject']} | {int(r['peak_rss_bytes']) / 2**20:,.0f} MiB |" for r in rows]
        return lines
    has_bytes = any(r["bytes"] for r in rows)
    head = "| subject | median | p10 .. p90 | runs |" + (" throughput |" if has_bytes else "")
    lines = [head, "|---" * (5 if has_bytes else 4) + "|"]
    for r in rows:
        line = (f"| {r['subject']} | {fmt_time(r['median_ns'])} | {fmt_time(r['p10_ns'])} .. "
                f"{fmt_time(r['p90_ns'])} | {r['runs']} |")
        if has_bytes:
            line += f" {fmt_rate(int(r['bytes']), float(r['median_ns']))} |"
        lines.append(line)
    return lines


def machine() -> List[str]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            return "unknown"

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; memory {mem}; {platform.system()} {platform.release()}",
        f"- {out('rustc', '--version')}; Python {platform.python_version()}; Node {out('node', '--version')}",
        f"- load average when the report was written: {os.getloadavg()[0]:.2f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--criterion", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--notes", help="a Markdown file appended as is (findings, limits)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    rows = criterion_results(args.criterion)
    with open(args.results) as f:
        rows += [json.loads(line) for line in f if line.strip()]
    by_suite: "OrderedDict[str, OrderedDict[str, List[Dict[str, object]]]]" = OrderedDict()
    for suite in ["rust", "python", "node"]:
        cases: "OrderedDict[str, List[Dict[str, object]]]" = OrderedDict()
        for r in sorted((r for r in rows if r["suite"] == suite), key=lambda r: (str(r["case"]), order(r))):
            cases.setdefault(str(r["case"]), []).append(r)
        by_suite[suite] = cases

    lines = [
        "# keystate benchmarks",
        "",
        "Written by the benchmark run itself; do not edit by hand. keystate and the",
        "libraries a user would take instead are measured in the same run, on the same machine.",
        "",
        f"- Command: `{args.command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        *machine(),
        "",
        "Times are per call: the median, and the 10th to 90th percentile of the samples.",
        "Throughput is plaintext bytes per second at the median.",
        "",
        "## Targets",
        "",
        *targets(rows),
        "",
        "What limits the targets not met, and what was done for the others:",
        "[docs/performance.md](docs/performance.md) and the notes at the end.",
        "",
    ]
    titles = {"rust": "Rust host (criterion)", "python": "Python package", "node": "Node package"}
    for suite, cases in by_suite.items():
        if not cases:
            continue
        lines += [f"## {titles[suite]}", ""]
        for case, case_rows in cases.items():
            lines += [f"### {case}", "", *table(case_rows), ""]
    if args.notes and os.path.exists(args.notes):
        with open(args.notes) as f:
            lines += [f.read().rstrip(), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
