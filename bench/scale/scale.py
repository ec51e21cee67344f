#!/usr/bin/env python3
r"""Issue 12, "a million photos on one machine": what the real `photo-sorter serve` does with a large library.

    ml-service/.venv/bin/python bench/scale/scale.py [--sizes 100k 1m] [--databases sqlite postgres] \
        [--library 1m:sqlite=/tmp/scale/lib-1m-512.sqlite] [--library 1m:postgres=postgres://.../photo_sorter_scale_1m] \
        [--only startup,reads,dump,callbacks,recluster,scan,sort] [--tree DIR] [--binary PATH] \
        [--json bench/out/scale.json] [--results-md]
    ml-service/.venv/bin/python bench/scale/scale.py --from-json bench/out/scale.json --results-md
        (rewrites the bench/RESULTS.md section from an earlier report without running)

**What is simulated and what is real.** The service, its database (SQLite file or PostgreSQL of
`scripts/start-postgres.sh`), the HTTP API and every query are real: the binary runs as `photo-sorter serve`.
The *library* is synthetic: `bench/scale/generate_library.py` writes an already-processed library (photos
PROCESSED under `/library/...`, persons, random unit-length embeddings, photo_persons) straight into the schema
of `photo-sorter migrate`. No photo file of the library exists, so nothing here reads images except the scan
(`generate_tree.py`: tiny distinct JPEGs) and `sort` (which runs the real ML service on them). The callbacks are
real ArcFace results recorded by the ML pipeline (`bench/out/embeddings-arcface.json`, `lfw_scale`), replayed
by this script as if it were the ML service (as `bench/commit/bench_commit.py` does); their faces are real people
and the library's persons are random vectors, so they mostly create new persons -- the identity search still
scans every person of the library.

Sizes (`--sizes`): `100k` = 70,000 photos / 10,000 persons / 100,000 faces, `1m` = 1,000,000 photos /
100,000 persons / 1,000,000 faces; 512-d embeddings (`--dim`). A library is taken from `--library SIZE:DB=...`
or generated into the work directory (SQLite) or a database `photo_sorter_scale_gen_SIZE` (PostgreSQL). The
script refuses (exit 2) a library that the generator did not make, unless `--force`. It never writes to the
library given: each configuration runs on a copy (SQLite: `cp` into the work directory; PostgreSQL:
`CREATE DATABASE ... TEMPLATE`, dropped afterwards).

Per configuration (size x database), on the copy, in this order:

1. **startup** -- `BINARY serve` (env: `PHOTO_SORTER_DATABASE_URL`, `PHOTO_SORTER_PORT`, `PHOTO_SORTER_ML_URL` on a dead port,
   a 32-character `PHOTO_SORTER_SHARED_SECRET`, `PHOTO_SORTER_WORKERS=1`) is started `--startup-runs` times
   (default 2; the last one stays up for the rest): time from exec until the first `GET /health` answers 200
   (polled every 20 ms), `VmRSS` and `VmHWM` of /proc/PID/status right then, and `persons` of /health must equal
   the library's persons. RSS/HWM are also read after each later phase and at the end.
2. **reads** -- sequential requests on one keep-alive connection, time from sending to the last body byte:
   `GET /photos?limit=500` keyset pages (after_id = previous page's last id, from 0, wrapping), with random
   `after_id` over the id range, and `?status=PROCESSED&limit=500` keyset pages; `GET /person/{id}` of random
   persons and of the 10 persons with the most faces; `GET /persons?limit=100` (first page, and random offsets);
   `GET /person/{id}/photos?limit=100` (random persons and the 10 largest). p50/p99/max and bytes per answer,
   `--read-requests` (default 200) per kind (100 for the person lists), but a kind stops after `--read-budget`
   seconds (60; at least `--read-min-requests`, 20): the report gives n. Every answer must be 200.
   Then the PROCESSING photos the callbacks of 3 and 4 need are added to the database (ids above the library's)
   while the service runs.
3. **dump** -- the full `GET /person-dump?since_id=&limit=5000` paging with the shared secret in
   `X-Photo-Sorter-Secret` and `Accept-Encoding: gzip`, as the ML service pulls it: total time, bytes on the wire
   and decoded, persons (must equal the library's). Then 100 callbacks (paced, as in 5a) and the incremental
   dump (`?since_seq=SEQ&epoch=EPOCH` of the full dump): time, bytes, persons in it.
4. **callbacks** -- replay of recorded 512-d ArcFace results to `POST /callback/photo-processed`: (a) paced:
   `--paced-callbacks` (500) sent at `--paced-rate`/s (20: about what a 2-core ML machine produces) on an open
   schedule (a callback is sent at its time whether or not earlier ones answered); (b) full speed:
   `--burst-callbacks` (1000) from `--burst-concurrency` (8) clients. Latency at the client p50/p99/max,
   commits/s; every answer must be 200 with `ok`.
5. **recluster** -- `POST /recluster` (shared secret), polled every 0.5 s at `GET /recluster/{job}` until done or
   `--recluster-timeout` (900 s): wall time, or "timed out" (the service is then stopped; the job's single
   transaction rolls back on the copy). If the POST itself fails (seen on SQLite: 500 after 10 s while the job
   runs on), the job is found and followed in `recluster_jobs` (read-only). A status poll that fails (e.g. HTTP 500 while the job holds the only
   SQLite connection) is counted and polling goes on; `GET /health` latency during the job is recorded too.

Once (not per size):

6. **scan** -- on `--tree` (default: `generate_tree.py` makes `--tree-files` (100,000) files in the work directory):
   (a) dry run on an empty SQLite database: `POST /ingest-folder {"path", "recursive": true, "dryRun": true}`,
   one run to warm the page cache, then `--scan-runs` (3) measured: files/s = `scanned` / time from POST to status
   COMPLETED (polled every `--scan-poll` s, 0.05; each poll is a database read the scan competes with); (b) scan + insert into an empty database (SQLite, and PostgreSQL when selected)
   with `PHOTO_SORTER_QUEUE_HIGH_WATERMARK=100000000` and no ML service reachable: files/s until status SCANNED,
   and the `photos` rows must equal the files. `PHOTO_SORTER_ALLOWED_ROOTS` is the tree.
7. **sort** -- `BINARY sort TREE --database NEW.sqlite --no-progress` on trees of `--sort-sizes` (2,000 and
   10,000) tiny JPEGs without faces; `sort` starts the real ML service as its child. Peak RSS: VmHWM of the
   `sort` process (polled every 50 ms), and separately the peak of the summed VmRSS of its child processes
   (the ML service and its workers). If the first tree projects the largest one past `--sort-max-seconds`,
   1,000 and 5,000 are used instead. `--skip-sort` skips it.

Output: the JSON report (`--json`, default bench/out/scale.json) with the machine, date, binary and every
figure; `--results-md` rewrites the section "Scale: a million photos on one machine" of bench/RESULTS.md with
the figures beside the issue's bars. The machine's cores are shared by the service, PostgreSQL and this client.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import gzip
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench" / "commit"))
sys.path.insert(0, str(REPO / "e2e"))
import harness  # noqa: E402
from bench_commit import (DEFAULT_EMBEDDINGS, RawConnection, binary_note, build_callbacks, cpu_seconds,  # noqa: E402
                          insert_photos_postgres, insert_photos_sqlite, load_recording, migrate, psql, psql_bin, replay)

RESULTS_HEADING = "Scale: a million photos on one machine"
# Where the callbacks' photos are said to be (no file: they arrive PROCESSING and only get results).
CALLBACK_FOLDER = "/bench/scale/callback"
SIZES = {  # name: (photos, persons, faces) -- the prepared libraries of issue 12 (10k: a smoke test)
    "10k": (7_000, 1_000, 10_000),
    "100k": (70_000, 10_000, 100_000),
    "1m": (1_000_000, 100_000, 1_000_000),
}
PARTS = ["startup", "reads", "dump", "callbacks", "recluster", "scan", "sort"]
PHASE_CHECKS = {"startup": ["health_persons_equal_library"], "reads": ["reads_all_200"],
                "dump": ["dump_persons_equal_library", "delta_callbacks_all_ok"],
                "callbacks": ["callbacks_all_ok", "callback_photos_processed"], "recluster": ["recluster_completed"]}
PG_BASE = "postgres://postgres@127.0.0.1:55432/"
SECRET_HEADER = "X-Photo-Sorter-Secret"
DUMP_PAGE = 5000  # the ML service's PAGE_LIMIT (ml-service/photo_sorter_ml/persons.py)
DELTA_CALLBACKS = 100
BARS = {
    "scan_dry_run_files_per_s": 20_000,
    "scan_insert_files_per_s_sqlite": 5_000,
    "startup_1m_seconds": 10.0,
    "startup_1m_rss_gib": 1.5,
    "callback_p99_ms_1m": 20.0,
    "photos_p99_ms_1m": 50.0,
}


def log(msg: str) -> None:
    print(f"[scale] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- small helpers

class Ports:
    """Ports from a private range (default 18100-18199), skipping any in use."""

    def __init__(self, first: int, last: int):
        self.first, self.last, self.next = first, last, first

    def take(self) -> int:
        for _ in range(self.last - self.first + 1):
            p = self.next
            self.next = self.first if self.next >= self.last else self.next + 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    continue
            return p
        raise SystemExit(f"no free port in {self.first}-{self.last}")


def proc_status(pid: int) -> dict:
    """VmRSS / VmHWM of /proc/PID/status in bytes (empty when the process is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def children_of(pid: int) -> set[int]:
    """Every descendant of pid (from /proc/*/stat parent ids)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent.items() if p in frontier and c not in out}
        out |= frontier
    return out


def table_row(cfgs: list, label: str, value, bar_text: str = "") -> str:
    """One Markdown row of a results table: `value(c)` for each configuration, "–" where its figure is missing."""
    cells = []
    for c in cfgs:
        try:
            cells.append(value(c))
        except (KeyError, TypeError, IndexError, ZeroDivisionError):
            cells.append("–")
    return f"| {label} | " + " | ".join(cells) + f" | {bar_text} |"


def pct(values_ms) -> dict:
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "mean": float(a.mean())}


def gib(b) -> float:
    return (b or 0) / 1024 ** 3


def mib(b) -> float:
    return (b or 0) / 1024 ** 2


def machine() -> dict:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "ram_gib": round(gib(ram), 1),
            "text": f"{model}, {os.cpu_count()} cores, {gib(ram):.0f} GiB RAM"}


def is_postgres(database: str) -> bool:
    return database.startswith(("postgres://", "postgresql://"))


def pg_url(name: str, base: str) -> str:
    return base.rstrip("/") + "/" + name


def pg_dbname(url: str) -> str:
    return urllib.parse.urlparse(url).path.lstrip("/")


def pg_admin(base: str) -> str:
    return pg_url("postgres", base)


def ensure_postgres() -> None:
    """Starts the project's test server when it is not running (idempotent; creates no library database)."""
    r = subprocess.run([str(REPO / "scripts" / "start-postgres.sh")], cwd=REPO, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"scripts/start-postgres.sh exited {r.returncode}:\n{r.stderr[-3000:]}")


def pg_create(base: str, name: str, template: str | None = None) -> str:
    admin = pg_admin(base)
    psql(admin, f'DROP DATABASE IF EXISTS "{name}"')
    deadline = time.monotonic() + 180
    while True:
        try:
            psql(admin, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
            return pg_url(name, base)
        except RuntimeError as e:
            # A template with an open session (someone's serve on the prepared library) cannot be copied: wait.
            if "being accessed by other users" not in str(e) or time.monotonic() > deadline:
                raise
            log(f"template {template} is in use by another session; retrying in 10 s")
            time.sleep(10)


def pg_drop(base: str, name: str) -> None:
    if name in ("photo_sorter_test", "postgres", "template0", "template1"):
        raise RuntimeError(f"refusing to drop {name}")
    try:
        psql(pg_admin(base), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except RuntimeError as e:
        log(f"could not drop {name}: {e}")


def q1(database: str, sql: str):
    """One value of one row (SQLite file read-only, or psql)."""
    if is_postgres(database):
        v = psql(database, sql)
        return int(v) if v.lstrip("-").isdigit() else v
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def qall(database: str, sql: str) -> list[tuple]:
    if is_postgres(database):
        out = psql(database, sql)
        return [tuple(int(x) if x.lstrip("-").isdigit() else x for x in line.split("|")) for line in out.splitlines() if line]
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_for_snapshot(database: str, faces: int, timeout: float) -> float | None:
    """Seconds until a complete identity snapshot holds `faces` faces; None when the schema has no snapshots (an
    older binary) or none came within `timeout`."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            n = q1(database, "SELECT COALESCE(MAX(face_count), 0) FROM identity_snapshots WHERE complete = TRUE")
        except Exception:  # noqa: BLE001 - no such table: this binary writes no snapshots
            return None
        if int(n or 0) >= faces:
            return time.perf_counter() - t0
        time.sleep(0.2)
    return None


def library_counts(database: str) -> dict:
    sql = ("SELECT (SELECT COUNT(*) FROM photos), (SELECT COUNT(*) FROM persons), (SELECT COUNT(*) FROM embeddings), "
           "(SELECT MIN(id) FROM photos), (SELECT MAX(id) FROM photos)")
    row = qall(database, sql)[0]
    return dict(zip(["photos", "persons", "faces", "min_photo_id", "max_photo_id"], (int(x or 0) for x in row)))


def check_generated(database: str) -> tuple[bool, str]:
    """Whether the generator made this library: its marker table, else every photo path under /library/."""
    try:
        tables = {r[0] for r in qall(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")} \
            if is_postgres(database) else {r[0] for r in qall(database, "SELECT name FROM sqlite_master WHERE type='table'")}
    except Exception as e:  # noqa: BLE001
        return False, f"cannot read it: {e}"
    if "photos" not in tables:
        return False, "no photos table (not a photo-sorter database)"
    for marker in ("scale_library", "scale_generator", "bench_scale_library"):
        if marker in tables:
            return True, f"marker table {marker}"
    n = q1(database, "SELECT COUNT(*) FROM photos")
    if n == 0:
        return False, "no photos"
    outside = q1(database, "SELECT COUNT(*) FROM photos WHERE path NOT LIKE '/library/%'")
    if outside == 0:
        return True, f"all {n} photo paths under /library/"
    return False, f"{outside} of {n} photos are not under /library/ (a user's library?)"


# --------------------------------------------------------------------------- HTTP

class Client:
    """Sequential keep-alive HTTP/1.1 client (http.client), reconnecting when the server closed the connection."""

    def __init__(self, port: int, timeout: float = 600):
        self.port, self.timeout = port, timeout
        self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, dict, float]:
        """(status, raw body, headers, seconds from sending to the last byte)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                dt = time.perf_counter() - t0
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                return r.status, data, hdrs, dt
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise AssertionError

    def json(self, method: str, path: str, body=None, headers: dict | None = None):
        h = dict(headers or {})
        raw = None
        if body is not None:
            raw = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        status, data, hdrs, dt = self.request(method, path, raw, h)
        if hdrs.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {data[:500]!r}")
        return json.loads(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


# --------------------------------------------------------------------------- serve

class Serve:
    """`BINARY serve` on a database, with start-up time and memory."""

    def __init__(self, args, binary: Path, database: str, workdir: Path, name: str, ports: Ports, secret: str,
                 extra_env: dict | None = None, allowed_roots: str | None = None):
        self.port = ports.take()
        self.dead_ml_port = ports.take()  # nothing listens there: taken, never bound
        self.secret = secret
        env = harness.base_env(
            PHOTO_SORTER_DATABASE_URL=database, PHOTO_SORTER_HOST="127.0.0.1", PHOTO_SORTER_PORT=self.port,
            PHOTO_SORTER_ML_URL=f"http://127.0.0.1:{self.dead_ml_port}", PHOTO_SORTER_SHARED_SECRET=secret,
            PHOTO_SORTER_WORKERS=1, PHOTO_SORTER_PROCESSING_TIMEOUT_SECONDS=86400,
            PHOTO_SORTER_ALLOWED_ROOTS=allowed_roots or str(workdir), **(extra_env or {}))
        self.log_path = workdir / f"{name}-serve-{self.port}.log"
        t0 = time.perf_counter()
        self.p = harness.Process("photo-sorter serve", [binary, "serve", "--database", database, "--port", self.port],
                                 env, self.log_path)
        self.pid = self.p.proc.pid
        deadline = t0 + args.startup_timeout
        last = None
        while True:
            if not self.p.alive():
                raise RuntimeError(f"serve exited with {self.p.proc.returncode} before /health answered:\n{self.p.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status == 200:
                    self.startup_seconds = time.perf_counter() - t0
                    self.health = json.loads(body)
                    break
                last = f"HTTP {r.status}"
            except OSError as e:
                last = e
            if time.perf_counter() > deadline:
                self.stop()
                raise TimeoutError(f"serve did not answer /health within {args.startup_timeout}s ({last})")
            time.sleep(0.02)
        self.mem_ready = proc_status(self.pid)
        self.client = Client(self.port)

    def mem(self) -> dict:
        m = proc_status(self.pid)
        return {"rss_bytes": m.get("VmRSS"), "hwm_bytes": m.get("VmHWM")}

    def alive(self) -> bool:
        return self.p.alive()

    def stop(self) -> None:
        if getattr(self, "client", None):
            self.client.close()
        self.p.stop(60)


# --------------------------------------------------------------------------- phases

def phase_reads(s: Serve, database: str, lib: dict, n: int, rng: random.Random, budget: float = 60.0,
                min_requests: int = 20) -> dict:
    c = s.client
    out: dict = {}
    errors: list[str] = []

    def measure(label: str, paths) -> None:
        lat, sizes = [], []
        started = time.perf_counter()
        cut = False
        for path in paths:
            if len(lat) >= min_requests and time.perf_counter() - started > budget:
                cut = True  # a slow kind stops at its time budget (after at least min_requests)
                break
            status, data, _, dt = c.request("GET", path)
            if status != 200:
                errors.append(f"{label} {path}: HTTP {status} {data[:200]!r}")
            lat.append(dt * 1000)
            sizes.append(len(data))
            yield_data[0] = data
        out[label] = {**pct(lat), "bytes_mean": float(np.mean(sizes)) if sizes else 0, "cut_by_time_budget": cut}
        log(f"  {label}: p50 {out[label].get('p50', 0):.1f} / p99 {out[label].get('p99', 0):.1f} / max "
            f"{out[label].get('max', 0):.1f} ms, {out[label]['bytes_mean'] / 1024:.0f} KiB, n {len(lat)}"
            + (" (cut by the time budget)" if cut else ""))

    yield_data = [b""]

    def keyset(status: str | None):
        after = 0
        for _ in range(n):
            q = f"/photos?limit=500&after_id={after}" + (f"&status={status}" if status else "")
            yield q
            try:
                page = json.loads(yield_data[0])
                photos = page.get("photos") or []
                after = photos[-1]["photo_id"] if photos and page.get("next_after_id") is not None else 0
            except (ValueError, KeyError, TypeError):
                after = 0

    measure("photos_keyset", keyset(None))
    lo, hi = lib["min_photo_id"], lib["max_photo_id"]
    measure("photos_random_after_id", (f"/photos?limit=500&after_id={rng.randint(max(lo - 1, 0), hi)}" for _ in range(n)))
    measure("photos_processed_keyset", keyset("PROCESSED"))

    person_ids = [r[0] for r in qall(database, "SELECT id FROM persons ORDER BY id")]
    top = [r[0] for r in qall(database, "SELECT id FROM persons ORDER BY face_count DESC, id LIMIT 10")]
    out["largest_persons"] = [{"id": r[0], "face_count": r[1]} for r in
                              qall(database, "SELECT id, face_count FROM persons ORDER BY face_count DESC, id LIMIT 10")]
    measure("person_random", (f"/person/{rng.choice(person_ids)}" for _ in range(n)))
    measure("person_largest10", (f"/person/{top[i % len(top)]}" for i in range(n)))
    n_persons = len(person_ids)
    measure("persons_first_page", ("/persons?limit=100" for _ in range(max(n // 2, 50))))
    measure("persons_random_offset", (f"/persons?limit=100&offset={rng.randint(0, max(n_persons - 100, 0))}"
                                      for _ in range(max(n // 2, 50))))
    measure("person_photos_random", (f"/person/{rng.choice(person_ids)}/photos?limit=100" for _ in range(max(n // 2, 50))))
    measure("person_photos_largest10", (f"/person/{top[i % len(top)]}/photos?limit=100" for i in range(max(n // 2, 50))))
    out["errors"] = len(errors)
    out["first_errors"] = errors[:5]
    return out


# What the ML service asks for (float16 vectors); a service that does not know the parameter answers float32.
DUMP_ENCODING = "&encoding=f16"


def dump_full(s: Serve) -> dict:
    c = s.client
    h = {SECRET_HEADER: s.secret, "Accept-Encoding": "gzip", "Accept": "application/json"}
    since, pages, wire, decoded, persons = 0, 0, 0, 0, 0
    epoch = seq = None
    lat = []
    t0 = time.perf_counter()
    while True:
        status, data, hdrs, dt = c.request("GET", f"/person-dump?since_id={since}&limit={DUMP_PAGE}{DUMP_ENCODING}", headers=h)
        lat.append(dt * 1000)
        if status != 200:
            raise RuntimeError(f"/person-dump: HTTP {status} {data[:300]!r}")
        wire += len(data)
        body = gzip.decompress(data) if hdrs.get("content-encoding") == "gzip" else data
        decoded += len(body)
        page = json.loads(body)
        if pages == 0:
            epoch, seq = page["epoch"], page["seq"]
        pages += 1
        persons += len(page["persons"])
        if not page.get("has_more"):
            break
        since = page["next_since_id"]
    return {"seconds": time.perf_counter() - t0, "pages": pages, "page_limit": DUMP_PAGE, "persons": persons,
            "bytes_wire": wire, "bytes_decoded": decoded, "gzip": wire < decoded, "page_ms": pct(lat),
            "epoch": epoch, "seq": seq}


def dump_changes(s: Serve, epoch: str, seq: int) -> dict:
    c = s.client
    h = {SECRET_HEADER: s.secret, "Accept-Encoding": "gzip", "Accept": "application/json"}
    t0 = time.perf_counter()
    pages, wire, decoded, persons, removed, reset = 0, 0, 0, 0, 0, False
    while True:
        status, data, hdrs, _ = c.request("GET", f"/person-dump?since_seq={seq}&epoch={urllib.parse.quote(epoch)}"
                                                 f"&limit={DUMP_PAGE}{DUMP_ENCODING}", headers=h)
        if status != 200:
            raise RuntimeError(f"/person-dump changes: HTTP {status} {data[:300]!r}")
        wire += len(data)
        body = gzip.decompress(data) if hdrs.get("content-encoding") == "gzip" else data
        decoded += len(body)
        page = json.loads(body)
        pages += 1
        persons += len(page["persons"])
        removed += len(page.get("removed") or [])
        reset |= bool(page.get("reset"))
        if not page.get("has_more") or page.get("seq") == seq or pages > 1000:
            break
        seq = page["seq"]
    return {"seconds": time.perf_counter() - t0, "pages": pages, "persons": persons, "removed": removed,
            "reset": reset, "bytes_wire": wire, "bytes_decoded": decoded}


async def paced_replay(port: int, secret: str, callbacks: list, rate: float, timeout: float) -> dict:
    """Open-loop schedule: callback i is sent at start + i/rate on an idle keep-alive connection (a new one if none)."""
    head = (f"POST /callback/photo-processed HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"{SECRET_HEADER}: {secret}\r\nContent-Length: ").encode()
    idle: list[RawConnection] = []
    lat = np.zeros(len(callbacks))
    late = np.zeros(len(callbacks))
    errors: list[str] = []

    async def one(i: int, at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = idle.pop() if idle else RawConnection("127.0.0.1", port)
        _, _, body = callbacks[i]
        t0 = time.perf_counter()
        late[i] = t0 - at
        try:
            status, text = await conn.post(head + str(len(body)).encode() + b"\r\n\r\n", body, timeout)
            lat[i] = time.perf_counter() - t0
            if status != 200 or not json.loads(text).get("ok"):
                errors.append(f"photo {callbacks[i][0]}: {status} {text[:300]!r}")
            idle.append(conn)
        except Exception as e:  # noqa: BLE001
            lat[i] = time.perf_counter() - t0
            errors.append(f"photo {callbacks[i][0]}: {type(e).__name__}: {e}")

    start = time.perf_counter() + 0.05
    await asyncio.gather(*(one(i, start + i / rate) for i in range(len(callbacks))))
    wall = time.perf_counter() - start
    for cn in idle:
        cn.close()
    return {"wall_seconds": wall, "latencies": lat, "errors": errors, "max_send_lateness_ms": float(late.max() * 1000)}


def summarize_replay(res: dict, n: int, extra: dict) -> dict:
    lat_ms = res["latencies"] * 1000
    return {**extra, "callbacks": n, "wall_seconds": res["wall_seconds"], "commits_per_s": n / res["wall_seconds"],
            "latency_ms": pct(lat_ms), "errors": len(res["errors"]), "first_errors": res["errors"][:5],
            **({"max_send_lateness_ms": res["max_send_lateness_ms"]} if "max_send_lateness_ms" in res else {})}


def phase_recluster(s: Serve, timeout: float, database: str) -> dict:
    c = s.client
    h = {SECRET_HEADER: s.secret}
    t0 = time.perf_counter()
    t0_ms = int(time.time() * 1000) - 2000
    post_error = None
    try:
        job = c.json("POST", "/recluster", body={}, headers=h)["job_id"]
    except (RuntimeError, OSError) as e:
        # Seen on SQLite: the job starts and takes the only connection before the answer is built -> 500 after the
        # pool's 10 s wait, while the job runs on. Find it in the database (read-only) and follow it there.
        post_error = f"{time.perf_counter() - t0:.1f}s: {str(e)[:300]}"
        log(f"  POST /recluster failed ({post_error}); following the job in the database")
        rows = qall(database, f"SELECT job_id FROM recluster_jobs WHERE created_at >= {t0_ms} ORDER BY created_at DESC LIMIT 1")
        if not rows:
            raise RuntimeError(f"POST /recluster failed and no job was created: {post_error}") from e
        job = rows[0][0]
    poll_errors: list[str] = []
    health_probe = []  # GET /health latency while the job runs: is the service still answering?
    while True:
        extra = {"job_id": job, "post_error": post_error, "poll_errors": len(poll_errors),
                 "first_poll_errors": poll_errors[:3], "health_during_ms": pct(health_probe)}
        try:
            st = c.json("GET", f"/recluster/{job}")
        except (RuntimeError, OSError) as e:  # e.g. 500 while the job holds the only SQLite connection
            poll_errors.append(f"{time.perf_counter() - t0:.1f}s: {str(e)[:200]}")
            st = {}
            try:  # the job's row, read-only from the database (it is written when the job ends)
                row = qall(database, f"SELECT status, result, error FROM recluster_jobs WHERE job_id = '{job}'")
                if row and row[0][0] != "RUNNING":
                    st = {"done": True, "status": row[0][0], "error": row[0][2],
                          "result": json.loads(row[0][1]) if row[0][1] else None, "source": "database"}
            except Exception:  # noqa: BLE001 - keep polling
                pass
        if st.get("done"):
            return {"status": st["status"], "seconds": time.perf_counter() - t0, "result": st.get("result"),
                    "error": st.get("error"), "timed_out": False, **extra}
        if time.perf_counter() - t0 > timeout:
            return {"status": "TIMED OUT", "seconds": time.perf_counter() - t0, "timed_out": True, "timeout_s": timeout,
                    "result": None, **extra}
        if not s.alive():
            return {"status": "SERVICE DIED", "seconds": time.perf_counter() - t0, "timed_out": False, "result": None,
                    **extra}
        try:
            status, _, _, dt = c.request("GET", "/health")
            health_probe.append(dt * 1000)
        except OSError:
            pass
        time.sleep(0.5)


# --------------------------------------------------------------------------- one configuration

def prepare_library(args, size: str, db: str, workdir: Path, binary: Path) -> tuple[str, bool]:
    """(library database, generated here) -- given with --library, or generated now."""
    given = args.library_map.get((size, db))
    if given:
        return given, False
    photos, persons, faces = SIZES[size]
    if db == "sqlite":
        target = str(workdir / f"lib-{size}-{args.dim}.sqlite")
    else:
        name = f"photo_sorter_scale_gen_{size}"
        target = pg_create(args.pg_base, name)
    log(f"{size}/{db}: generating the library ({photos} photos, {persons} persons, {faces} faces) into {target}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(HERE / "generate_library.py"), "--database", target, "--photos", str(photos),
                        "--persons", str(persons), "--faces", str(faces), "--dim", str(args.dim), "--seed", str(args.seed),
                        "--binary", str(binary), "--force"], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"generate_library.py exited {r.returncode}:\n{r.stderr[-3000:]}")
    log(f"{size}/{db}: generated in {time.perf_counter() - t0:.0f} s")
    return target, True


def phase_failed(out: dict, name: str, e: Exception) -> None:
    """A phase that raised: noted in the report (checks fail), the other phases still run."""
    log(f"{out['size']}-{out['database']}: {name} FAILED: {type(e).__name__}: {str(e)[:500]}")
    out.setdefault("phase_errors", {})[name] = f"{type(e).__name__}: {str(e)[:2000]}"
    out["checks"][f"{name}_ran"] = False


def run_config(args, size: str, db: str, binary: Path, workdir: Path, ports: Ports, paced_cbs, delta_cbs, burst_cbs,
               faces_per_cb: dict) -> dict:
    name = f"{size}-{db}"
    parts = args.parts
    out: dict = {"size": size, "database": db, "phases": {}, "memory": {}, "checks": {}}
    library, generated = prepare_library(args, size, db, workdir, binary)
    ok_gen, why = check_generated(library)
    out["library"] = {"source": library, "generated_here": generated, "generator_check": why}
    if not ok_gen and not args.force:
        print(f"scale.py: {library}: not a library made by bench/scale/generate_library.py ({why}); refusing to run "
              f"on it (--force to run anyway, on a copy)", file=sys.stderr)
        raise SystemExit(2)
    # The working copy.
    t0 = time.perf_counter()
    if db == "sqlite":
        copy = workdir / f"run-{name}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            src = Path(library + suffix)
            if src.exists():
                shutil.copyfile(src, str(copy) + suffix)
        database = str(copy)
        copy_name = None
    else:
        copy_name = f"photo_sorter_scale_run_{size}"
        database = pg_create(args.pg_base, copy_name, template=pg_dbname(library))
    out["library"]["copy_seconds"] = time.perf_counter() - t0
    log(f"{name}: working copy {database} ({out['library']['copy_seconds']:.0f} s)")
    serve = None
    try:
        lib = library_counts(database)
        out["library"].update(lib)
        log(f"{name}: {lib['photos']} photos, {lib['persons']} persons, {lib['faces']} faces")
        # PROCESSING photos for the callbacks, above the library's ids.
        cb_sets = []
        if "dump" in parts:
            cb_sets.append(("delta", delta_cbs))
        if "callbacks" in parts:
            cb_sets += [("paced", paced_cbs), ("burst", burst_cbs)]
        first = lib["max_photo_id"] + 1
        shifted = {}
        next_id = first
        for label, cbs in cb_sets:
            rows = []
            for pid, faces, body in cbs:
                d = json.loads(body)
                d["photo_id"] = next_id
                d["callback_id"] = f"scale-{label}-{next_id}-{secrets.token_hex(4)}"
                rows.append((next_id, faces, json.dumps(d, separators=(",", ":")).encode()))
                next_id += 1
            shifted[label] = rows
        n_new = next_id - first
        out["callback_photos_added"] = n_new
        secret = secrets.token_hex(16)  # 32 characters

        # 1. start-up
        runs = []
        for k in range(args.startup_runs):
            serve = Serve(args, binary, database, workdir, name, ports, secret)
            m = serve.mem_ready
            runs.append({"seconds": serve.startup_seconds, "rss_bytes": m.get("VmRSS"), "hwm_bytes": m.get("VmHWM"),
                         "health_persons": serve.health.get("persons")})
            log(f"{name}: start-up {k + 1}: {serve.startup_seconds:.2f} s, RSS {mib(m.get('VmRSS')):.0f} MiB, "
                f"HWM {mib(m.get('VmHWM')):.0f} MiB, persons {serve.health.get('persons')}")
            if k + 1 < args.startup_runs:
                # The next start is a restart as users see it: after the identity snapshot the first start writes
                # in the background (services that have snapshots; see IdentityService+Snapshot.swift).
                waited = wait_for_snapshot(database, lib["faces"], args.snapshot_timeout)
                if waited is not None:
                    runs[-1]["snapshot_written_after_s"] = waited
                    log(f"{name}: identity snapshot complete {waited:.1f} s after ready")
                serve.stop()
        out["phases"]["startup"] = {"runs": runs, "seconds": runs[-1]["seconds"], "rss_bytes": runs[-1]["rss_bytes"],
                                    "hwm_bytes": runs[-1]["hwm_bytes"], "health": serve.health}
        out["checks"]["health_persons_equal_library"] = all(r["health_persons"] == lib["persons"] for r in runs)
        out["memory"]["after_startup"] = serve.mem()
        rng = random.Random(args.seed)

        if "reads" in parts:
            try:
                log(f"{name}: reads")
                out["phases"]["reads"] = phase_reads(serve, database, lib, args.read_requests, rng, args.read_budget,
                                                     args.read_min_requests)
                out["checks"]["reads_all_200"] = out["phases"]["reads"]["errors"] == 0
                out["memory"]["after_reads"] = serve.mem()
            except (RuntimeError, OSError, KeyError, ValueError, TimeoutError, asyncio.TimeoutError) as e:
                phase_failed(out, "reads", e)

        if n_new:
            # Added while the service runs (after start-up and reads, so those see the library alone): a SQLite
            # service returns PROCESSING rows it finds at start-up to the queue, which would set its dispatcher
            # polling the dead ML URL during the replay.
            (insert_photos_sqlite(Path(database), n_new, first, CALLBACK_FOLDER) if db == "sqlite"
             else insert_photos_postgres(database, n_new, first, CALLBACK_FOLDER))
            log(f"{name}: {n_new} PROCESSING photos added for the callbacks (ids {first}..{next_id - 1})")

        if "dump" in parts:
            try:
                log(f"{name}: person dump")
                full = dump_full(serve)
                log(f"  full: {full['seconds']:.2f} s, {full['pages']} pages, {full['persons']} persons, "
                    f"{mib(full['bytes_wire']):.1f} MiB on the wire ({mib(full['bytes_decoded']):.1f} MiB decoded)")
                out["checks"]["dump_persons_equal_library"] = full["persons"] == lib["persons"]
                res = asyncio.run(paced_replay(serve.port, secret, shifted["delta"], args.paced_rate, args.request_timeout))
                delta_cb = summarize_replay(res, len(shifted["delta"]), {"rate": args.paced_rate})
                changes = dump_changes(serve, full["epoch"], full["seq"])
                log(f"  changes after {len(shifted['delta'])} callbacks: {changes['seconds'] * 1000:.1f} ms, "
                    f"{changes['persons']} persons, {changes['bytes_wire'] / 1024:.1f} KiB")
                out["phases"]["dump"] = {"full": full, "changes": {**changes, "after_callbacks": len(shifted["delta"])},
                                         "delta_callbacks": delta_cb}
                out["checks"]["delta_callbacks_all_ok"] = delta_cb["errors"] == 0
                out["memory"]["after_dump"] = serve.mem()
            except (RuntimeError, OSError, KeyError, ValueError, TimeoutError, asyncio.TimeoutError) as e:
                phase_failed(out, "dump", e)

        if "callbacks" in parts:
            try:
                log(f"{name}: paced callbacks ({len(shifted['paced'])} at {args.paced_rate}/s)")
                cpu0 = cpu_seconds(serve.pid)
                res = asyncio.run(paced_replay(serve.port, secret, shifted["paced"], args.paced_rate, args.request_timeout))
                paced = summarize_replay(res, len(shifted["paced"]), {"rate": args.paced_rate,
                                                                      "service_cpu_s": cpu_seconds(serve.pid) - cpu0})
                log(f"  paced: p50 {paced['latency_ms']['p50']:.1f} / p99 {paced['latency_ms']['p99']:.1f} / max "
                    f"{paced['latency_ms']['max']:.1f} ms, errors {paced['errors']}")
                log(f"{name}: full-speed callbacks ({len(shifted['burst'])}, concurrency {args.burst_concurrency})")
                cpu0 = cpu_seconds(serve.pid)
                res = asyncio.run(replay([f"http://127.0.0.1:{serve.port}"], secret, shifted["burst"], args.burst_concurrency,
                                         args.request_timeout, "raw"))
                burst = summarize_replay(res, len(shifted["burst"]), {"concurrency": args.burst_concurrency,
                                                                      "service_cpu_s": cpu_seconds(serve.pid) - cpu0})
                log(f"  burst: {burst['commits_per_s']:.0f} commits/s, p50 {burst['latency_ms']['p50']:.1f} / p99 "
                    f"{burst['latency_ms']['p99']:.1f} ms, errors {burst['errors']}")
                out["phases"]["callbacks"] = {"paced": paced, "burst": burst,
                                              "faces_per_callback": faces_per_cb}
                out["checks"]["callbacks_all_ok"] = paced["errors"] == 0 and burst["errors"] == 0
                processed = q1(database, f"SELECT COUNT(*) FROM photos WHERE id >= {first} AND status = 'PROCESSED'")
                out["checks"]["callback_photos_processed"] = processed == n_new
                out["memory"]["after_callbacks"] = serve.mem()
            except (RuntimeError, OSError, KeyError, ValueError, TimeoutError, asyncio.TimeoutError) as e:
                phase_failed(out, "callbacks", e)

        if "recluster" in parts:
            try:
                log(f"{name}: re-cluster (timeout {args.recluster_timeout:.0f} s)")
                rc = phase_recluster(serve, args.recluster_timeout, database)
                log(f"  re-cluster: {rc['status']} after {rc['seconds']:.1f} s; status polls that failed: {rc['poll_errors']}, "
                    f"GET /health meanwhile p50/max {rc['health_during_ms'].get('p50', 0):.0f}/{rc['health_during_ms'].get('max', 0):.0f} ms")
                out["phases"]["recluster"] = rc
                out["checks"]["recluster_completed"] = rc["status"] == "COMPLETED"
                out["memory"]["after_recluster"] = serve.mem()
            except (RuntimeError, OSError, KeyError, ValueError, TimeoutError, asyncio.TimeoutError) as e:
                phase_failed(out, "recluster", e)

        out["memory"]["end"] = serve.mem()
        out["checks"]["serve_alive_until_end"] = serve.alive()
        log(f"{name}: end RSS {mib(out['memory']['end']['rss_bytes']):.0f} MiB, peak {mib(out['memory']['end']['hwm_bytes']):.0f} MiB")
    finally:
        if serve is not None:
            serve.stop()
        if db == "sqlite":
            if not args.keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(database + suffix).unlink(missing_ok=True)
        elif copy_name:
            pg_drop(args.pg_base, copy_name)
        if generated and not args.keep:
            if db == "sqlite":
                for suffix in ("", "-wal", "-shm"):
                    Path(library + suffix).unlink(missing_ok=True)
            else:
                pg_drop(args.pg_base, pg_dbname(library))
    return out


# --------------------------------------------------------------------------- scan and sort

def make_tree(args, directory: Path, files: int) -> Path:
    done = directory.parent / f".{directory.name}.done"  # outside the tree: the scan would list it
    if done.exists():
        return directory
    log(f"generating a tree of {files} files in {directory}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(HERE / "generate_tree.py"), str(directory), "--files", str(files),
                        "--seed", str(args.seed), "--force"], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"generate_tree.py exited {r.returncode}:\n{r.stderr[-3000:]}")
    done.write_text("")
    log(f"tree generated in {time.perf_counter() - t0:.0f} s")
    return directory


def count_files(tree: Path) -> int:
    return sum(1 for p in tree.rglob("*") if p.is_file() and not p.name.startswith("."))


def ingest_and_wait(s: Serve, tree: Path, dry: bool, final: tuple, timeout: float, poll: float = 0.05) -> dict:
    c = s.client
    t0 = time.perf_counter()
    job = c.json("POST", "/ingest-folder", body={"path": str(tree), "recursive": True, "dryRun": dry})["jobId"]
    polls = 0
    poll_ms = []
    while True:
        tp = time.perf_counter()
        st = c.json("GET", f"/ingest-status/{job}")
        poll_ms.append((time.perf_counter() - tp) * 1000)
        polls += 1
        if st["status"] in final or st["status"] == "FAILED":
            dt = time.perf_counter() - t0
            return {"seconds": dt, "status": st["status"], "scanned": st["scanned"], "inserted": st["inserted"],
                    "not_queued": st["not_queued_count"], "files_per_s": st["scanned"] / dt, "polls": polls,
                    "poll_interval_s": poll, "status_poll_ms": pct(poll_ms), "last_error": st.get("last_error")}
        if time.perf_counter() - t0 > timeout:
            return {"seconds": time.perf_counter() - t0, "status": "TIMED OUT " + st["status"], "scanned": st["scanned"],
                    "inserted": st["inserted"], "files_per_s": 0.0, "polls": polls, "poll_interval_s": poll,
                    "status_poll_ms": pct(poll_ms)}
        time.sleep(poll)


def phase_scan(args, binary: Path, workdir: Path, ports: Ports) -> dict:
    tree = args.tree.resolve() if args.tree else make_tree(args, workdir / f"tree-{args.tree_files}", args.tree_files)
    files = count_files(tree)
    log(f"scan: tree {tree}, {files} files")
    out = {"tree": str(tree), "files": files, "dry_run": {}, "insert": {}}
    secret = secrets.token_hex(16)
    # (a) dry run, SQLite
    db = workdir / "scan-dry.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    migrate(binary, str(db), workdir, "scan-dry")
    s = Serve(args, binary, str(db), workdir, "scan-dry", ports, secret, allowed_roots=str(tree))
    try:
        warm = ingest_and_wait(s, tree, True, ("COMPLETED",), args.scan_timeout, args.scan_poll)
        log(f"  dry run (warm-up): {warm['files_per_s']:.0f} files/s ({warm['scanned']} scanned, {warm['seconds']:.2f} s)")
        runs = []
        for k in range(args.scan_runs):
            r = ingest_and_wait(s, tree, True, ("COMPLETED",), args.scan_timeout, args.scan_poll)
            log(f"  dry run {k + 1}: {r['files_per_s']:.0f} files/s ({r['scanned']} scanned, {r['seconds']:.2f} s, {r['status']})")
            runs.append(r)
        out["dry_run"] = {"database": "sqlite", "warmup": warm, "runs": runs,
                          "files_per_s_median": float(np.median([r["files_per_s"] for r in runs])),
                          "all_scanned": all(r["scanned"] == files and r["status"] == "COMPLETED" for r in runs)}
    finally:
        s.stop()
    # (b) scan + insert
    for dbkind in [d for d in ("sqlite", "postgres") if d in args.databases]:
        if dbkind == "sqlite":
            db = workdir / "scan-insert.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            database, pg_name = str(db), None
        else:
            pg_name = "photo_sorter_scale_scan"
            database = pg_create(args.pg_base, pg_name)
        try:
            migrate(binary, database, workdir, f"scan-insert-{dbkind}")
            s = Serve(args, binary, database, workdir, f"scan-insert-{dbkind}", ports, secret, allowed_roots=str(tree),
                      extra_env={"PHOTO_SORTER_QUEUE_HIGH_WATERMARK": 100_000_000})
            try:
                r = ingest_and_wait(s, tree, False, ("SCANNED", "COMPLETED"), args.scan_timeout, args.scan_poll)
                r["rss_end_bytes"] = s.mem()["rss_bytes"]
                r["hwm_bytes"] = s.mem()["hwm_bytes"]
            finally:
                s.stop()
            r["photos_rows"] = q1(database, "SELECT COUNT(*) FROM photos")
            r["rows_equal_files"] = r["photos_rows"] == files
            log(f"  scan+insert {dbkind}: {r['files_per_s']:.0f} files/s ({r['scanned']} scanned, {r['photos_rows']} rows, "
                f"{r['seconds']:.1f} s, {r['status']}); {r['polls']} status polls, p50/max "
                f"{r['status_poll_ms'].get('p50', 0):.0f}/{r['status_poll_ms'].get('max', 0):.0f} ms")
            out["insert"][dbkind] = r
        finally:
            if pg_name:
                pg_drop(args.pg_base, pg_name)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(database + suffix).unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(workdir / "scan-dry.sqlite") + suffix).unlink(missing_ok=True)
    return out


def run_sort_measured(args, binary: Path, workdir: Path, ports: Ports, n: int) -> dict:
    tree = make_tree(args, workdir / f"sort-tree-{n}", n)
    db = workdir / f"sort-{n}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    summary = workdir / f"sort-{n}.summary.json"
    port, ml_port = ports.take(), ports.take()
    argv = [str(binary), "sort", str(tree), "--database", str(db), "--port", str(port), "--ml-url",
            f"http://127.0.0.1:{ml_port}", "--no-progress", "--summary-json", str(summary)]
    env = harness.base_env(PHOTO_SORTER_ML_PYTHON=str(harness.ml_python().absolute()))
    log_path = workdir / f"sort-{n}.log"
    t0 = time.perf_counter()
    with open(log_path, "wb") as lf:
        p = subprocess.Popen(argv, cwd=str(REPO), env=env, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        hwm = rss_peak = ml_peak = 0
        ml_hwm: dict[int, int] = {}
        kids: set[int] = set()
        last_scan = 0.0
        samples = []
        timed_out = False
        while p.poll() is None:
            now = time.perf_counter()
            if now - last_scan > 0.5:
                kids = children_of(p.pid)
                last_scan = now
            m = proc_status(p.pid)
            hwm = max(hwm, m.get("VmHWM", 0))
            rss_peak = max(rss_peak, m.get("VmRSS", 0))
            total = 0
            for k in kids:
                km = proc_status(k)
                total += km.get("VmRSS", 0)
                ml_hwm[k] = max(ml_hwm.get(k, 0), km.get("VmHWM", 0))
            ml_peak = max(ml_peak, total)
            if len(samples) < 100000 and int((now - t0) * 20) % 20 == 0:
                samples.append((round(now - t0, 1), m.get("VmRSS", 0)))
            if now - t0 > args.sort_timeout:
                timed_out = True
                os.killpg(p.pid, 15)
                p.wait(30)
                break
            time.sleep(0.05)
        rc = p.returncode
    wall = time.perf_counter() - t0
    s = json.loads(summary.read_text()) if summary.is_file() else None
    out = {"files": n, "exit_code": rc, "timed_out": timed_out, "seconds": wall, "files_per_s": n / wall,
           "sort_hwm_bytes": hwm, "sort_rss_peak_sampled_bytes": rss_peak, "ml_children_rss_sum_peak_bytes": ml_peak,
           "ml_children_max_hwm_bytes": max(ml_hwm.values(), default=0), "ml_children": len(ml_hwm),
           "summary": {k: s.get(k) for k in ("photos", "processed", "failed", "faces", "persons", "no_faces") if k in s}
           if isinstance(s, dict) else None}
    log(f"  sort {n}: {wall:.0f} s (exit {rc}), sort peak {mib(hwm):.0f} MiB, ML children peak {mib(ml_peak):.0f} MiB")
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return out


def phase_sort(args, binary: Path, workdir: Path, ports: Ports) -> dict:
    sizes = sorted(args.sort_sizes)
    runs = [run_sort_measured(args, binary, workdir, ports, sizes[0])]
    projected = runs[0]["seconds"] / sizes[0] * sizes[-1]
    fallback = False
    if projected > args.sort_max_seconds:
        log(f"sort: {sizes[-1]} files would take ~{projected:.0f} s (> --sort-max-seconds {args.sort_max_seconds:.0f}): "
            f"using {', '.join(str(x) for x in args.sort_fallback_sizes)} instead")
        fallback = True
        sizes = sorted(args.sort_fallback_sizes)
        runs += [run_sort_measured(args, binary, workdir, ports, x) for x in sizes]
    else:
        runs += [run_sort_measured(args, binary, workdir, ports, x) for x in sizes[1:]]
    runs.sort(key=lambda r: r["files"])
    small, big = runs[0], runs[-1]
    return {"runs": runs, "fallback_sizes_used": fallback,
            "all_exit_0": all(r["exit_code"] == 0 and not r["timed_out"] for r in runs),
            "sort_hwm_ratio_largest_to_smallest": big["sort_hwm_bytes"] / max(small["sort_hwm_bytes"], 1),
            "files_ratio": big["files"] / small["files"]}


# --------------------------------------------------------------------------- report

def fmt_lat(d: dict | None) -> str:
    if not d or not d.get("n"):
        return "–"
    return f"{d['p50']:.1f} / {d['p99']:.1f} / {d['max']:.1f}" + (f" (n={d['n']})" if d.get("cut_by_time_budget") else "")


def bar(ok: bool | None) -> str:
    return "–" if ok is None else ("✅" if ok else "❌")


def results_md(report: dict) -> str:
    cfgs = report.get("configs", [])
    lines = [f"Measured {report['date']} on {report['machine']['text']}; binary `{report['binary']}` "
             f"({report.get('binary_note', '')}).", "", "```", report["command"], "```", "",
             "Synthetic libraries (`bench/scale/generate_library.py`: photos PROCESSED under `/library/`, random 512-d "
             "unit embeddings, persons) served by the real `photo-sorter serve`; callbacks are recorded ArcFace results "
             "replayed by the script as the ML client; the scan and `sort` run on real (tiny) JPEG trees. Details in the "
             "docstring of `bench/scale/scale.py`. Latencies p50 / p99 / max in ms, sequential requests, one keep-alive "
             "connection. All processes share the machine's cores.", ""]
    if cfgs:
        hdr = "| | " + " | ".join(f"{c['size']} {'SQLite' if c['database'] == 'sqlite' else 'PostgreSQL'}" for c in cfgs) + " | bar |"
        lines += [hdr, "|---|" + "---:|" * len(cfgs) + "---|"]

        def row(label: str, f, bar_text: str = "") -> None:
            lines.append(table_row(cfgs, label, f, bar_text))

        P = lambda c: c["phases"]  # noqa: E731
        row("photos / persons / faces", lambda c: f"{c['library']['photos']:,} / {c['library']['persons']:,} / {c['library']['faces']:,}")
        row("start-up s: first (schema upgrade, every face read) / restart (snapshot)",
            lambda c: " / ".join(f"{r['seconds']:.1f}" for r in P(c)["startup"]["runs"]),
            f"< {BARS['startup_1m_seconds']:.0f} s at 1M faces")
        row("RSS at ready / peak at ready, MiB", lambda c: f"{mib(P(c)['startup']['rss_bytes']):.0f} / {mib(P(c)['startup']['hwm_bytes']):.0f}",
            f"< {BARS['startup_1m_rss_gib']} GiB at 1M faces")
        row("RSS at the end / peak, MiB", lambda c: f"{mib(c['memory']['end']['rss_bytes']):.0f} / {mib(c['memory']['end']['hwm_bytes']):.0f}")
        row("GET /photos?limit=500 keyset", lambda c: fmt_lat(P(c)["reads"]["photos_keyset"]), f"p99 < {BARS['photos_p99_ms_1m']:.0f} ms at 1M photos")
        row("GET /photos random after_id", lambda c: fmt_lat(P(c)["reads"]["photos_random_after_id"]))
        row("GET /photos?status=PROCESSED", lambda c: fmt_lat(P(c)["reads"]["photos_processed_keyset"]))
        row("bytes per /photos page", lambda c: f"{P(c)['reads']['photos_keyset']['bytes_mean'] / 1024:.0f} KiB")
        row("GET /person/{id} random", lambda c: fmt_lat(P(c)["reads"]["person_random"]))
        row("GET /person/{id} 10 largest", lambda c: fmt_lat(P(c)["reads"]["person_largest10"]))
        row("GET /persons?limit=100 first page", lambda c: fmt_lat(P(c)["reads"]["persons_first_page"]))
        row("GET /persons random offset", lambda c: fmt_lat(P(c)["reads"]["persons_random_offset"]))
        row("GET /person/{id}/photos random", lambda c: fmt_lat(P(c)["reads"]["person_photos_random"]))
        row("GET /person/{id}/photos 10 largest", lambda c: fmt_lat(P(c)["reads"]["person_photos_largest10"]))
        row("person dump: s, MiB wire (decoded)", lambda c: f"{P(c)['dump']['full']['seconds']:.1f} s, "
            f"{mib(P(c)['dump']['full']['bytes_wire']):.0f} ({mib(P(c)['dump']['full']['bytes_decoded']):.0f})")
        row("changes after 100 callbacks: ms, KiB", lambda c: f"{P(c)['dump']['changes']['seconds'] * 1000:.0f} ms, "
            f"{P(c)['dump']['changes']['bytes_wire'] / 1024:.0f}")
        row("callbacks paced (rate/s)", lambda c: f"{fmt_lat(P(c)['callbacks']['paced']['latency_ms'])} ({P(c)['callbacks']['paced']['rate']:g})",
            f"p99 < {BARS['callback_p99_ms_1m']:.0f} ms at 1M faces")
        row("callbacks full speed: commits/s", lambda c: f"{P(c)['callbacks']['burst']['commits_per_s']:.0f}")
        row("callbacks full speed latency", lambda c: fmt_lat(P(c)["callbacks"]["burst"]["latency_ms"]))
        row("re-cluster", lambda c: (f"{P(c)['recluster']['seconds']:.0f} s" if P(c)["recluster"]["status"] == "COMPLETED"
                                     else f"**{P(c)['recluster']['status'].lower()}** after {P(c)['recluster']['seconds']:.0f} s"))
        row("re-cluster: failed status polls; /health p50 / max ms meanwhile",
            lambda c: f"{P(c)['recluster']['poll_errors']}; {P(c)['recluster']['health_during_ms'].get('p50', 0):.0f} / "
                      f"{P(c)['recluster']['health_during_ms'].get('max', 0):.0f}")
        row("checks", lambda c: "all ok" if all(c["checks"].values()) else
            "**failed: " + ", ".join(k for k, v in c["checks"].items() if not v) + "**")
        lines.append("")
        verdicts = []
        for c in cfgs:
            if c["size"] != "1m":
                continue
            P_ = c["phases"]
            dbn = "SQLite" if c["database"] == "sqlite" else "PostgreSQL"
            if "startup" in P_:
                verdicts.append(f"1M {dbn}: start-up {P_['startup']['seconds']:.1f} s {bar(P_['startup']['seconds'] < BARS['startup_1m_seconds'])}, "
                                f"RSS {gib(P_['startup']['rss_bytes']):.2f} GiB {bar(gib(P_['startup']['rss_bytes']) < BARS['startup_1m_rss_gib'])}")
            if "reads" in P_:
                p99 = P_["reads"]["photos_keyset"]["p99"]
                verdicts.append(f"1M {dbn}: /photos p99 {p99:.1f} ms {bar(p99 < BARS['photos_p99_ms_1m'])}")
            if "callbacks" in P_:
                p99 = P_["callbacks"]["paced"]["latency_ms"]["p99"]
                verdicts.append(f"1M {dbn}: callback p99 {p99:.1f} ms {bar(p99 < BARS['callback_p99_ms_1m'])}")
        if verdicts:
            lines += ["Against the bars: " + "; ".join(verdicts) + ".", ""]
    scan = report.get("scan")
    if scan:
        d = scan["dry_run"]
        lines += [f"**Scan** of {scan['files']:,} tiny JPEGs in nested folders (`{scan['tree']}`):", "",
                  "| | files/s | runs | bar |", "|---|---:|---|---|"]
        if d:
            med = d["files_per_s_median"]
            lines.append(f"| dry run, warm page cache (SQLite) | {med:,.0f} | "
                         + ", ".join(f"{r['files_per_s']:,.0f}" for r in d["runs"])
                         + f" | ≥ {BARS['scan_dry_run_files_per_s']:,} {bar(med >= BARS['scan_dry_run_files_per_s'])} |")
        for k, r in scan["insert"].items():
            b = (f"≥ {BARS['scan_insert_files_per_s_sqlite']:,} {bar(r['files_per_s'] >= BARS['scan_insert_files_per_s_sqlite'])}"
                 if k == "sqlite" else "")
            poll = (f", status polled every {r['poll_interval_s'] * 1000:.0f} ms: {r['polls']} polls, p50 "
                    f"{r['status_poll_ms']['p50']:.0f} ms" if r.get("status_poll_ms") else "")
            lines.append(f"| scan + insert, {'SQLite' if k == 'sqlite' else 'PostgreSQL'} ({r['photos_rows']:,} rows{poll}"
                         f"{'' if r['rows_equal_files'] else ' -- **not equal to the files**'}) | {r['files_per_s']:,.0f} | "
                         f"{r['seconds']:.1f} s | {b} |")
        lines.append("")
    srt = report.get("sort")
    if srt:
        lines += ["**`photo-sorter sort` memory** (trees of tiny JPEGs without faces; the real ML service runs as its child):", "",
                  "| files | wall s | sort peak RSS (VmHWM) MiB | ML children peak RSS (sum) MiB | exit |", "|---:|---:|---:|---:|---:|"]
        for r in srt["runs"]:
            lines.append(f"| {r['files']:,} | {r['seconds']:.0f} | {mib(r['sort_hwm_bytes']):.0f} | "
                         f"{mib(r['ml_children_rss_sum_peak_bytes']):.0f} | {r['exit_code']} |")
        ratio = srt["sort_hwm_ratio_largest_to_smallest"]
        lines += ["", f"Sort peak RSS ratio largest / smallest tree: {ratio:.2f} for {srt['files_ratio']:.0f}x the files "
                      f"(bar: flat in photos {bar(ratio < 1.25)}).", ""]
    notes = report.get("notes") or []
    if notes:
        lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def merge_reports(reports: list[dict]) -> dict:
    """One report from partial runs: configurations in order (a later one of the same size and database replaces an
    earlier), scan and sort from the last report that has them, commands and failures of all."""
    if len(reports) == 1:
        return reports[0]
    out = dict(reports[0])
    configs: dict = {}
    for r in reports:
        for c in r.get("configs", []):
            key = (c["size"], c["database"])
            if key not in configs:
                configs[key] = json.loads(json.dumps(c))
                continue
            base = configs[key]
            parts = (r.get("parameters") or {}).get("parts") or PARTS
            for phase, v in c.get("phases", {}).items():
                # A later run replaces the phases it was asked for (--only); its start-up (always run) only fills a gap.
                if phase in parts or phase not in base["phases"]:
                    base["phases"][phase] = v
                    base.setdefault("phases_from_later_run", []).append({"phase": phase, "date": r["date"],
                                                                         "command": r["command"]})
                    base.get("phase_errors", {}).pop(phase, None)
                    base["checks"].pop(f"{phase}_ran", None)
                    for k in PHASE_CHECKS.get(phase, []):
                        if k in c["checks"]:
                            base["checks"][k] = c["checks"][k]
                    for k, m in c.get("memory", {}).items():
                        if k == f"after_{phase}":
                            base["memory"][f"{k} (later run)"] = m
        for k in ("scan", "sort"):
            if r.get(k):
                out[k] = r[k]
    out["configs"] = list(configs.values())
    out["command"] = "\n".join(r["command"] for r in reports)
    out["date"] = " .. ".join(sorted({reports[0]["date"], reports[-1]["date"]}))
    out["failures"] = [f for r in reports for f in r.get("failures", [])]
    out["notes"] = [n for r in reports for n in r.get("notes", [])]
    out["merged_from"] = [{"command": r["command"], "date": r["date"], "binary": r["binary"],
                           "binary_mtime": r.get("binary_mtime")} for r in reports]
    if len({(r["binary"], r.get("binary_mtime")) for r in reports}) > 1:
        out["notes"].append("merged from runs of different binaries: " + "; ".join(
            f"{r['binary']} ({r.get('binary_mtime')})" for r in reports))
    return out


def _stop_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks: services stopped, copies removed


def main() -> int:
    # SIGTERM (and SIGINT, which a shell's background job ignores) stop the run cleanly.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["100k", "1m"], choices=list(SIZES),
                    help="10k (7,000 photos / 1,000 persons / 10,000 faces) is a smoke test")
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--library", action="append", default=[],
                    help="SIZE:DB=PATH_OR_URL, a prepared library (never written to: a copy is used), e.g. "
                         "1m:sqlite=/tmp/scale/lib-1m-512.sqlite")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    ap.add_argument("--dim", type=int, default=512, choices=[128, 512])
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--binary", type=Path, default=None, help="default: $PHOTO_SORTER_BIN, else .build/release/photo-sorter")
    ap.add_argument("--pg-base", default=PG_BASE, help="PostgreSQL server URL without database (default %(default)s)")
    ap.add_argument("--ports", default="18100-18199", help="port range for the processes started")
    ap.add_argument("--startup-runs", type=int, default=2)
    ap.add_argument("--startup-timeout", type=float, default=600)
    ap.add_argument("--snapshot-timeout", type=float, default=180,
                    help="wait this long after the first start-up for the identity snapshot before the next start")
    ap.add_argument("--read-requests", type=int, default=200)
    ap.add_argument("--read-budget", type=float, default=60.0,
                    help="seconds per kind of read: a slower kind stops there (after --read-min-requests), noted in the report")
    ap.add_argument("--read-min-requests", type=int, default=20)
    ap.add_argument("--embeddings", type=Path, default=DEFAULT_EMBEDDINGS)
    ap.add_argument("--paced-rate", type=float, default=20.0)
    ap.add_argument("--paced-callbacks", type=int, default=500)
    ap.add_argument("--burst-callbacks", type=int, default=1000)
    ap.add_argument("--burst-concurrency", type=int, default=8)
    ap.add_argument("--request-timeout", type=float, default=120)
    ap.add_argument("--recluster-timeout", type=float, default=900)
    ap.add_argument("--tree", type=Path, default=None, help="tree to scan (default: generate --tree-files in the work dir)")
    ap.add_argument("--tree-files", type=int, default=100_000)
    ap.add_argument("--scan-runs", type=int, default=3)
    ap.add_argument("--scan-timeout", type=float, default=1800)
    ap.add_argument("--scan-poll", type=float, default=0.05,
                    help="seconds between GET /ingest-status polls during the scan (each poll is a database read too)")
    ap.add_argument("--skip-sort", action="store_true")
    ap.add_argument("--sort-sizes", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--sort-fallback-sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--sort-max-seconds", type=float, default=1200, help="largest sort tree's projected time before falling back")
    ap.add_argument("--sort-timeout", type=float, default=3600)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory (removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory, copies and generated libraries")
    ap.add_argument("--force", action="store_true", help="run on a library the generator did not make (on a copy)")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "scale.json")
    ap.add_argument("--results-md", action="store_true", help="rewrite the section of bench/RESULTS.md")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None,
                    help="rewrite the RESULTS.md section from a report; runs nothing. Several reports (partial runs, e.g. "
                         "--only scan,sort and the per-size runs) are merged in order, written to --json: a later run "
                         "of the same size and database replaces the phases of its --only")
    ap.add_argument("--note", action="append", default=[], help="an extra line under the tables (repeatable)")
    args = ap.parse_args()

    if args.from_json:
        report = merge_reports([json.loads(p.read_text()) for p in args.from_json])
        report["notes"] = report.get("notes", []) + args.note
        if args.json and all(args.json.resolve() != p.resolve() for p in args.from_json) and len(args.from_json) > 1:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str))
            log(f"wrote the merged report {args.json}")
        print(results_md(report))
        if args.results_md:
            harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, results_md(report))
            log("bench/RESULTS.md updated")
        return 0

    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in args.parts if p not in PARTS]
    if bad:
        raise SystemExit(f"--only: unknown part(s) {bad}; known: {PARTS}")
    if args.skip_sort and "sort" in args.parts:
        args.parts.remove("sort")
    args.library_map = {}
    for spec in args.library:
        key, eq, value = spec.partition("=")
        size, _, db = key.partition(":")
        if not eq or size not in SIZES or db not in ("sqlite", "postgres"):
            raise SystemExit(f"--library: {spec!r} is not SIZE:DB=PATH_OR_URL (SIZE {'/'.join(SIZES)}, DB sqlite/postgres)")
        if db == "sqlite":
            if not Path(value).is_file():
                raise SystemExit(f"--library {spec}: no such file")
            value = str(Path(value).resolve())
        args.library_map[(size, db)] = value
    lo, _, hi = args.ports.partition("-")
    ports = Ports(int(lo), int(hi))
    if args.binary:
        binary = args.binary.absolute()
    elif os.environ.get("PHOTO_SORTER_BIN"):
        binary = Path(os.environ["PHOTO_SORTER_BIN"]).absolute()
    else:
        binary = REPO / ".build" / "release" / "photo-sorter"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise SystemExit(f"binary not found or not executable: {binary}")
    per_config = [p for p in args.parts if p in ("startup", "reads", "dump", "callbacks", "recluster")]
    if "postgres" in args.databases and (per_config or "scan" in args.parts):
        psql_bin()
        ensure_postgres()

    # Callbacks: recorded ArcFace results (one copy of the lfw_scale photos is enough).
    paced_cbs = delta_cbs = burst_cbs = []
    faces_per_cb = {}
    if per_config and ("callbacks" in args.parts or "dump" in args.parts):
        photos = load_recording(args.embeddings, "lfw_scale")
        need = DELTA_CALLBACKS + args.paced_callbacks + args.burst_callbacks
        copies = -(-need // len(photos))
        cbs = build_callbacks(photos, copies, args.seed, None)[:need]
        delta_cbs, paced_cbs, burst_cbs = (cbs[:DELTA_CALLBACKS], cbs[DELTA_CALLBACKS:DELTA_CALLBACKS + args.paced_callbacks],
                                           cbs[DELTA_CALLBACKS + args.paced_callbacks:])
        faces = [f for _, f, _ in cbs]
        faces_per_cb = {"mean": float(np.mean(faces)), "max": int(max(faces)), "no_face": int(sum(1 for f in faces if f == 0))}
        log(f"{len(cbs)} recorded callbacks ({sum(faces)} faces) from {args.embeddings}")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="scale-bench-", dir="/tmp"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    mtime = datetime.datetime.fromtimestamp(binary.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "binary": os.path.relpath(binary, REPO) if str(binary).startswith(str(REPO)) else str(binary),
        "binary_mtime": mtime, "binary_note": binary_note(binary, mtime),
        "command": "ml-service/.venv/bin/python bench/scale/scale.py " + " ".join(sys.argv[1:]),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                       if k not in ("library_map",)},
        "bars": BARS, "configs": [], "notes": args.note, "failures": [],
    }

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2, default=str))

    def guarded(label: str, phase):
        """Runs one configuration or phase; a failure is logged and reported, and the others still run."""
        try:
            return phase()
        except Exception as e:  # noqa: BLE001 - one failing does not lose the others
            log(f"{label} FAILED: {type(e).__name__}: {e}")
            report["failures"].append(f"{label}: {type(e).__name__}: {str(e)[:2000]}")
            return None
        finally:
            save()

    try:
        if per_config:
            for size in args.sizes:
                for db in args.databases:
                    config = guarded(f"{size}/{db}", lambda: run_config(args, size, db, binary, workdir, ports, paced_cbs,
                                                                         delta_cbs, burst_cbs, faces_per_cb))
                    if config is not None:
                        report["configs"].append(config)
        for part, phase in (("scan", phase_scan), ("sort", phase_sort)):
            if part in args.parts and (result := guarded(part, lambda: phase(args, binary, workdir, ports))) is not None:
                report[part] = result
    finally:
        save()
        if args.keep or args.workdir is not None or report["failures"]:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        log(f"wrote {args.json}")
    print(results_md(report))
    if args.results_md:
        harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, results_md(report))
        log("bench/RESULTS.md updated")
    failed = (bool(report["failures"]) or any(not all(c["checks"].values()) for c in report["configs"])
              or (report.get("sort") and not report["sort"]["all_exit_0"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
