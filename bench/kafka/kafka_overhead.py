#!/usr/bin/env python3
"""Kafka work queue overhead: `photo-sorter sort` on lfw_small with PHOTO_SORTER_QUEUE=kafka beside the database queue.

    ml-service/.venv/bin/python bench/kafka/kafka_overhead.py [--rounds 2] [--results-md]

Starts Tansu with scripts/start-kafka.sh (in memory, a free port; the librdkafka 2.16 it needs goes on
LD_LIBRARY_PATH for the Kafka runs only), then alternates `photo-sorter sort <lfw_small copy>` runs on fresh SQLite
databases: database queue, Kafka queue (its own topic per run), `--rounds` times. Each `sort` starts its own ML
service. Reports per run wall_seconds, ml_seconds / ml_workers (ML busy time per worker) and the time the ML workers
were not busy as a share of ML time, (wall - ML) / ML. The Kafka queue's overhead is the difference of the medians of
that share, Kafka runs minus database runs: normalising by each run's own ML time keeps the figure meaningful when
other load on the machine slows the ML service down in some runs (raw wall medians are reported too).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e"))
import harness  # noqa: E402


def start_broker() -> str:
    env = dict(os.environ, PHOTO_SORTER_KAFKA_PORT="0")
    out = subprocess.run([str(REPO / "scripts" / "start-kafka.sh")], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def one_sort(binary: Path, folder: Path, work: Path, name: str, timeout: float, env: dict) -> dict:
    db = work / f"{name}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    rc, summary, outer = harness.run_sort(binary, folder, str(db), work / f"{name}.json", work / f"{name}.log",
                                          timeout=timeout, extra_args=["--no-recluster"], **env)
    if summary is None or rc != 0:
        print((work / f"{name}.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        sys.exit(f"{name}: photo-sorter sort exited {rc}")
    wall = float(summary["wall_seconds"])
    workers = max(1, int(summary.get("ml_workers") or 1))
    ml_per_worker = float(summary["ml_seconds"]) / workers
    run = {"name": name, "processed": summary["processed"], "failed": summary["failed"], "faces": summary["faces"],
           "persons": summary["persons"], "wall_seconds": wall, "ml_seconds_per_worker": round(ml_per_worker, 2),
           "ml_workers": workers, "process_wall_seconds": round(outer, 2),
           "overhead_share": round(1 - ml_per_worker / wall, 4) if wall else None,
           "not_ml_of_ml": round((wall - ml_per_worker) / ml_per_worker, 4) if ml_per_worker else None}
    print(f"[kafka-bench] {name}: {run['processed']} processed, {run['failed']} failed in {wall:.1f}s "
          f"(ML {ml_per_worker:.1f}s per worker; overhead share {run['overhead_share']})", file=sys.stderr, flush=True)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="database/Kafka run pairs (default 2)")
    ap.add_argument("--binary", type=Path, help="photo-sorter binary (default: $PHOTO_SORTER_BIN, release, debug)")
    ap.add_argument("--faces-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--results-md", type=Path, nargs="?", const=HERE.parent / "RESULTS.md",
                    help="write the '## Kafka queue overhead' section of this file (default bench/RESULTS.md)")
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args(argv)

    faces = (args.faces_dir or harness.faces_dir()).resolve()
    binary = Path(os.path.abspath(args.binary)) if args.binary else harness.find_binary(prefer_release=True)
    work = Path(tempfile.mkdtemp(prefix="photo-sorter-kafka-bench-"))
    started = False
    try:
        folder = work / "lfw_small"
        harness.copy_tree(faces / "lfw_small", folder)
        photos = len(harness.list_images(folder))
        brokers = start_broker()
        started = True
        print(f"[kafka-bench] {photos} photos; Tansu at {brokers}", file=sys.stderr, flush=True)
        kafka_lib = str(REPO / ".build-kafka" / "lib")
        runs = []
        load = {}
        for round_ in range(1, args.rounds + 1):
            load[f"before database {round_}"] = os.getloadavg()[0]
            runs.append(one_sort(binary, folder, work, f"database-{round_}", args.timeout, {}))
            load[f"before kafka {round_}"] = os.getloadavg()[0]
            runs.append(one_sort(binary, folder, work, f"kafka-{round_}", args.timeout, {
                "PHOTO_SORTER_QUEUE": "kafka", "PHOTO_SORTER_KAFKA_BROKERS": brokers,
                "PHOTO_SORTER_KAFKA_TOPIC": f"photos-to-process-bench-{uuid.uuid4().hex[:8]}",
                "LD_LIBRARY_PATH": kafka_lib + (":" + os.environ["LD_LIBRARY_PATH"] if os.environ.get("LD_LIBRARY_PATH") else ""),
            }))
        db_runs = [r for r in runs if r["name"].startswith("database")]
        kafka_runs = [r for r in runs if r["name"].startswith("kafka")]
        db_wall = statistics.median(r["wall_seconds"] for r in db_runs)
        kafka_wall = statistics.median(r["wall_seconds"] for r in kafka_runs)
        ml = statistics.median(r["ml_seconds_per_worker"] for r in runs)
        db_idle = statistics.median(r["not_ml_of_ml"] for r in db_runs)
        kafka_idle = statistics.median(r["not_ml_of_ml"] for r in kafka_runs)
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": harness.machine_description(),
            "binary": os.path.relpath(binary, REPO), "photos": photos, "brokers": brokers, "runs": runs,
            "load_average_1m": load,
            "median_wall_seconds": {"database": db_wall, "kafka": kafka_wall},
            "median_ml_seconds_per_worker": ml,
            "median_not_ml_of_ml": {"database": db_idle, "kafka": kafka_idle},
            "kafka_overhead_of_ml_time": round(kafka_idle - db_idle, 4),
            "kafka_overhead_of_ml_time_raw_walls": round((kafka_wall - db_wall) / ml, 4) if ml else None,
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
        if args.results_md:
            harness.update_results_section(args.results_md, "Kafka queue overhead (lfw_small)", markdown(result, argv))
        return 0
    finally:
        if started:
            subprocess.run([str(REPO / "scripts" / "stop-kafka.sh")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def markdown(r: dict, argv) -> str:
    args = list(argv if argv is not None else sys.argv[1:])
    cmd = " ".join(shlex.quote(a) for a in ["ml-service/.venv/bin/python", "bench/kafka/kafka_overhead.py", *args])
    lines = [
        f"Measured {r['date']} on {r['machine']}; binary `{r['binary']}`; broker Tansu 0.6 (in memory, same machine) "
        "through librdkafka 2.16; default model, `--no-recluster`; 1-minute load average: "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["load_average_1m"].items()) + ".",
        "",
        "```",
        cmd,
        "```",
        "",
        f"`lfw_small` ({r['photos']} photos), each run on a fresh SQLite database with its own ML service; the two queues "
        "alternate in one invocation.",
        "",
        "| run | processed | failed | faces | persons | wall s | ML s per worker | (wall − ML) / ML |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        lines.append(f"| {run['name']} | {run['processed']} | {run['failed']} | {run['faces']} | {run['persons']} "
                     f"| {run['wall_seconds']:.1f} | {run['ml_seconds_per_worker']:.1f} | {100 * run['not_ml_of_ml']:.1f}% |")
    m = r["median_wall_seconds"]
    i = r["median_not_ml_of_ml"]
    lines += [
        "",
        f"Kafka queue overhead = median (wall − ML) / ML of the Kafka runs − that of the database runs = "
        f"{100 * i['kafka']:.1f}% − {100 * i['database']:.1f}% = **{100 * r['kafka_overhead_of_ml_time']:.1f}% of ML time** "
        "(bar: at most 5%). ML time is `ml_seconds / ml_workers` from each run's summary (time the ML "
        "workers spent on photos); the rest of the wall time is scanning, queueing, callbacks, identity resolution and "
        "the idle tail, plus, with Kafka, publishing, the consumer's fetches and offset commits.",
        "",
        f"From the raw medians instead: (Kafka wall {m['kafka']:.1f} s − database wall {m['database']:.1f} s) / "
        f"ML {r['median_ml_seconds_per_worker']:.1f} s = {100 * r['kafka_overhead_of_ml_time_raw_walls']:.1f}%, "
        "which other load on the machine moves by several seconds between runs (see the ML column).",
        "",
        "Where the Kafka time goes: a consumer's first join of its group takes about 3 s on Tansu; the service joins while "
        "`sort` starts the ML service, so it is not on the clock (joined only when the workers started, it cost 11–13% "
        "of ML time on this set). The consumer keeps up to 8 × `PHOTO_SORTER_WORKERS` messages ahead of the workers and "
        "fetches with `fetch.wait.max.ms=100`, so workers do not wait on a fetch; publishing is asynchronous (delivery "
        "reports set the batch status) and offset commits are batched every 100 ms.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
