"""Where `photo-sorter sort`'s time goes before the first photo is in flight, and its wall time end to end.

Runs `sort` on a folder with a fresh SQLite database each time and puts on one timeline (ms since the process was
started): the summary's `timeline` (`--summary-json`), the "models loaded" line of the ML child's log, and the
process's exit. With several binaries the runs alternate (a, b, a, b, …) after one warm-up run of each. A binary may
name the Python its ML child runs (`NAME=PATH,PYTHON`: PHOTO_SORTER_ML_PYTHON; the child runs the `photo_sorter_ml`
beside that venv), so one binary can be compared with two versions of the ML service.

    flock /tmp/photo-sorter-bench.lock ml-service/.venv/bin/python bench/startup/startup.py \
        --binary before=/tmp/photo-sorter-before --binary after=.build/release/photo-sorter --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FOLDER = ROOT.parent / "shared/testdata/faces/face_recognition_examples"
# Columns in timeline order: the summary's steps, the ML log's, and the exit.
STEPS = ["command_started_ms", "database_ready_ms", "ml_spawned_ms", "ml_listening_ms", "models_loaded_ms",
         "scan_started_ms", "first_in_flight_ms", "last_callback_ms", "sort_done_ms", "exit_ms"]
MODELS_LOADED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*models loaded in")


def log_time_ms(line: str) -> int | None:
    """ms since 1970 of a Python logging line (`asctime`, this machine's local time)."""
    m = MODELS_LOADED.match(line)
    if not m:
        return None
    return int(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() * 1000) + int(m.group(2))


def run_once(binary: str, folder: Path, ports: tuple[int, int]) -> dict:
    binary, _, python = binary.partition(",")
    env = {**os.environ, "PHOTO_SORTER_ML_PYTHON": python} if python else None
    with tempfile.TemporaryDirectory(prefix="ps-startup-") as tmp:
        work = Path(tmp)
        cmd = [binary, "sort", str(folder), "--database", str(work / "db.sqlite"), "--port", str(ports[0]),
               "--ml-url", f"http://127.0.0.1:{ports[1]}", "--no-progress", "--summary-json", str(work / "s.json")]
        t0 = time.time() * 1000
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        exit_ms = time.time() * 1000 - t0
        if proc.returncode != 0:
            raise SystemExit(f"{binary} exited {proc.returncode}: {proc.stderr[-2000:]}")
        summary = json.loads((work / "s.json").read_text())
        timeline = summary.get("timeline", {})
        started = timeline.get("started_at_ms")
        row = {"exit_ms": exit_ms, "processed": summary["processed"], "sort_seconds": summary["wall_seconds"]}
        if started is not None:
            offset = started - t0
            row["command_started_ms"] = offset
            row.update({k: v + offset for k, v in timeline.items() if k.endswith("_ms") and k != "started_at_ms"})
            log = work / "ml-service.log"
            loaded = next((t for t in map(log_time_ms, log.read_text().splitlines()) if t), None) if log.exists() else None
            if loaded is not None:
                row["models_loaded_ms"] = loaded - t0
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", required=True, help="NAME=PATH[,ML_PYTHON] (repeat to compare, runs alternate)")
    ap.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    ap.add_argument("--runs", type=int, default=3, help="measured runs per binary, after one warm-up run each")
    ap.add_argument("--ports", default="18080,18001", help="service and ML ports (free ones: nothing may answer)")
    ap.add_argument("--json", type=Path, help="every run as JSON")
    args = ap.parse_args()
    binaries = dict(b.split("=", 1) for b in args.binary)
    ports = tuple(int(p) for p in args.ports.split(","))
    runs: dict[str, list[dict]] = {name: [] for name in binaries}
    for name, path in binaries.items():
        run_once(path, args.folder, ports)  # warm-up: file cache, Python bytecode
    for _ in range(args.runs):
        for name, path in binaries.items():
            row = run_once(path, args.folder, ports)
            runs[name].append(row)
            print(name, {k: round(v) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    print(f"\nmedian of {args.runs} runs, ms since the process started ({args.folder.name}):\n")
    print("| step | " + " | ".join(binaries) + " |")
    print("|---|" + "---:|" * len(binaries))
    for step in STEPS:
        cells = []
        for name in binaries:
            values = [r[step] for r in runs[name] if step in r]
            cells.append(f"{statistics.median(values):.0f}" if len(values) == len(runs[name]) else "–")
        print(f"| {step.removesuffix('_ms')} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
