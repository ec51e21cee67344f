"""Crash and fault scenarios: the real ML service (ArcFace) and the real `photo-sorter serve` (debug binary) on a subset
of lfw_small, with one fault injected mid-run in each scenario — SIGKILL of the service during the scan, during
callback commits and during a re-cluster; SIGKILL of an ML pool worker mid-photo; the ML service down for a while;
SQLite locked by another process; PostgreSQL connections dropped; the SQLite file system full.

After each fault, what was killed is restarted and the run finishes; then the invariants are read straight from the
database (`Invariants`): every photo of the folder has exactly one row and is PROCESSED, no face is stored twice,
persons' face and photo counts equal the real counts, and the person ids of photos that were PROCESSED before the
fault are unchanged. One row per scenario goes to the "faults" suite of e2e/reliability_log.py.

The PostgreSQL scenarios need PHOTO_SORTER_E2E_POSTGRES_URL (scripts/test.sh sets it); each uses a fresh database
of its own from scripts/start-postgres.sh. PostgreSQL itself is never killed: the server is shared by the whole test
run. The disk-full scenario mounts a tmpfs, so it needs root. PHOTO_SORTER_FAULTS_IDENTITIES (default 24 people,
132 photos) sizes the photo set, PHOTO_SORTER_FAULTS_TIMEOUT (default 120 s) how long a scenario may take to finish.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fault_harness import Invariants, Run, fresh_postgres  # noqa: E402
from reliability_log import record  # noqa: E402

LFW = harness.faces_dir() / "lfw_small"
PG_URL = os.environ.get("PHOTO_SORTER_E2E_POSTGRES_URL")
IDENTITIES = int(os.environ.get("PHOTO_SORTER_FAULTS_IDENTITIES", "24"))
pytestmark = pytest.mark.skipif(not LFW.is_dir(), reason=f"lfw_small not found at {LFW}")


# --------------------------------------------------------------------------- the photos

@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The first IDENTITIES people of lfw_small, hard-linked into a folder of their own."""
    root = tmp_path_factory.mktemp("faults-photos") / "lfw_subset"
    for ident in sorted(p for p in LFW.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))[:IDENTITIES]:
        harness.copy_tree(ident, root / ident.name)
    return root.resolve()


# --------------------------------------------------------------------------- the processes

def ml_workers_of(ml: harness.Process) -> list[int]:
    """Pids of the ML service's pool worker processes: its children that run multiprocessing's spawn or fork
    entry point (not the resource tracker)."""
    out = []
    for child in Path(f"/proc/{ml.proc.pid}/task/{ml.proc.pid}/children").read_text().split():
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "resource_tracker" not in cmd:
            out.append(int(child))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_count(run: Run, text: str) -> int:
    """How many lines of the service's logs (every start) contain `text`."""
    return sum(line.count(text) for log in run.workdir.glob("service-*.log")
               for line in log.read_text(errors="replace").splitlines())


def finish_scenario(name: str, run: Run, before: dict, what: str, recovery: float, extra: Optional[dict] = None) -> None:
    """Checks the invariants, records the row (also when they fail) and asserts them."""
    inv = Invariants(run.db, run.folder, before)
    s = inv.check()
    ok = not inv.violations
    outcome = f"{what}; {s['processed']}/{s['photos']} processed once, {s['faces']} faces" + (
        "" if ok else f"; VIOLATED: {', '.join(inv.violations)}")
    record("faults", name, outcome, ok, photos=s["photos"], lost=s["lost"], duplicated=s["duplicated"],
           person_ids_changed=s["person_ids_changed"], recovery_seconds=round(recovery, 1), **(extra or {}))
    print(f"\n[{name}] {outcome} (recovery {recovery:.1f} s)")
    assert ok, f"{name}: {json.dumps(inv.violations, default=str, indent=1)}\n{run.logs()}"


@pytest.fixture
def scenario(tmp_path, photos):
    runs: list[Run] = []

    def make(database: Optional[str] = None, **kw) -> Run:
        run = Run(tmp_path, photos, database, **kw)
        runs.append(run)
        return run
    yield make
    for run in runs:
        run.stop()


# --------------------------------------------------------------------------- the scenarios

# Empty files added to the mid-scan scenario (not queued, "empty file"): a scan commits about 2,000 entries per
# transaction, so 132 photos alone are one commit and there would be no "mid-scan" to kill the service in.
MID_SCAN_EMPTY_FILES = 30_000


@pytest.fixture
def empty_files(photos):
    """MID_SCAN_EMPTY_FILES empty files in a folder of the (module-wide) photo folder, removed afterwards."""
    filler = photos / "zz-empty-files"
    filler.mkdir()
    for n in range(MID_SCAN_EMPTY_FILES):
        (filler / f"empty-{n:05d}.dat").touch()
    yield filler
    shutil.rmtree(filler)


def test_service_killed_mid_scan_resumes_its_ingest_job_and_processes_every_photo_once(scenario, empty_files):
    run = scenario().start()
    total = len(harness.list_images(run.folder))
    entries = total + MID_SCAN_EMPTY_FILES
    job = run.ingest(batchSize=2)
    batches = f"SELECT completed_batches FROM ingest_jobs WHERE job_id = '{job}'"
    run.wait("a first transaction of batches committed", lambda: int(run.db.one(batches)) >= 3, every=0.01)
    before = run.db.person_ids()
    run.kill(run.swift)
    batches_at_kill = int(run.db.one(batches))
    t0 = time.monotonic()
    run.start_swift()
    final = run.finish(job)
    recovery = time.monotonic() - t0
    assert batches_at_kill < -(-entries // 2), "the scan had finished before the kill"
    assert final["status"] == "COMPLETED" and final["scanned"] == entries, final
    assert final["not_queued_count"] == MID_SCAN_EMPTY_FILES, final
    finish_scenario("kill -9 service during ingest", run, before,
                    f"killed at {batches_at_kill}/{-(-entries // 2)} batches; job resumed and COMPLETED", recovery, {"batches_at_kill": batches_at_kill})


def test_service_killed_three_times_while_callbacks_commit_loses_and_repeats_nothing(scenario):
    run = scenario().start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    before: dict = {}
    moments = []
    recovery = 0.0
    for fraction in (0.2, 0.5, 0.8):
        run.wait(f"{fraction:.0%} processed", lambda: run.processed() >= fraction * total, every=0.05)
        snapshot = run.db.person_ids()
        run.kill(run.swift)
        moments.append(len(snapshot))
        before.update(snapshot)  # the latest snapshot: every photo PROCESSED when the service was killed
        t0 = time.monotonic()
        run.start_swift()
        recovery += time.monotonic() - t0
    t0 = time.monotonic()
    run.finish(job)
    recovery += time.monotonic() - t0
    finish_scenario("kill -9 service during callback commits (x3)", run, before,
                    f"killed at {', '.join(f'{m}/{total}' for m in moments)} processed; restarted each time",
                    recovery, {"kills": len(moments)})


def test_service_killed_mid_recluster_changes_nothing_and_a_rerun_completes(scenario):
    """The library is sorted, then the service restarts with a stricter threshold, so that a re-cluster moves faces.
    Rule checked: a re-cluster is one transaction, so the one killed while RUNNING changed nothing — every photo
    keeps the person ids it had before it (compared with the snapshot taken before POST /recluster), and the job
    is FAILED after the restart. A re-cluster run to the end afterwards moves faces legitimately: after it, only the
    counts and links are checked (its own result, not the old ids)."""
    run = scenario().start()
    run.finish(run.ingest(batchSize=10))
    run.swift.stop()
    run.swift_env["PHOTO_SORTER_MATCH_THRESHOLD"] = 0.6
    run.start_swift()
    before = run.db.person_ids()
    job = run.post("/recluster", {})["job_id"]
    started = time.monotonic()
    state = run.db.one(f"SELECT status FROM recluster_jobs WHERE job_id = '{job}'")
    run.kill(run.swift)
    killed_after = time.monotonic() - started
    t0 = time.monotonic()
    run.start_swift()
    recovery = time.monotonic() - t0
    after_restart = run.db.one(f"SELECT status FROM recluster_jobs WHERE job_id = '{job}'")
    inv = Invariants(run.db, run.folder, before)
    inv.check()
    assert state == "RUNNING" and after_restart == "FAILED", (state, after_restart)
    assert not inv.violations, inv.violations
    rerun = run.post("/recluster", {})["job_id"]
    done = run.wait("re-cluster done", lambda: (s := harness.http_json("GET", f"{run.base}/recluster/{rerun}"))["done"] and s)
    assert done["status"] == "COMPLETED", done
    result = done["result"]
    assert result["faces_moved"] > 0, f"the stricter threshold moved no face, so the kill proved nothing: {result}"
    finish_scenario("kill -9 service during a re-cluster", run, run.db.person_ids(),
                    f"killed {killed_after * 1000:.0f} ms into a re-cluster that takes {result['seconds']:.2f} s "
                    f"(job {state}, {after_restart} after restart, no person id changed); the re-run COMPLETED moving "
                    f"{result['faces_moved']} faces", recovery,
                    {"killed_after_ms": round(killed_after * 1000), "recluster_seconds": round(result["seconds"], 2),
                     "faces_moved_by_rerun": result["faces_moved"]})


def test_ml_worker_killed_mid_photo_its_photos_are_retried_and_processed_once(scenario):
    run = scenario().start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    killed = []
    before: dict = {}
    for fraction in (0.25, 0.6):
        run.wait(f"{fraction:.0%} processed", lambda: run.processed() >= fraction * total, every=0.05)
        before.update(run.db.person_ids())
        workers = ml_workers_of(run.ml)
        assert workers, "no ML pool worker found"
        os.kill(workers[0], signal.SIGKILL)
        killed.append(workers[0])
    t0 = time.monotonic()
    run.finish(job)
    recovery = time.monotonic() - t0
    rerun = sum(log.read_text(errors="replace").count("(attempt 1); restarting the pool") for log in run.workdir.glob("ml-*.log"))
    finish_scenario("kill -9 ML pool worker mid-photo (x2)", run, before,
                    f"killed worker pids {killed} at 25% and 60%; {rerun} jobs of the broken pools ran again", recovery,
                    {"jobs_rerun": rerun})


def test_ml_service_down_for_a_while_photos_wait_and_are_processed_once_it_is_back(scenario):
    """Down longer than the whole retry budget (2 retries, 1 s backoff) and with the production processing timeout
    (600 s): photos must wait for the ML service without using up their retries, and the photos it held when it was
    killed must be retried once it is back (it restarted after they were handed over), not 600 s later."""
    run = scenario(PHOTO_SORTER_MAX_RETRIES=2, PHOTO_SORTER_PROCESSING_TIMEOUT_SECONDS=600).start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    run.wait("30% processed", lambda: run.processed() >= 0.3 * total, every=0.05)
    before = run.db.person_ids()
    run.kill(run.ml)
    down = 20.0
    time.sleep(down)
    at_restart = dict(run.db.counts())
    t0 = time.monotonic()
    run.start_ml()
    run.finish(job)
    recovery = time.monotonic() - t0
    assert at_restart.get("FAILED", 0) == 0, f"photos were failed while the ML service was down: {at_restart}"
    finish_scenario("ML service down 20 s", run, before,
                    f"ML service killed at {len(before)}/{total} processed, down {down:.0f} s (photos then {at_restart}); "
                    f"the photos it held retried once it was back", recovery, {"down_seconds": down})


def test_sqlite_locked_by_another_process_for_10_s_the_run_waits_and_finishes(scenario):
    run = scenario().start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    run.wait("30% processed", lambda: run.processed() >= 0.3 * total, every=0.05)
    before = run.db.person_ids()
    held = 10.0
    con = sqlite3.connect(run.database, timeout=30, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    cpu0 = cpu_seconds(run.swift.proc.pid)
    time.sleep(held)
    cpu = cpu_seconds(run.swift.proc.pid) - cpu0
    during = int(con.execute("SELECT COUNT(*) FROM photos WHERE status = 'PROCESSED'").fetchone()[0])
    con.execute("COMMIT")
    con.close()
    t0 = time.monotonic()
    run.finish(job)
    recovery = time.monotonic() - t0
    # Waiting for the lock sleeps: SQLiteNIO's own busy handler spun a core for as long as the lock lasted.
    assert cpu < 0.3 * held, f"the service used {cpu:.1f} s of CPU while the database was locked for {held:.0f} s"
    locked = log_count(run, "database is locked")
    finish_scenario("SQLite locked 10 s (BEGIN EXCLUSIVE)", run, before,
                    f"locked at {len(before)}/{total} processed for {held:.0f} s ({during} processed when released; "
                    f"{cpu:.1f} s service CPU meanwhile; {locked} statements failed 'locked', their callbacks retried)",
                    recovery, {"locked_seconds": held, "service_cpu_seconds_while_locked": round(cpu, 2),
                               "locked_errors": locked})


@pytest.mark.skipif(not PG_URL, reason="PHOTO_SORTER_E2E_POSTGRES_URL not set (scripts/test.sh sets it)")
def test_postgres_connections_dropped_four_times_mid_run_the_service_reconnects_and_finishes(scenario):
    """Before PhotoSorterDatabase drove PostgreSQL transactions itself, one or two terminations wedged the service:
    Fluent's ROLLBACK on the closing connection was never answered (PostgresNIO 1.33), the pool's connections stayed
    held, and every database request timed out waiting for one until a restart."""
    run = scenario(fresh_postgres("photo_sorter_faults_drop")).start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    terminate = ("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
    dropped = []
    before: dict = {}
    t0 = time.monotonic()
    try:
        for fraction in (0.2, 0.4, 0.6, 0.8):
            run.wait(f"{fraction:.0%} processed", lambda: run.processed() >= fraction * total, every=0.2)
            before.update(run.db.person_ids())
            dropped.append(int(run.db.one(terminate)))
            t0 = time.monotonic()
        run.finish(job)
    except TimeoutError:
        wedged = log_count(run, "Connection request timed out")
        record("faults", "PostgreSQL connections dropped (x4)",
               f"pg_terminate_backend of {dropped} service connections; the service wedged: {wedged} database requests "
               f"timed out waiting for a pool connection, {run.processed()}/{total} processed after "
               f"{time.monotonic() - t0:.0f} s", False, photos=total, wedged_requests=wedged)
        raise
    recovery = time.monotonic() - t0
    finish_scenario("PostgreSQL connections dropped (x4)", run, before,
                    f"pg_terminate_backend of {dropped} service connections at 20, 40, 60 and 80%", recovery,
                    {"connections_dropped": dropped})


@pytest.mark.skipif(not PG_URL, reason="PHOTO_SORTER_E2E_POSTGRES_URL not set (scripts/test.sh sets it)")
def test_service_killed_during_callback_commits_on_postgres_its_photos_are_recovered(scenario):
    run = scenario(fresh_postgres("photo_sorter_faults_kill")).start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    run.wait("40% processed", lambda: run.processed() >= 0.4 * total, every=0.2)
    before = run.db.person_ids()
    run.kill(run.swift)
    t0 = time.monotonic()
    run.start_swift()
    run.finish(job)
    recovery = time.monotonic() - t0
    finish_scenario("kill -9 service during callback commits (PostgreSQL)", run, before,
                    f"killed at {len(before)}/{total} processed; restarted", recovery)


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs for the database, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> int:
    """Writes `path` until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError:
                break
        while True:  # the last partial MiB
            try:
                written += f.write(b"\0" * 4096)
            except OSError:
                return written


def test_disk_full_under_the_sqlite_database_fails_commits_cleanly_and_the_run_finishes_once_space_is_back(scenario, small_disk):
    run = scenario(str(small_disk / "photo-sorter.sqlite")).start()
    total = len(harness.list_images(run.folder))
    job = run.ingest(batchSize=10)
    run.wait("30% processed", lambda: run.processed() >= 0.3 * total, every=0.05)
    before = run.db.person_ids()
    ballast = small_disk / "ballast"
    size = fill(ballast)
    held = 8.0
    time.sleep(held)
    during = run.processed()
    ballast.unlink()
    t0 = time.monotonic()
    run.finish(job)
    recovery = time.monotonic() - t0
    assert run.swift.alive()
    full = log_count(run, "disk is full")
    finish_scenario("disk full under the SQLite database", run, before,
                    f"file system filled ({size >> 20} MiB ballast) at {len(before)}/{total} processed for {held:.0f} s "
                    f"({during} processed when freed; {full} statements failed 'disk is full', the requests answered "
                    f"500 and were retried); service stayed up", recovery, {"full_seconds": held, "disk_full_errors": full})
