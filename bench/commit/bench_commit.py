#!/usr/bin/env python3
r"""Callback commit throughput of the real service: a replay of recorded ArcFace results (no ML model runs).

**Replay with recorded embeddings through the real service.** The faces are real ArcFace embeddings that the ML
service's own pipeline recorded for `lfw_scale` (`bench/accuracy/record_embeddings.py`); this script is the ML
client: it posts them to `POST /callback/photo-processed` of real `photo-sorter serve` processes and measures how fast
those commit them (identity resolution + one transaction per callback).

    ml-service/.venv/bin/python bench/commit/bench_commit.py [--copies 3 | --callbacks 10000] [--concurrency 16] \
        [--runs sqlite:1 postgres:2 postgres:1] [--binary .build/release/photo-sorter] \
        [--json bench/out/commit-bench.json] [--results-md]
    ml-service/.venv/bin/python bench/commit/bench_commit.py --from-json bench/out/commit-bench.json --results-md
        (rewrites the bench/RESULTS.md section from an earlier report without running)

What it does, per run (`DATABASE:INSTANCES`):

1. Recorded results: the `lfw_scale` photos of `--embeddings` (default `bench/out/embeddings-arcface.json`, the
   final pipeline's recording; format of `bench/accuracy/record_embeddings.py`: per photo its size and detections,
   box + base64 float32 little-endian embedding). Each photo is replayed `--copies` times (default 3: 4,053 x 3 =
   12,159 callbacks) under different photo ids -- a repeated photo is a new photo of the same people, which is what
   identity matching sees in a real library. The order of all callbacks is shuffled (`--seed`), so copies of one
   photo may be in flight at once.
2. A fresh database with the real schema (`photo-sorter migrate --database X`): SQLite, a temporary file;
   PostgreSQL, a fresh database `photo_sorter_commit_bench` from
   `PHOTO_SORTER_PG_DB=photo_sorter_commit_bench PHOTO_SORTER_PG_FRESH=1 scripts/start-postgres.sh` (the server is
   shared and left running). One `photos` row per callback in status PROCESSING, every NOT NULL column set
   (SQLite: Python's sqlite3; PostgreSQL: one `INSERT ... SELECT FROM generate_series` through `psql`).
3. `INSTANCES` `photo-sorter serve` processes on that database (different ports, same URL), with a shared secret,
   `PHOTO_SORTER_WORKERS=1` and `PHOTO_SORTER_ML_URL` on a dead port: no photo is READY, so nothing is dispatched.
4. The replay: `--concurrency` asyncio clients (httpx, keep-alive) post the ML service's callback payload --
   `photo_id`, `callback_id` (unique), `status` PROCESSED, `width`, `height`, `detections` [{`bbox`, `embedding`,
   `confidence`}], `meta` {`model_version` `arcface-w600k_mbf+scrfd-500m-5pt`, `timings`} -- round-robin over the
   instances. Bodies are encoded before the clock starts. The recording holds no detection confidence and no
   timings: every detection carries confidence 0.9 and `timings` {`total_ms`: 0}. Face thumbnails and the photo
   preview, which the real ML service also sends, are not in the recording and are not sent.

What is measured: per-callback latency at the client (request sent to answer read: HTTP, decoding, waiting for the
identity lock, the transaction), p50 / p95 / p99 / max; commits/s = callbacks / wall time from the first request to
the last answer; CPU seconds of the service processes, of all `postgres` processes and of this client during the
replay (2 cores are shared by all of them). Checks: every answer is 200 with `ok`, afterwards every photo is
PROCESSED, the database holds exactly as many embeddings as detections were sent and one `processed_callbacks` row
per callback (queried from the database).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e"))
sys.path.insert(0, str(REPO / "bench" / "accuracy"))
import harness  # noqa: E402
from record_embeddings import read_recording  # noqa: E402

MODEL_VERSION = "arcface-w600k_mbf+scrfd-500m-5pt"
DEFAULT_EMBEDDINGS = REPO / "bench" / "out" / "embeddings-arcface.json"
PG_DB = "photo_sorter_commit_bench"
RESULTS_HEADING = "Callback commit throughput (replayed ArcFace results, real service)"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The ML side, from bench/RESULTS.md ("ML service", ours-arcface, 2 workers on the same 2-core machine).
ML_ARCFACE_PHOTOS_PER_S = {"lfw_small (250x250, ~1.2 faces)": 44.65, "group-6mp (5.4 faces a photo)": 6.20}


def log(msg: str) -> None:
    print(f"[commit-bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- recorded results

def load_recording(path: Path, set_name: str) -> list[dict]:
    data = read_recording(path, MODEL_VERSION, "../shared/testdata/lfw_scale")
    photos = [p for p in data["photos"] if p["path"].split("/")[0] == set_name]
    if not photos:
        raise SystemExit(f"{path} holds no photo of the set {set_name!r}")
    return photos


def build_callbacks(photos: list[dict], copies: int, seed: int, limit: int | None = None) -> list[tuple[int, int, bytes]]:
    """[(photo_id, faces, body)] in arrival order; photo ids 1..len(photos)*copies, or 1..limit when given."""
    out = []
    for c in range(copies):
        for j, p in enumerate(photos):
            pid = c * len(photos) + j + 1
            if limit is not None and pid > limit:
                break
            dets = [{"bbox": [int(x) for x in d["bbox"]], "embedding": d["embedding"], "confidence": 0.9}
                    for d in p.get("detections") or []]
            body = {
                "photo_id": pid, "callback_id": f"commit-bench-{pid}-{secrets.token_hex(4)}", "status": "PROCESSED",
                "width": p["width"], "height": p["height"], "detections": dets,
                "meta": {"model_version": MODEL_VERSION, "timings": {"total_ms": 0.0}},
            }
            out.append((pid, len(dets), json.dumps(body, separators=(",", ":")).encode()))
    random.Random(seed).shuffle(out)
    return out


# --------------------------------------------------------------------------- databases

def psql_bin() -> str:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                    reverse=True):
        if (d / "psql").is_file():
            return str(d / "psql")
    found = shutil.which("psql")
    if not found:
        raise SystemExit("psql not found (Debian package postgresql-client, under /usr/lib/postgresql/*/bin)")
    return found


def fresh_postgres() -> str:
    env = dict(os.environ, PHOTO_SORTER_PG_DB=PG_DB, PHOTO_SORTER_PG_FRESH="1")
    r = subprocess.run([str(REPO / "scripts" / "start-postgres.sh")], env=env, cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"scripts/start-postgres.sh exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r.stdout.strip().splitlines()[-1]


def psql(url: str, sql: str) -> str:
    r = subprocess.run([psql_bin(), url, "-v", "ON_ERROR_STOP=1", "-tAqc", sql], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr[-2000:]}\n{sql}")
    return r.stdout.strip()


def migrate(binary: Path, database: str, workdir: Path, name: str) -> None:
    rc, _ = harness.run_cli([binary, "migrate", "--database", database], workdir / f"{name}-migrate.log", 300)
    if rc != 0:
        raise SystemExit(f"photo-sorter migrate exited {rc}:\n{(workdir / f'{name}-migrate.log').read_text(errors='replace')[-3000:]}")


def insert_photos_sqlite(db: Path, n: int, first_id: int = 1, folder: str = "/bench/commit") -> None:
    """`n` photos in PROCESSING with ids from `first_id`, every NOT NULL column set (the callbacks' photos)."""
    now = int(time.time() * 1000)
    con = sqlite3.connect(db)
    with con:
        con.executemany(
            "INSERT INTO photos (id, path, filename, format, filesize, modified_at, sample_hash, status, retry_count, attempt, "
            "processing_started_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,'PROCESSING',0,1,?,?,?)",
            ((i, f"{folder}/IMG_{i:08d}.jpg", f"IMG_{i:08d}.jpg", "jpg", 2_000_000 + i, now, f"{i:016x}", now, now, now)
             for i in range(first_id, first_id + n)))
    con.close()


def insert_photos_postgres(url: str, n: int, first_id: int = 1, folder: str = "/bench/commit") -> None:
    """`insert_photos_sqlite` on PostgreSQL, in one statement; the id sequence then continues after them."""
    now = int(time.time() * 1000)
    last = first_id + n - 1
    psql(url, f"""
        INSERT INTO photos (id, path, filename, format, filesize, modified_at, sample_hash, status, retry_count, attempt,
            processing_started_at, created_at, updated_at)
        SELECT g, '{folder}/IMG_' || lpad(g::text, 8, '0') || '.jpg', 'IMG_' || lpad(g::text, 8, '0') || '.jpg', 'jpg',
            2000000 + g, {now}, lpad(to_hex(g), 16, '0'), 'PROCESSING', 0, 1, {now}, {now}, {now}
        FROM generate_series({first_id}, {last}) AS g;
        SELECT setval(pg_get_serial_sequence('photos', 'id'), GREATEST({last}, (SELECT MAX(id) FROM photos)));
        ANALYZE photos;""")


def counts_sqlite(db: Path) -> dict:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    q = lambda s: con.execute(s).fetchone()[0]  # noqa: E731
    out = {"photos": q("SELECT COUNT(*) FROM photos"), "processed": q("SELECT COUNT(*) FROM photos WHERE status = 'PROCESSED'"),
           "embeddings": q("SELECT COUNT(*) FROM embeddings"), "persons": q("SELECT COUNT(*) FROM persons"),
           "processed_callbacks": q("SELECT COUNT(*) FROM processed_callbacks")}
    con.close()
    return out


def counts_postgres(url: str) -> dict:
    row = psql(url, "SELECT (SELECT COUNT(*) FROM photos), (SELECT COUNT(*) FROM photos WHERE status = 'PROCESSED'), "
                    "(SELECT COUNT(*) FROM embeddings), (SELECT COUNT(*) FROM persons), (SELECT COUNT(*) FROM processed_callbacks)")
    keys = ["photos", "processed", "embeddings", "persons", "processed_callbacks"]
    return dict(zip(keys, (int(x) for x in row.split("|"))))


# --------------------------------------------------------------------------- CPU accounting

def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_cpu_seconds() -> float:
    """utime + stime of every live `postgres` process (the shared server: other sessions' queries count too)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if stat.split(" (", 1)[1].startswith("postgres)"):
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


# --------------------------------------------------------------------------- replay

class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: ~0.5 ms of client CPU a request here, httpx ~6 ms."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, head: bytes, body: bytes, timeout: float) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(head + body)
            return await asyncio.wait_for(self._response(), timeout)
        except BaseException:
            self.close()
            raise

    async def _response(self) -> tuple[int, bytes]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def replay(urls: list[str], secret: str, callbacks: list[tuple[int, int, bytes]], concurrency: int,
                 timeout: float, client_kind: str) -> dict:
    latencies = np.zeros(len(callbacks), dtype=np.float64)
    errors: list[str] = []
    next_index = 0
    targets = [httpx.URL(u) for u in urls]
    heads = [(f"POST /callback/photo-processed HTTP/1.1\r\nHost: {t.host}:{t.port}\r\nContent-Type: application/json\r\n"
              f"X-Photo-Sorter-Secret: {secret}\r\nContent-Length: ").encode() for t in targets]
    headers = {"Content-Type": "application/json", "X-Photo-Sorter-Secret": secret}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=u, limits=limits, timeout=timeout, headers=headers) for u in urls] \
        if client_kind == "httpx" else []

    async def worker() -> None:
        nonlocal next_index
        conns = [RawConnection(t.host, t.port) for t in targets]
        try:
            while next_index < len(callbacks):
                i = next_index
                next_index += 1
                _, _, body = callbacks[i]
                k = i % len(targets)
                t0 = time.perf_counter()
                try:
                    if client_kind == "httpx":
                        r = await clients[k].post("/callback/photo-processed", content=body)
                        status, text = r.status_code, r.content
                    else:
                        status, text = await conns[k].post(heads[k] + str(len(body)).encode() + b"\r\n\r\n", body, timeout)
                    latencies[i] = time.perf_counter() - t0
                    if status != 200 or not json.loads(text).get("ok"):
                        errors.append(f"photo {callbacks[i][0]}: {status} {text[:300]!r}")
                except Exception as e:  # noqa: BLE001 - count and report
                    latencies[i] = time.perf_counter() - t0
                    errors.append(f"photo {callbacks[i][0]}: {type(e).__name__}: {e}")
        finally:
            for c in conns:
                c.close()

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    finally:
        for c in clients:
            await c.aclose()
    return {"wall_seconds": wall, "latencies": latencies, "errors": errors}


def run_one(args, binary: Path, flavor: str, instances: int, callbacks: list, faces_sent: int, workdir: Path) -> dict:
    name = f"{flavor}-{instances}"
    n = len(callbacks)
    if flavor == "sqlite":
        db = workdir / f"{name}.sqlite"
        database = str(db)
        migrate(binary, database, workdir, name)
        insert_photos_sqlite(db, n)
    else:
        database = fresh_postgres()
        migrate(binary, database, workdir, name)
        insert_photos_postgres(database, n)
    log(f"{name}: {n} photos in PROCESSING on {database}")
    secret = secrets.token_hex(16)
    dead_port = harness.free_port()
    procs, urls = [], []
    try:
        for k in range(instances):
            port = harness.free_port()
            env = harness.base_env(
                PHOTO_SORTER_DATABASE_URL=database, PHOTO_SORTER_HOST="127.0.0.1", PHOTO_SORTER_PORT=port,
                PHOTO_SORTER_ML_URL=f"http://127.0.0.1:{dead_port}", PHOTO_SORTER_SHARED_SECRET=secret,
                PHOTO_SORTER_WORKERS=1, PHOTO_SORTER_ALLOWED_ROOTS=str(workdir),
                PHOTO_SORTER_PROCESSING_TIMEOUT_SECONDS=86400)
            p = harness.Process(f"photo-sorter serve #{k + 1}", [binary, "serve"], env, workdir / f"{name}-serve-{k + 1}.log")
            procs.append(p)
            p.wait_http(f"http://127.0.0.1:{port}/health", 120)
            urls.append(f"http://127.0.0.1:{port}")
        load_before = os.getloadavg()
        cpu0 = {"service": sum(cpu_seconds(p.proc.pid) for p in procs), "postgres": postgres_cpu_seconds(),
                "client": time.process_time()}
        log(f"{name}: replaying {n} callbacks ({faces_sent} faces) with {args.concurrency} clients over {instances} "
            f"instance(s); load average {load_before[0]:.2f}")
        res = asyncio.run(replay(urls, secret, callbacks, args.concurrency, args.request_timeout, args.client))
        cpu = {"service": sum(cpu_seconds(p.proc.pid) for p in procs) - cpu0["service"],
               "postgres": postgres_cpu_seconds() - cpu0["postgres"] if flavor == "postgres" else 0.0,
               "client": time.process_time() - cpu0["client"]}
        alive = all(p.alive() for p in procs)
    finally:
        for p in procs:
            p.stop()
    counts = counts_sqlite(db) if flavor == "sqlite" else counts_postgres(database)
    lat_ms = res["latencies"] * 1000
    pct = {f"p{q}": float(np.percentile(lat_ms, q)) for q in (50, 95, 99)}
    checks = {
        "all_200_ok": not res["errors"], "errors": len(res["errors"]), "first_errors": res["errors"][:5],
        "instances_alive_until_end": alive,
        "all_photos_processed": counts["processed"] == n == counts["photos"],
        "embeddings_equal_detections_sent": counts["embeddings"] == faces_sent,
        "one_processed_callback_each": counts["processed_callbacks"] == n,
    }
    out = {
        "database": flavor, "instances": instances, "callbacks": n, "faces": faces_sent, "concurrency": args.concurrency,
        "client": args.client,
        "wall_seconds": res["wall_seconds"], "commits_per_s": n / res["wall_seconds"],
        "faces_per_s": faces_sent / res["wall_seconds"],
        "latency_ms": {**pct, "max": float(lat_ms.max()), "mean": float(lat_ms.mean())},
        "cpu_seconds": cpu, "load_average_before": load_before, "db_counts": counts, "checks": checks,
    }
    log(f"{name}: {out['commits_per_s']:.1f} commits/s, p50 {pct['p50']:.1f} / p95 {pct['p95']:.1f} / p99 {pct['p99']:.1f} ms, "
        f"persons {counts['persons']}, CPU s service {cpu['service']:.1f} postgres {cpu['postgres']:.1f} client "
        f"{cpu['client']:.1f} (wall {res['wall_seconds']:.1f}); checks {'ok' if all(v for k, v in checks.items() if k not in ('errors', 'first_errors')) else checks}")
    return out


# --------------------------------------------------------------------------- report

def ok(run: dict) -> bool:
    return all(v for k, v in run["checks"].items() if k not in ("errors", "first_errors"))


def table(runs: list[dict]) -> str:
    lines = ["| database | instances | callbacks | faces | concurrency | commits/s | p50 / p95 / p99 latency ms | persons at the end | "
             "CPU s: service / postgres / client (wall s) | checks |",
             "|---|---:|---:|---:|---:|---:|---|---:|---|---|"]
    for r in runs:
        l, c = r["latency_ms"], r["cpu_seconds"]
        db = "SQLite" if r["database"] == "sqlite" else "PostgreSQL"
        lines.append(f"| {db} | {r['instances']} | {r['callbacks']:,} | {r['faces']:,} | {r['concurrency']} | "
                     f"**{r['commits_per_s']:.0f}** | {l['p50']:.1f} / {l['p95']:.1f} / **{l['p99']:.1f}** | "
                     f"{r['db_counts']['persons']:,} | {c['service']:.0f} / {c['postgres']:.0f} / {c['client']:.0f} "
                     f"({r['wall_seconds']:.0f}) | {'all ok' if ok(r) else '**failed**'} |")
    return "\n".join(lines)


# Measured by hand, once, on the same machine (not re-run by this script): where the service's CPU goes on SQLite.
PROFILE_NOTE = """\
Where the service's CPU goes (measured by hand 2026-11-26 03:35 UTC, same machine: `perf record -F 999
-g -p <serve pid> -- sleep 12` during `bench_commit.py --runs sqlite:1 --limit 2000`, 240 commits/s, 8,658 samples;
inclusive shares): SQLite 26% (`sqlite3_step` 18%, of which the commit with its WAL `fsync` 9%; `sqlite3_prepare`
8%: every statement is parsed again), kernel 26% (thread hand-offs between NIO, the concurrency pool and the
database thread, futexes), HTTP parsing 5.5%, JSON decoding of the body 3%, identity resolution 5% (~0.2 ms a
commit at ~1,700 persons), the rest Swift runtime (retain/release, malloc). No single hot spot: 3.4 ms of CPU a
commit, spread over ~15 statements and the hand-offs between them."""


def results_md(report: dict) -> str:
    runs = report["runs"]
    by = {(r["database"], r["instances"]): r for r in runs}
    sq, pg2, pg1 = by.get(("sqlite", 1)), by.get(("postgres", 2)), by.get(("postgres", 1))
    rec = report["recording"]
    client = runs[0].get("client", "httpx")
    client_ms = 1000 * sum(r["cpu_seconds"]["client"] for r in runs) / sum(r["callbacks"] for r in runs)
    client_text = (f"asyncio streams, one keep-alive HTTP/1.1 connection per client and instance, {client_ms:.1f} ms of "
                   f"client CPU a request" if client == "raw" else
                   f"httpx.AsyncClient, keep-alive, {client_ms:.1f} ms of client CPU a request")
    db_name = lambda r: "SQLite" if r["database"] == "sqlite" else "PostgreSQL"  # noqa: E731
    sample_text = ("" if rec['callbacks'] == rec['photos'] * rec['copies']
                   else f", the first {rec['callbacks']:,} of the {rec['photos'] * rec['copies']:,} taken")
    notes = []
    if pg2 and pg1:
        ratio = pg2['commits_per_s'] / pg1['commits_per_s']
        notes.append(f"Measured: PostgreSQL with 2 instances commits {pg2['commits_per_s']:.0f}/s, with one "
                     f"{pg1['commits_per_s']:.0f}/s ({ratio:.2f}x) -- a second instance does not raise the rate "
                     + ("much (within the noise of this machine)" if ratio >= 0.97 else
                        "and costs a little (the lock changes hands between processes, and each instance reads the "
                        "other's new faces in its catch-up)") + ".")
    cpu_lines = []
    for r in runs:
        c = r["cpu_seconds"]
        busy = (c["service"] + c["postgres"] + c["client"]) / r["wall_seconds"]
        cpu_lines.append(f"{db_name(r)} x{r['instances']}: {1000 * c['service'] / r['callbacks']:.1f} ms service CPU"
                         + (f" + {1000 * c['postgres'] / r['callbacks']:.1f} ms PostgreSQL CPU" if c["postgres"] else "")
                         + f" a commit, {busy:.2f} of 2 cores busy")
    ml_lines = []
    for label, rate in ML_ARCFACE_PHOTOS_PER_S.items():
        feeds = ", ".join(f"{db_name(r)} x{r['instances']}: {r['commits_per_s'] / rate:.0f}" for r in runs)
        ml_lines.append(f"- {label}: {rate} photos/s per 2-core ML machine ({1000 * 2 / rate:.0f} core-ms a photo); "
                        f"ML machines one database keeps up with: {feeds}")
    slowest = min(r["commits_per_s"] for r in runs)
    fastest_ml = max(ML_ARCFACE_PHOTOS_PER_S.values())
    verdict = (f"So the commit path is not what limits one machine: a 2-core ML machine produces at most "
               f"{fastest_ml:.0f} results a second (small LFW photos) and the slowest run above commits {slowest:.0f}/s. "
               f"It becomes the limit once about {slowest / fastest_ml:.0f} such ML machines (or "
               f"{slowest / min(ML_ARCFACE_PHOTOS_PER_S.values()):.0f} on 6 MP group photos) feed one database -- and "
               f"adding service instances does not move it, because commits are serial."
               if slowest > fastest_ml else
               f"So the commit path, not the ML side, bounds throughput here: the slowest run commits {slowest:.0f}/s, "
               f"below one ML machine's {fastest_ml:.0f} results a second.")
    sqlite_vs_pg = (f": {sq['commits_per_s'] / pg1['commits_per_s']:.1f}x the rate of one PostgreSQL instance"
                    if sq and pg1 else "")
    extra = "\n".join(f"- {n}" for n in report.get("extra_notes", []))
    return f"""
**Replay of recorded ArcFace results through the real service** (no ML model runs: the bench is the ML client).
Measured {report['date']} on {report['machine']}; binary `{report['binary']}` ({report['binary_note']}).

```
{report['command']}
```

Recorded results: the {rec['photos']:,} `lfw_scale` photos of `{rec['file']}` (real ArcFace embeddings from the ML
service's pipeline, {rec['faces']:,} faces, {rec['no_face_photos']} photo without a face), each replayed {rec['copies']}
times under new photo ids (a repeated photo is a new photo of the same people), shuffled{sample_text}: {rec['callbacks']:,}
callbacks, {runs[0]['faces']:,} faces per run. Each run starts from a fresh database (`photo-sorter
migrate`) holding one PROCESSING photo per callback; `photo-sorter serve` instances (ML URL on a dead port, nothing
dispatched) get the ML service's callback payload from {runs[0]['concurrency']} concurrent clients ({client_text}), round-robin over
the instances. Latency is per callback at the client; commits/s is callbacks / wall time of the whole replay. After
each run every photo was PROCESSED, the embeddings equalled the detections sent, every callback was stored once and
every answer was 200 ({'all runs' if all(ok(r) for r in runs) else '**not in every run**'}). The runs ran one after
another on the same 2 cores, PostgreSQL on the same machine.

{table(runs)}

CPU columns: CPU seconds during the replay of the `photo-sorter serve` processes, of all `postgres` processes, and of
the Python client ({'; '.join(cpu_lines)}).

What limits it:

- **One commit at a time, across instances.** `IdentityService.commit` holds an in-process lock and, on PostgreSQL, a
  transaction-level advisory lock (`pg_advisory_xact_lock`) around the whole transaction: about 15 statements for a
  one-face photo (begin, the advisory lock, catch-up reads of the generation, new embeddings and the change log, the
  running-reprocess check, the duplicate check, the photo row, `INSERT embeddings`, `INSERT photo_persons`,
  `UPDATE persons`, `DELETE face_thumbnails`, `UPDATE photos`, `INSERT processed_callbacks`, commit). Commits are
  serial whatever the number of instances. {' '.join(notes)}
- **Round trips, not identity maths.** On PostgreSQL each of those statements is a round trip over TCP to another
  process inside the lock: about {1000 / pg1['commits_per_s'] if pg1 else float('nan'):.1f} ms a commit for one
  instance, while the cores are not saturated (see the CPU figures) -- the serial chain of round trips is the limit.
  SQLite runs the same statements in process on one connection{sqlite_vs_pg}. Identity resolution
  against ~1,700 persons is ~5% of the service's CPU. Latency is queueing: with {runs[0]['concurrency']} clients a
  callback waits for the commits ahead of it (p50 ≈ concurrency / commits/s).
- **2 cores for everything.** Service, PostgreSQL and the client share them; on a bigger machine or with PostgreSQL
  elsewhere the round trips get cheaper, but the lock keeps commits serial.
- **Durability differs.** The PostgreSQL cluster of `scripts/start-postgres.sh` runs with `fsync = off` and
  `synchronous_commit = off` (a test cluster): its commits are not flushed to disk, so a production PostgreSQL pays a
  WAL flush per commit inside the lock on top of these figures. SQLite (WAL mode, default `synchronous`) does `fsync`
  its WAL on every commit.
- Not in the payload: the face thumbnails and the photo preview the real ML service also sends (the recording has
  none): a few KB more to parse per face and one more `INSERT` per face and per photo.
{extra}

{PROFILE_NOTE}

Against the ML side (ArcFace pipeline, bench/RESULTS.md "ML service": 2 workers on the same kind of 2-core machine):

{chr(10).join(ml_lines)}

{verdict}
""".strip("\n")


def record_reliability(report: dict) -> None:
    """One "load" row per run for the Reliability table of bench/RESULTS.md (e2e/reliability_log.py)."""
    from reliability_log import record
    for r in report["runs"]:
        db = "SQLite" if r["database"] == "sqlite" else "PostgreSQL"
        errors = r["checks"]["errors"]
        record("load", f"replay of {r['callbacks']:,} recorded callbacks at full speed, {db} x{r['instances']}",
               f"{r['callbacks']:,} callbacks from {r['concurrency']} clients, {errors} errors, {r['commits_per_s']:.0f} "
               f"commits/s, p99 {r['latency_ms']['p99']:.0f} ms ({report['binary']})", ok(r) and errors == 0,
               callbacks=r["callbacks"], errors=errors, commits_per_s=round(r["commits_per_s"], 1),
               p99_ms=round(r["latency_ms"]["p99"], 1), binary=report["binary"], measured=report["date"])


def binary_note(binary: Path, mtime: str) -> str:
    """When the binary was built, HEAD, and the commits to Sources/ dated after the build (it may hold them already,
    built from the working tree before they were committed)."""
    note = f"built {mtime}"
    try:
        head = subprocess.run(["git", "log", "-1", "--format=%h"], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        newer = subprocess.run(["git", "log", f"--since=@{int(binary.stat().st_mtime)}", "--format=%h", "--", "Sources"],
                               cwd=REPO, capture_output=True, text=True, timeout=30).stdout.split()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "Sources"], cwd=REPO, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return note
    note += f"; HEAD {head}"
    if newer:
        note += f"; commits to Sources/ dated after the build: {', '.join(newer)}"
    if dirty:
        note += "; Sources/ had uncommitted edits"
    return note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embeddings", type=Path, default=DEFAULT_EMBEDDINGS)
    ap.add_argument("--set", default="lfw_scale", help="photos of this set in the recording")
    ap.add_argument("--copies", type=int, default=3, help="times each photo is replayed under a new photo id")
    ap.add_argument("--callbacks", type=int, default=None,
                    help="replay exactly N callbacks: the first N of the shuffled replay, with as many copies as that needs")
    ap.add_argument("--limit", type=int, default=None, help="only the first N recorded photos (a smoke test)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw",
                    help="raw: keep-alive HTTP/1.1 on asyncio streams (default; ~0.5 ms of client CPU a request); "
                         "httpx: httpx.AsyncClient (~6 ms of client CPU a request here)")
    ap.add_argument("--runs", nargs="+", default=["sqlite:1", "postgres:2", "postgres:1"],
                    help="DATABASE:INSTANCES, database sqlite or postgres")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--binary", type=Path, default=None, help="default: $PHOTO_SORTER_BIN, else release, else debug build")
    ap.add_argument("--request-timeout", type=float, default=120)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory (removed unless --keep)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "commit-bench.json")
    ap.add_argument("--results-md", action="store_true", help="write the section of bench/RESULTS.md")
    ap.add_argument("--reliability-log", action="store_true",
                    help='append one "load" row per run to the reliability log (e2e/reliability_log.py)')
    ap.add_argument("--binary-note", default=None, help="text added to the binary's description (e.g. which commit it holds)")
    ap.add_argument("--note", action="append", default=[], help="an extra line for the 'what limits it' list (repeatable)")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="write the RESULTS.md section from an earlier report (its command and figures) without running")
    args = ap.parse_args()

    if args.from_json:
        report = json.loads(args.from_json.read_text())
        if args.binary_note:
            report["binary_note"] += "; " + args.binary_note
        report["extra_notes"] = report.get("extra_notes", []) + args.note
        print(table(report["runs"]))
        if args.json and args.json.resolve() != args.from_json.resolve():
            args.json.write_text(json.dumps(report, indent=2, default=str))
        elif args.binary_note or args.note:
            args.from_json.write_text(json.dumps(report, indent=2, default=str))
        if args.results_md:
            harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, results_md(report))
            log("bench/RESULTS.md updated")
        if args.reliability_log:
            record_reliability(report)
        return 0 if all(ok(r) for r in report["runs"]) else 1

    runs_spec = []
    for spec in args.runs:
        flavor, _, k = spec.partition(":")
        if flavor not in ("sqlite", "postgres") or not k.isdigit() or int(k) < 1:
            raise SystemExit(f"--runs: {spec!r} is not DATABASE:INSTANCES")
        runs_spec.append((flavor, int(k)))
    binary = args.binary.absolute() if args.binary else harness.find_binary(prefer_release=True)
    photos = load_recording(args.embeddings, args.set)[: args.limit]
    if args.callbacks is not None:
        if args.callbacks < 1:
            raise SystemExit(f"--callbacks must be at least 1, got {args.callbacks}")
        args.copies = max(args.copies, -(-args.callbacks // len(photos)))
    callbacks = build_callbacks(photos, args.copies, args.seed, args.callbacks)
    faces_sent = sum(f for _, f, _ in callbacks)
    log(f"{len(photos)} recorded photos x {args.copies} = {len(callbacks)} callbacks, {faces_sent} faces, "
        f"{sum(len(b) for _, _, b in callbacks) / len(callbacks) / 1024:.1f} KiB a body")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="commit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    failed = False
    runs = []
    try:
        for flavor, k in runs_spec:
            runs.append(run_one(args, binary, flavor, k, callbacks, faces_sent, workdir))
            failed |= not ok(runs[-1])
    finally:
        if failed or args.keep or args.workdir is not None:
            log(f"logs and databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    mtime = datetime.datetime.fromtimestamp(binary.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "ml-service/.venv/bin/python bench/commit/bench_commit.py " + " ".join(a for a in sys.argv[1:])
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": harness.machine_description(),
        "binary": os.path.relpath(binary, REPO) if str(binary).startswith(str(REPO)) else str(binary),
        "binary_note": binary_note(binary, mtime) + (f"; {args.binary_note}" if args.binary_note else ""),
        "command": cmd.strip(), "extra_notes": args.note,
        "recording": {"file": os.path.relpath(args.embeddings.absolute(), REPO), "set": args.set, "photos": len(photos),
                      "faces": sum(len(p.get("detections") or []) for p in photos),
                      "no_face_photos": sum(1 for p in photos if not p.get("detections")),
                      "copies": args.copies, "callbacks": len(callbacks)},
        "runs": runs,
    }
    print(table(runs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        log(f"wrote {args.json}")
    if args.results_md:
        harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, results_md(report))
        log("bench/RESULTS.md updated")
    if args.reliability_log:
        record_reliability(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
