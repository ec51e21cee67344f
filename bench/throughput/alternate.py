#!/usr/bin/env python3
"""Photos/s of `photo-sorter sort` for several builds on one folder, runs alternating (a, b, a, b, …), with the CPU
seconds of each process role.

    flock /tmp/photo-sorter-bench.lock ml-service/.venv/bin/python bench/throughput/alternate.py \\
        --variant before=/tmp/photo-sorter-before,/tmp/ps-old/ml-service/.venv/bin/python \\
        --variant after=.build/release/photo-sorter --rounds 3 --json bench/out/alternate.json

A variant is NAME=BINARY[,ML_PYTHON]: the `sort` binary and, optionally, the Python its ML child runs
(PHOTO_SORTER_ML_PYTHON; the child runs the `photo_sorter_ml` beside that venv), so one binary can be compared with
two versions of the ML service, or two builds each with its own. Every run sorts the folder into a fresh SQLite
database (default configuration). Photos/s is `processed / wall_seconds` of the sort's own summary (the same figure
as bench/RESULTS.md's earlier runtime table); CPU is user + system seconds per role (`sort` itself, the ML service's
main process, its workers), sampled from /proc while the run lasts.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "e2e"))
import harness  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    out = [root]
    for pid in out:
        out.extend(children.get(pid, []))
    return out


def _role(pid: int, root: int, cmdline: str) -> str:
    if pid == root:
        return "sort"
    if "-m\0photo_sorter_ml\0" in cmdline:
        return "ml_main"
    return "ml_workers"


def run_once(binary: str, python: str | None, folder: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="ps-alternate-") as tmp:
        work = Path(tmp)
        port, ml_port = harness.free_port(), harness.free_port()
        argv = [binary, "sort", str(folder), "--database", str(work / "db.sqlite"), "--port", str(port),
                "--ml-url", f"http://127.0.0.1:{ml_port}", "--no-progress", "--summary-json", str(work / "s.json")]
        env = harness.base_env(**({"PHOTO_SORTER_ML_PYTHON": python} if python else {}))
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cpu: dict[int, float] = {}
        roles: dict[int, str] = {}
        while proc.poll() is None:
            for pid in _descendants(proc.pid):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_text()
                except (OSError, IndexError):
                    continue
                cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
                # Once, from a cmdline after exec: a child between fork and exec shows its parent's, a zombie none.
                if pid not in roles and (pid == proc.pid or "python" in cmdline):
                    roles[pid] = _role(pid, proc.pid, cmdline)
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{binary} exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        summary = json.loads((work / "s.json").read_text())
    row = {"processed": summary["processed"], "faces": summary.get("faces"), "sort_s": summary["wall_seconds"],
           "photos_per_s": summary["processed"] / summary["wall_seconds"], "exit_s": wall}
    for role in ("sort", "ml_main", "ml_workers"):
        row[f"cpu_{role}_s"] = sum(seconds for pid, seconds in cpu.items() if roles.get(pid, "ml_workers") == role)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", required=True, help="NAME=BINARY[,ML_PYTHON] (repeat; runs alternate)")
    ap.add_argument("--folder", type=Path, default=harness.faces_dir())
    ap.add_argument("--rounds", type=int, default=3, help="measured runs per variant, after one warm-up run each")
    ap.add_argument("--json", type=Path, help="every run as JSON")
    args = ap.parse_args()
    variants = {}
    for v in args.variant:
        name, _, spec = v.partition("=")
        binary, _, python = spec.partition(",")
        variants[name] = (os.path.abspath(binary), python or None)
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for name, (binary, python) in variants.items():
        run_once(binary, python, args.folder)  # warm-up: page cache, bytecode
    for _ in range(args.rounds):
        for name, (binary, python) in variants.items():
            row = run_once(binary, python, args.folder)
            runs[name].append(row)
            print(name, {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    names = list(variants)
    print(f"\nmedian of {args.rounds} rounds ({args.folder}):\n")
    print("| measured | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key in ("processed", "faces", "sort_s", "photos_per_s", "exit_s", "cpu_sort_s", "cpu_ml_main_s",
                "cpu_ml_workers_s"):
        values = [statistics.median(r[key] for r in runs[n]) if all(r.get(key) is not None for r in runs[n]) else None
                  for n in names]
        print(f"| {key} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in values) + " |")
    first = statistics.median(r["photos_per_s"] for r in runs[names[0]])
    for n in names[1:]:
        print(f"\nphotos/s {n} / {names[0]}: {statistics.median(r['photos_per_s'] for r in runs[n]) / first:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"variants": {n: list(v) for n, v in variants.items()}, "runs": runs,
                                         "folder": str(args.folder)}, indent=2))


if __name__ == "__main__":
    main()
