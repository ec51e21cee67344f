"""Load: 20 concurrent `POST /ingest-folder` of overlapping folders through the real services, and a replay of
recorded ArcFace callbacks at full speed (bench/commit/bench_commit.py, the real service, no ML model).

The ingest part sorts 40 people of lfw_small laid out as `<root>/a/<20 people>` and `<root>/b/<20 people>`; 20
threads post at once: the whole tree 4 times, `a` and `b` 4 times each, and 8 single-person folders (4 of them in
`a`, 4 in `b`). Every job must complete, every photo have one row (the path is unique) and be PROCESSED once, no face
be stored twice. The replay posts PHOTO_SORTER_LOAD_CALLBACKS (default 1,000) callbacks with 16 concurrent clients
and asserts 0 errors; the 10,000-callback run is a benchmark, not a test:
`bench/commit/bench_commit.py --callbacks 10000 --runs sqlite:1 postgres:1`.
One row per part goes to the "load" suite of e2e/reliability_log.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fault_harness import Invariants, Run  # noqa: E402
from reliability_log import record  # noqa: E402

LFW = harness.faces_dir() / "lfw_small"
RECORDING = harness.REPO / "bench" / "out" / "embeddings-arcface.json"
CALLBACKS = int(os.environ.get("PHOTO_SORTER_LOAD_CALLBACKS", "1000"))

pytestmark = pytest.mark.skipif(not LFW.is_dir(), reason=f"lfw_small not found at {LFW}")


def overlapping_tree(root: Path) -> list[Path]:
    """Lays out 40 people as root/a/* and root/b/*; returns the 20 folders the concurrent requests ingest."""
    people = sorted(p for p in LFW.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))[:40]
    for i, person in enumerate(people):
        harness.copy_tree(person, root / ("a" if i < 20 else "b") / person.name)
    a, b = root / "a", root / "b"
    singles = [a / p.name for p in people[:4]] + [b / p.name for p in people[20:24]]
    return [root] * 4 + [a] * 4 + [b] * 4 + singles


def test_twenty_concurrent_ingests_of_overlapping_folders_store_each_photo_once_and_every_job_completes(tmp_path):
    root = (tmp_path / "photos").resolve()
    folders = overlapping_tree(root)
    run = Run(tmp_path / "run", root)
    run.workdir.mkdir()
    try:
        run.start()
        barrier = threading.Barrier(len(folders))
        jobs: list = [None] * len(folders)
        errors: list = []

        def post(i: int, folder: Path) -> None:
            barrier.wait()
            try:
                jobs[i] = run.post("/ingest-folder", {"path": str(folder), "recursive": True, "batchSize": 10})["jobId"]
            except Exception as e:  # noqa: BLE001 - every failed request is reported
                errors.append(f"{folder}: {e}")

        t0 = time.monotonic()
        threads = [threading.Thread(target=post, args=(i, f)) for i, f in enumerate(folders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        total = len(harness.list_images(root))
        run.wait("every photo PROCESSED", lambda: run.processed() >= total, every=0.5)
        statuses = [run.wait(f"job {j} done", lambda j=j: (s := run.job(j)).get("done") and s, every=0.5) for j in jobs]
        wall = time.monotonic() - t0
        not_completed = {j: s["status"] for j, s in zip(jobs, statuses) if s["status"] != "COMPLETED" or s["failed"]}
        scanned = sum(s["scanned"] for s in statuses)
        inserted = sum(s["inserted"] for s in statuses)
        inv = Invariants(run.db, root, {})
        summary = inv.check()
        ok = not inv.violations and not not_completed and inserted == total
        record("load", "20 concurrent POST /ingest-folder, overlapping folders",
               f"{len(jobs)} jobs COMPLETED ({len(not_completed)} not); {scanned} files scanned in all, {inserted} rows "
               f"inserted for {total} photos; {summary['processed']}/{total} PROCESSED once; {wall:.1f} s", ok,
               jobs=len(jobs), jobs_not_completed=len(not_completed), photos=total, scanned=scanned, inserted=inserted,
               lost=summary["lost"], duplicated=summary["duplicated"], wall_seconds=round(wall, 1))
        print(f"\n[load] 20 concurrent ingests: {scanned} scanned, {inserted} inserted for {total} photos, {wall:.1f} s")
        assert not not_completed, not_completed
        assert inserted == total, f"{inserted} rows inserted by the jobs for {total} photos"
        assert not inv.violations, json.dumps(inv.violations, default=str, indent=1)
    except BaseException:
        print(run.logs(), file=sys.stderr)
        raise
    finally:
        run.stop()


def recorded_results(tmp_path: Path) -> tuple[Path, str]:
    """(recording, set) to replay: the lfw_scale recording of the benchmarks when this checkout has it, else a fresh
    recording of lfw_small by the ML pipeline itself (bench/accuracy/record_embeddings.py, about a minute), so the
    replay runs on a fresh clone too."""
    if RECORDING.is_file():
        return RECORDING, "lfw_scale"
    out = tmp_path / "embeddings-arcface-lfw_small.json"
    cmd = [sys.executable, str(harness.REPO / "bench" / "accuracy" / "record_embeddings.py"), "--model", "arcface",
           str(LFW), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=harness.REPO)
    assert r.returncode == 0 and out.is_file(), f"record_embeddings.py exited {r.returncode}:\n{r.stderr[-4000:]}"
    return out, "lfw_small"


def test_replay_of_recorded_callbacks_at_full_speed_commits_every_one_without_error(tmp_path):
    recording, photo_set = recorded_results(tmp_path)
    report = tmp_path / "replay.json"
    cmd = [sys.executable, str(harness.REPO / "bench" / "commit" / "bench_commit.py"), "--callbacks", str(CALLBACKS),
           "--embeddings", str(recording), "--set", photo_set,
           "--runs", "sqlite:1", "--binary", str(harness.find_binary()), "--json", str(report),
           "--workdir", str(tmp_path / "work")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=harness.REPO)
    assert r.returncode == 0 and report.is_file(), f"bench_commit.py exited {r.returncode}:\n{r.stderr[-4000:]}"
    run = json.loads(report.read_text())["runs"][0]
    checks = run["checks"]
    ok = run["callbacks"] == CALLBACKS and checks["errors"] == 0 and all(
        v for k, v in checks.items() if k not in ("errors", "first_errors"))
    record("load", f"replay of {CALLBACKS:,} recorded callbacks ({photo_set}), SQLite, debug binary",
           f"{run['callbacks']:,} callbacks, {checks['errors']} errors, {run['commits_per_s']:.0f} commits/s, p99 "
           f"{run['latency_ms']['p99']:.0f} ms", ok, callbacks=run["callbacks"], errors=checks["errors"],
           commits_per_s=round(run["commits_per_s"], 1), p99_ms=round(run["latency_ms"]["p99"], 1))
    print(f"\n[load] replay: {run['callbacks']} callbacks, {checks['errors']} errors, {run['commits_per_s']:.0f} commits/s")
    assert ok, checks
