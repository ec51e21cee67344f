#!/usr/bin/env python3
r"""Issue 21, "the library follows the files": moves and deletions of a 100,000-photo library, rescanned by the real
`photo-sorter serve` (SQLite and PostgreSQL).

    ml-service/.venv/bin/python bench/files/follow_files.py [--files 100000] [--delete 10000] \
        [--databases sqlite postgres] [--binary .build/release/photo-sorter] [--workdir /tmp/follow-bench] \
        [--json bench/out/follow-files.json] [--md /tmp/follow-bench.md] [--with-faces] [--prune-timeout 300] \
        [--perf PHASE] [--keep]

e.g. the two runs of bench/RESULTS.md: no options, then
`--with-faces --prune-timeout 0 --json bench/out/follow-files-faces.json` (faces: 100,000 of 512-d on the photos, from
`bench/scale/generate_library.py`; the sweep then parks them and takes them out of their persons).

Per database, from scratch:

1. **Library** (setup, not measured against a bar): `bench/scale/generate_tree.py` writes `--files` tiny, valid,
   distinct JPEGs (`WORK/tree/2015/01/day-01/IMG_0000001.jpg`, 200 a folder) and `photo-sorter serve` ingests the
   tree into a fresh database (SQLite file in WORK; PostgreSQL: a fresh database `photo_sorter_follow_bench` on the
   server of `scripts/start-postgres.sh`, dropped afterwards). This setup serve has no ML service (its ML URL is a
   dead port) and `PHOTO_SORTER_QUEUE_HIGH_WATERMARK=100000000`; after its scan it is stopped and every photo is
   marked PROCESSED **in SQL** the way a real analysis of these faceless pictures leaves it (`face_count` 0,
   `no_faces`, 16x16, the ArcFace model version, `ml_ms` 10, `attempt` 1, dated by the file: `taken_at_source`
   'mtime'). Analysing 100,000 photos with the real ML service would take ~20 minutes per database and finds no
   face in them; the rows are what it would leave (no previews are stored).
2. **Measured serve**: `photo-sorter serve` in its default configuration (only `--database`, host 127.0.0.1, a port
   and `PHOTO_SORTER_ML_URL`); the ML URL is a small HTTP server in this script that counts every request it gets
   (and answers 503). Phases, each a `POST /ingest-folder {"path": TREE}` (recursive) polled every `--poll` s at
   `GET /ingest-status/{job}` until the status leaves SCANNING:
   - `move_folders`: the top-level year folders are renamed into `TREE/moved/` (`os.rename`, all files move);
   - `rename_files`: every file is renamed in its folder (`IMG_0000001.jpg` -> `renamed-0000001.jpg`);
   - `unchanged`: nothing changed (the reference for the next one);
   - `delete`: `--delete` files (every 10th) are deleted; the sweep at the end of the scan marks them MISSING.
   Per phase: files/s = `scanned` / wall time from the POST until the status left SCANNING (the sweep and the
   end-of-scan date backfill included: that is when the job is scanned); the job's counts (`moved`, `missing`, ...);
   requests at the ML URL during the phase; `photos` rows, max id, sum of `attempt` and `ml_ms` before and after;
   the CPU seconds of serve (and of the database's PostgreSQL backends) during the phase; for `delete` the `took` of
   the log line "photos missing".
3. `photo-sorter prune --older-than 0` once serve is stopped (`--prune-timeout`, 300 s; 0 skips it): wall time and
   photos deleted.
4. Checks: moves 0 ML requests, 0 new rows, `moved` = files, every photo PROCESSED under its new path, no attempt
   added; `delete`: `missing` = `--delete`, that many rows MISSING, 0 ML requests, 0 new rows.

`--perf PHASE` records `perf record -a -g` (every process) during that phase (WORK/perf-DB-PHASE.data, plus a `perf report`
summary in the JSON). The machine's cores are shared by serve, PostgreSQL and this client; the tree is in the page
cache (just written), as it is for a user who just moved their folders.

Output: the JSON report (`--json`) and a Markdown section for bench/RESULTS.md (`--md`). WORK is deleted at the end
unless `--keep`.
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e"))
import harness  # noqa: E402
from fault_harness import psql_bin  # noqa: E402

PG_DB = "photo_sorter_follow_bench"
MODEL_VERSION = "arcface-w600k_mbf+scrfd-500m-5pt"
BARS = {"files_per_s": 5_000, "sweep_s": 2.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[follow] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers



def psql(url: str, sql: str) -> str:
    r = subprocess.run([psql_bin(), url, "-v", "ON_ERROR_STOP=1", "-tAqc", sql], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr[-2000:]}\n{sql}")
    return r.stdout.strip()


def is_pg(database: str) -> bool:
    return database.startswith(("postgres://", "postgresql://"))


def q_row(database: str, sql: str) -> tuple:
    if is_pg(database):
        out = psql(database, sql)
        return tuple(None if x == "" else (float(x) if re.fullmatch(r"-?\d+\.\d*(e[-+]?\d+)?", x) else
                                           int(x) if re.fullmatch(r"-?\d+", x) else x) for x in out.split("|"))
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=60)
    try:
        return tuple(con.execute(sql).fetchone())
    finally:
        con.close()


def q_exec(database: str, sql: str) -> None:
    if is_pg(database):
        psql(database, sql)
        return
    con = sqlite3.connect(database, timeout=60)
    try:
        with con:
            con.execute(sql)
    finally:
        con.close()


def q_script(database: str, sql: str) -> None:
    if is_pg(database):
        psql(database, sql)
        return
    con = sqlite3.connect(database, timeout=60)
    try:
        con.executescript("BEGIN;" + sql + "COMMIT;")
    finally:
        con.close()


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def pg_backends_cpu(dbname: str) -> float:
    """CPU seconds of the PostgreSQL backends serving `dbname` (their title names it) plus the server's own
    writer processes (walwriter, checkpointer, background writer)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("postgres: ") and (f" {dbname} " in cmd or any(w in cmd for w in ("walwriter", "checkpointer",
                                                                                           "background writer"))):
            total += cpu_seconds(int(d.name))
    return total


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name:")), "unknown CPU")
    ram_kib = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")), 0)
    nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or os.cpu_count())
    return {"cpu": model, "nproc": nproc, "ram_gib": round(ram_kib / 2**20, 1),
            "text": f"{model}, {nproc} cores (nproc), {ram_kib / 2**20:.0f} GiB RAM"}


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------- the counting ML URL

class MLCounter:
    """An HTTP server on a free port that counts every request (method + path) and answers 503."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str]] = []
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                with counter.lock:
                    counter.requests.append((time.time(), f"{self.command} {urllib.parse.urlparse(self.path).path}"))
                body = b'{"detail":"bench: no ML service here"}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, k: int) -> list[str]:
        with self.lock:
            return [r for _, r in self.requests[k:]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- serve

class Serve:
    def __init__(self, binary: Path, database: str, log_path: Path, ml_url: str, extra_env: dict | None = None):
        self.port = harness.free_port()
        env = harness.base_env(PHOTO_SORTER_DATABASE_URL=database, PHOTO_SORTER_HOST="127.0.0.1",
                               PHOTO_SORTER_PORT=self.port, PHOTO_SORTER_ML_URL=ml_url, **(extra_env or {}))
        # base_env keeps PHOTO_SORTER_WORKERS / _ML_WORKERS / _MATCH_THRESHOLD of the caller: not here (default config).
        for k in ("PHOTO_SORTER_WORKERS", "PHOTO_SORTER_MATCH_THRESHOLD"):
            if k not in (extra_env or {}):
                env.pop(k, None)
        self.log_path = log_path
        t0 = time.perf_counter()
        self.p = harness.Process("photo-sorter serve", [binary, "serve", "--database", database, "--port", self.port], env, log_path)
        self.p.wait_http(f"http://127.0.0.1:{self.port}/health", 300)
        self.startup_s = time.perf_counter() - t0
        self.pid = self.p.proc.pid
        self.conn = None

    def json(self, method: str, path: str, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                data = None if body is None else json.dumps(body).encode()
                self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
                r = self.conn.getresponse()
                raw = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                if not 200 <= r.status < 300:
                    raise RuntimeError(f"{method} {path}: HTTP {r.status}: {raw[:500]!r}")
                return json.loads(raw)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def stop(self) -> None:
        if self.conn:
            self.conn.close()
        self.p.stop(60)


def scan(s: Serve, tree: Path, poll: float, timeout: float = 1800) -> dict:
    """POST /ingest-folder on `tree`, polled until the status leaves SCANNING."""
    t0 = time.perf_counter()
    job = s.json("POST", "/ingest-folder", {"path": str(tree), "recursive": True})["jobId"]
    polls = 0
    while True:
        st = s.json("GET", f"/ingest-status/{job}")
        polls += 1
        if st["status"] != "SCANNING":
            dt = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > timeout:
            dt = time.perf_counter() - t0
            st["status"] = "TIMED OUT " + st["status"]
            break
        time.sleep(poll)
    keys = ["status", "scanned", "inserted", "skipped", "queued", "not_queued_count", "moved", "missing", "restored",
            "copies", "last_error"]
    out = {k: st.get(k) for k in keys}
    out.update(job_id=job, seconds=dt, files_per_s=(st.get("scanned") or 0) / dt, polls=polls)
    return out


def db_state(database: str) -> dict:
    row = q_row(database, """SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(attempt), 0), COALESCE(SUM(ml_ms), 0),
        SUM(CASE WHEN status = 'PROCESSED' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'MISSING' THEN 1 ELSE 0 END),
        SUM(CASE WHEN full_hash IS NULL THEN 1 ELSE 0 END), SUM(CASE WHEN taken_at_source IS NULL THEN 1 ELSE 0 END)
        FROM photos""")
    keys = ["rows", "max_id", "sum_attempt", "sum_ml_ms", "processed", "missing", "no_full_hash", "undated"]
    out = {k: (v if v is not None else 0) for k, v in zip(keys, row)}
    faces = q_row(database, "SELECT (SELECT COUNT(*) FROM embeddings), (SELECT COUNT(*) FROM parked_faces), "
                            "(SELECT COALESCE(SUM(face_count), 0) FROM persons), (SELECT COUNT(*) FROM photo_ingest_map)")
    out.update(faces=faces[0], parked_faces=faces[1], persons_face_count=faces[2], ingest_map_rows=faces[3])
    return out


def count_under(database: str, prefix: str) -> int:
    lit = prefix.replace("'", "''")
    return int(q_row(database, f"SELECT COUNT(*) FROM photos WHERE path >= '{lit}/' AND path < '{lit}0'")[0])


# --------------------------------------------------------------------------- tree changes

def year_folders(tree: Path) -> list[Path]:
    return sorted(p for p in tree.iterdir() if p.is_dir() and re.fullmatch(r"\d{4}", p.name))


def move_folders(tree: Path) -> int:
    moved = tree / "moved"
    moved.mkdir()
    years = year_folders(tree)
    for y in years:
        os.rename(y, moved / y.name)
    return len(years)


def all_files(tree: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
    return out


def rename_files(tree: Path) -> int:
    n = 0
    for p in all_files(tree):
        d, f = os.path.split(p)
        os.rename(p, os.path.join(d, f.replace("IMG_", "renamed-", 1)))
        n += 1
    return n


def delete_files(tree: Path, count: int) -> list[str]:
    files = all_files(tree)
    step = max(1, len(files) // count)
    gone = files[::step][:count]
    for p in gone:
        os.unlink(p)
    return gone


# --------------------------------------------------------------------------- perf

class Perf:
    def __init__(self, pid: int, out: Path):
        self.out = out
        # System-wide: serve, PostgreSQL and this client share the cores; the report sorts by process.
        self.p = subprocess.Popen(["perf", "record", "-a", "-g", "-F", "499", "-o", str(out)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> str:
        import signal
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
        r = subprocess.run(["perf", "report", "-i", str(self.out), "--stdio", "--no-children", "--sort", "comm,dso,sym",
                            "--percent-limit", "1", "-g", "none"], capture_output=True, text=True, timeout=300)
        return r.stdout[-12000:] or r.stderr[-2000:]


# --------------------------------------------------------------------------- one database

def run_database(args, kind: str, work: Path, out: dict) -> None:
    binary = args.binary.resolve()
    tree = work / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    log(f"{kind}: generating {args.files:,} files in {tree}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "bench" / "scale" / "generate_tree.py"), str(tree), "--files",
                        str(args.files)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"generate_tree.py exited {r.returncode}: {r.stderr[-2000:]}")
    out["tree_generate_s"] = round(time.perf_counter() - t0, 1)
    if kind == "sqlite":
        database = str(work / "follow.sqlite")
        for suffix in ("", "-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
    else:
        r = subprocess.run([str(REPO / "scripts" / "start-postgres.sh")], cwd=REPO, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"scripts/start-postgres.sh exited {r.returncode}: {r.stderr[-2000:]}")
        admin = args.pg_base.rstrip("/") + "/postgres"
        psql(admin, f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        psql(admin, f'CREATE DATABASE "{PG_DB}"')
        database = args.pg_base.rstrip("/") + "/" + PG_DB
        out["pg_collation"] = psql(admin, f"SELECT datcollate FROM pg_database WHERE datname = '{PG_DB}'")
    out["database"] = database
    try:
        rc, _ = harness.run_cli([binary, "migrate", "--database", database], work / f"{kind}-migrate.log", 300)
        if rc != 0:
            raise SystemExit(f"migrate exited {rc}: {(work / f'{kind}-migrate.log').read_text()[-2000:]}")
        if args.with_faces:
            # A synthetic analysed library first (ids 1..N, faces, persons), whose rows then take the files' paths
            # and content hashes from the setup ingest below.
            t = time.perf_counter()
            r = subprocess.run([sys.executable, str(REPO / "bench" / "scale" / "generate_library.py"), "--database", database,
                                "--photos", str(args.files), "--persons", str(max(1, args.files // 10)), "--faces",
                                str(args.files), "--dim", "512", "--binary", str(binary), "--force"], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"generate_library.py exited {r.returncode}: {r.stderr[-2000:]}")
            out["library_generate_s"] = round(time.perf_counter() - t, 1)
            log(f"{kind}: synthetic analysed library generated in {out['library_generate_s']} s")
        # 1. setup: ingest with no ML service, then the rows as an analysis leaves them
        dead = f"http://127.0.0.1:{harness.free_port()}"
        s = Serve(binary, database, work / f"{kind}-setup-serve.log", dead,
                  {"PHOTO_SORTER_QUEUE_HIGH_WATERMARK": 100_000_000, "PHOTO_SORTER_WORKERS": 1})
        try:
            setup = scan(s, tree, args.poll)
        finally:
            s.stop()
        log(f"{kind}: setup ingest {setup['scanned']:,} scanned, {setup['inserted']:,} inserted in {setup['seconds']:.1f} s "
            f"({setup['files_per_s']:,.0f} files/s, {setup['status']})")
        true = "TRUE" if kind == "postgres" else "1"
        if args.with_faces:
            n = args.files
            q_exec(database, f"DELETE FROM photo_ingest_map WHERE photo_id > {n}")
            if kind == "postgres":
                # photo_ingest_map has no index on photo_id: each deleted photo's cascade check scans it, dead rows too.
                psql(database, "VACUUM photo_ingest_map")
            q_script(database, f"""
                CREATE TEMP TABLE follow_files AS SELECT id - {n} AS id, path, filename, format, filesize, modified_at,
                    sample_hash, full_hash FROM photos WHERE id > {n};
                DELETE FROM photos WHERE id > {n};
                UPDATE photos SET path = f.path, filename = f.filename, format = f.format, filesize = f.filesize,
                    modified_at = f.modified_at, sample_hash = f.sample_hash, full_hash = f.full_hash
                    FROM follow_files f WHERE photos.id = f.id;""")
        else:
            q_exec(database, f"""UPDATE photos SET status = 'PROCESSED', width = 16, height = 16, quarter_turns = 0,
            no_faces = {true}, face_count = 0, person_ids = '[]', model_version = '{MODEL_VERSION}', ml_ms = 10, attempt = 1,
            retry_count = 0, last_error = NULL, processing_started_at = NULL, next_attempt_at = NULL,
            taken_offset = '+00:00', taken_at_source = 'mtime'""")
        if args.with_faces:
            faces = q_row(database, "SELECT COUNT(*), COUNT(DISTINCT photo_id) FROM embeddings")
            persons = q_row(database, "SELECT COUNT(*) FROM persons")[0]
            out["library"] = {"faces": faces[0], "photos_with_faces": faces[1], "persons": persons}
        if kind == "postgres":
            psql(database, "VACUUM ANALYZE photos")
        out["setup"] = setup
        out["setup"]["state_after_marking"] = db_state(database)
        if out["setup"]["state_after_marking"]["rows"] != args.files:
            raise SystemExit(f"setup stored {out['setup']['state_after_marking']['rows']} rows for {args.files} files")
        # 2. the measured serve, default configuration
        ml = MLCounter()
        s = Serve(binary, database, work / f"{kind}-serve.log", f"http://127.0.0.1:{ml.port}")
        out["serve_startup_s"] = round(s.startup_s, 2)
        if args.with_faces and out["library"]["faces"] >= 20_000:
            # The first start reads every face and then writes an identity snapshot in the background: let it finish
            # (a running service has one) so that it does not share the measured scans' time.
            t = time.perf_counter()
            while time.perf_counter() - t < 120:
                done = q_row(database, "SELECT COALESCE(MAX(face_count), 0) FROM identity_snapshots WHERE complete = TRUE")[0]
                if int(done or 0) >= out["library"]["faces"]:
                    break
                time.sleep(0.5)
            out["snapshot_wait_s"] = round(time.perf_counter() - t, 1)
        time.sleep(args.settle)
        phases = out["phases"] = {}
        try:
            for name in ("move_folders", "rename_files", "unchanged", "delete"):
                if name == "move_folders":
                    t = time.perf_counter()
                    n = move_folders(tree)
                    change = f"{n} year folders renamed into moved/ in {time.perf_counter() - t:.2f} s"
                elif name == "rename_files":
                    t = time.perf_counter()
                    n = rename_files(tree)
                    change = f"{n:,} files renamed in {time.perf_counter() - t:.1f} s"
                elif name == "unchanged":
                    change = "nothing changed"
                else:
                    t = time.perf_counter()
                    gone = delete_files(tree, args.delete)
                    change = f"{len(gone):,} files deleted (every {max(1, args.files // args.delete)}th) in {time.perf_counter() - t:.1f} s"
                before = db_state(database)
                k = ml.snapshot()
                log_len = len(s.log_text())
                cpu0 = cpu_seconds(s.pid)
                pg0 = pg_backends_cpu(PG_DB) if kind == "postgres" else 0.0
                perf = Perf(s.pid, work / f"perf-{kind}-{name}.data") if args.perf == name else None
                if perf:
                    time.sleep(1)
                load = loadavg()
                res = scan(s, tree, args.poll)
                if perf:
                    res["perf_report"] = perf.stop()
                res["serve_cpu_s"] = round(cpu_seconds(s.pid) - cpu0, 2)
                if kind == "postgres":
                    res["postgres_cpu_s"] = round(pg_backends_cpu(PG_DB) - pg0, 2)
                time.sleep(0.5)
                res["ml_requests"] = ml.since(k)
                res["before"] = before
                res["after"] = db_state(database)
                res["new_rows"] = res["after"]["rows"] - before["rows"]
                res["new_ids"] = res["after"]["max_id"] - before["max_id"]
                res["attempts_added"] = res["after"]["sum_attempt"] - before["sum_attempt"]
                res["change"] = change
                res["loadavg_before"] = load
                new_log = s.log_text()[log_len:]
                res["log_lines"] = new_log.count("\n")
                res["log_bytes"] = len(new_log)
                res["log_errors"] = [l for l in new_log.splitlines() if re.search(r"\b(error|critical|warning)\b", l, re.I)][:20]
                m = [l for l in new_log.splitlines() if "photos missing" in l]
                res["missing_log_lines"] = m[:5]
                took = [re.search(r"took[^0-9]*([0-9.]+(?:e-?\d+)?) seconds", l) for l in m]
                res["sweep_took_s"] = sum(float(t.group(1)) for t in took if t) if any(took) else None
                res["moved_log_lines"] = new_log.count("photo moved")
                if name in ("move_folders", "rename_files"):
                    res["under_moved"] = count_under(database, str(tree / "moved"))
                phases[name] = res
                log(f"{kind} {name}: {change}; scanned {res['scanned']:,} in {res['seconds']:.2f} s = {res['files_per_s']:,.0f} files/s, "
                    f"status {res['status']}, moved {res['moved']:,}, missing {res['missing']:,}, copies {res['copies']}, "
                    f"new rows {res['new_rows']}, ML requests {len(res['ml_requests'])}, serve CPU {res['serve_cpu_s']} s"
                    + (f", postgres CPU {res['postgres_cpu_s']} s" if kind == "postgres" else "")
                    + (f", sweep took {res['sweep_took_s']} s" if res["sweep_took_s"] is not None else "")
                    + f", log lines {res['log_lines']:,}")
                if res["log_errors"]:
                    log(f"  log warnings/errors: {res['log_errors'][:3]}")
        finally:
            s.stop()
            ml.close()
        if args.prune_timeout > 0:
            # 4. `photo-sorter prune --older-than 0`: the missing photos deleted for good (serve stopped).
            before = db_state(database)
            t = time.perf_counter()
            try:
                rc, _ = harness.run_cli([binary, "prune", "--older-than", "0", "--database", database], work / f"{kind}-prune.log",
                                        args.prune_timeout)
            except subprocess.TimeoutExpired:
                rc = "timed out"
            pr = {"seconds": round(time.perf_counter() - t, 2), "exit": rc, "before": before, "after": db_state(database),
                  "output": (work / f"{kind}-prune.log").read_text(errors="replace")[-1500:]}
            pr["deleted_rows"] = before["rows"] - pr["after"]["rows"]
            out["prune"] = pr
            log(f"{kind} prune --older-than 0: exit {rc}, {pr['deleted_rows']:,} photos deleted in {pr['seconds']} s "
                f"(photo_ingest_map {before['ingest_map_rows']:,} rows before)")
        out["ml_requests_total"] = ml.snapshot()
        out["ml_request_kinds"] = sorted(set(r for _, r in ml.requests))
        n, d = args.files, args.delete
        checks = {}
        for name in ("move_folders", "rename_files"):
            p = phases[name]
            checks[f"{name}: 0 ML requests"] = not p["ml_requests"]
            checks[f"{name}: 0 new rows"] = p["new_rows"] == 0 and p["new_ids"] == 0
            checks[f"{name}: moved = {n:,}"] = p["moved"] == n
            checks[f"{name}: every photo PROCESSED under moved/"] = p["under_moved"] == n and p["after"]["processed"] == n
            checks[f"{name}: no attempt added"] = p["attempts_added"] == 0
            checks[f"{name}: job scanned"] = p["status"] in ("SCANNED", "COMPLETED")
        p = phases["delete"]
        checks[f"delete: missing = {d:,}"] = p["missing"] == d and p["after"]["missing"] == d
        checks["delete: 0 ML requests, 0 new rows"] = not p["ml_requests"] and p["new_rows"] == 0
        checks["unchanged: nothing moved, missing or new"] = (phases["unchanged"]["moved"] == 0 and phases["unchanged"]["missing"] == 0
                                                              and phases["unchanged"]["new_rows"] == 0)
        if "prune" in out:
            checks[f"prune: {d:,} deleted"] = out["prune"]["exit"] == 0 and out["prune"]["deleted_rows"] == d
        out["checks"] = checks
    finally:
        if kind == "postgres" and not args.keep:
            try:
                psql(args.pg_base.rstrip("/") + "/postgres", f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            except RuntimeError as e:
                log(f"could not drop {PG_DB}: {e}")
        if not args.keep and tree.exists():
            shutil.rmtree(tree)


# --------------------------------------------------------------------------- report

def fmt_s(x) -> str:
    return "–" if x is None else f"{x:.2f} s"


def markdown(report: dict) -> str:
    dbs = [d for d in ("sqlite", "postgres") if d in report["runs"] and "phases" in report["runs"][d]]
    faces = report.get("with_faces")
    names = {"sqlite": "SQLite" + (", faces" if faces else ""), "postgres": "PostgreSQL" + (", faces" if faces else "")}
    n, d = report["files"], report["delete"]
    L = [f"## The library follows the files (issue 21): moves and deletions of {n:,} photos", ""]
    L.append(f"Measured {report['started']} .. {report['finished']} on {report['machine']['text']} "
             f"(`lscpu`: {report['machine']['cpu']}); binary `{report['binary']}` (built {report['binary_built']}); "
             f"commit {report['commit']} + working tree (uncommitted issue-21 changes).")
    L += ["", "```", report["command"], "```", ""]
    if faces:
        lib = next((report["runs"][x].get("library") for x in dbs if report["runs"][x].get("library")), {})
        L.append(f"**With faces**: the library is `bench/scale/generate_library.py`'s ({n:,} PROCESSED photos, "
                 f"{lib.get('persons', 0):,} persons, {lib.get('faces', 0):,} faces of 512-d vectors on "
                 f"{lib.get('photos_with_faces', 0):,} photos), whose rows were given the paths, sizes, times and hashes "
                 f"that `photo-sorter serve` stored when it ingested the {n:,} files (the ingested rows then deleted); "
                 "the measured serve waits for its identity snapshot before the first rescan. Otherwise as below.")
        L.append("")
    L.append(f"A generated library of {n:,} tiny distinct JPEGs (`bench/scale/generate_tree.py`, 200 a folder, "
             "`YYYY/MM/day-DD/IMG_*.jpg`) ingested by `photo-sorter serve`, then "
             + ("given the analysed rows above" if faces else "marked PROCESSED in SQL as the ML service "
                "leaves these faceless pictures (no face, `ml_ms` 10, dated by the file)")
             + f"; the ML service itself was not run ({n:,} analyses take ~{n * 0.012 / 60:.0f} min). Each rescan is the real `photo-sorter serve` in its default "
             "configuration (only database, port and `PHOTO_SORTER_ML_URL`, which points at a counter that answers 503): "
             "`POST /ingest-folder` on the library's root, `GET /ingest-status` polled every "
             f"{report['poll']} s until the status leaves SCANNING (the sweep included). Files in the page cache. "
             "All processes share the machine's cores.")
    L.append("")
    L.append("| | " + " | ".join(names[x] for x in dbs) + " | bar |")
    L.append("|---|" + "---:|" * len(dbs) + "---|")

    def row(label, f, bar=""):
        cells = []
        for x in dbs:
            try:
                cells.append(f(report["runs"][x]))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("–")
        L.append(f"| {label} | " + " | ".join(cells) + f" | {bar} |")

    ph = lambda r, k: r["phases"][k]  # noqa: E731
    row("setup: first ingest (insert, no ML), files/s", lambda r: f"{r['setup']['files_per_s']:,.0f} ({r['setup']['seconds']:.1f} s)")
    for k, label in (("move_folders", "year folders moved into `moved/`, rescan"), ("rename_files", "every file renamed, rescan")):
        row(f"{label}: files/s (wall)", lambda r, k=k: f"**{ph(r, k)['files_per_s']:,.0f}** ({ph(r, k)['seconds']:.1f} s)",
            f"≥ {BARS['files_per_s']:,}")
        row(f"… moved / new rows / ML requests", lambda r, k=k: f"{ph(r, k)['moved']:,} / {ph(r, k)['new_rows']} / "
            f"{len(ph(r, k)['ml_requests'])}", f"{n:,} / 0 / 0")
        row(f"… serve CPU s" + (" / PostgreSQL CPU s" if "postgres" in dbs else ""),
            lambda r, k=k: f"{ph(r, k)['serve_cpu_s']:.1f}" + (f" / {ph(r, k)['postgres_cpu_s']:.1f}" if "postgres_cpu_s" in ph(r, k) else ""))
    row("nothing changed, rescan: files/s (wall)", lambda r: f"{ph(r, 'unchanged')['files_per_s']:,.0f} ({ph(r, 'unchanged')['seconds']:.2f} s)")
    row(f"{d:,} files deleted, rescan: files/s (wall)", lambda r: f"{ph(r, 'delete')['files_per_s']:,.0f} ({ph(r, 'delete')['seconds']:.2f} s)")
    row("… sweep (`took` of \"photos missing\")", lambda r: f"**{fmt_s(ph(r, 'delete')['sweep_took_s'])}**", f"< {BARS['sweep_s']:.0f} s")
    row("… rescan wall minus the unchanged rescan", lambda r: fmt_s(ph(r, 'delete')['seconds'] - ph(r, 'unchanged')['seconds']))
    row("… missing (job) / MISSING rows / new rows / ML requests",
        lambda r: f"{ph(r, 'delete')['missing']:,} / {ph(r, 'delete')['after']['missing']:,} / {ph(r, 'delete')['new_rows']} / "
                  f"{len(ph(r, 'delete')['ml_requests'])}", f"{d:,} / {d:,} / 0 / 0")
    if faces:
        row("… faces parked by the sweep / left the persons' counts",
            lambda r: f"{ph(r, 'delete')['after']['parked_faces'] - ph(r, 'delete')['before']['parked_faces']:,} / "
                      f"{ph(r, 'delete')['before']['persons_face_count'] - ph(r, 'delete')['after']['persons_face_count']:,}")
    row("`photo-sorter prune --older-than 0` (serve stopped): wall, photos deleted",
        lambda r: f"{r['prune']['seconds']:.1f} s, {r['prune']['deleted_rows']:,}" + ("" if r["prune"]["exit"] == 0 else f" (exit {r['prune']['exit']})"))
    row("… `photo_ingest_map` rows then", lambda r: f"{r['prune']['before']['ingest_map_rows']:,}")
    row("checks", lambda r: "all ok" if all(r["checks"].values()) else
        "**failed: " + "; ".join(k for k, v in r["checks"].items() if not v) + "**")
    L.append("")
    verdict = []
    for x in dbs:
        r = report["runs"][x]
        worst = min(ph(r, "move_folders")["files_per_s"], ph(r, "rename_files")["files_per_s"])
        sw = ph(r, "delete")["sweep_took_s"]
        verdict.append(f"{names[x]}: moves {worst:,.0f} files/s {'✅' if worst >= BARS['files_per_s'] else '❌'}, "
                       f"sweep {fmt_s(sw)} {'✅' if sw is not None and sw < BARS['sweep_s'] else '❌'}")
    L.append("Against the bars: " + "; ".join(verdict) + ".")
    L.append("")
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--delete", type=int, default=10_000)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--binary", type=Path, default=REPO / ".build" / "release" / "photo-sorter")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/follow-bench"))
    ap.add_argument("--pg-base", default="postgres://postgres@127.0.0.1:55432/")
    ap.add_argument("--poll", type=float, default=0.05, help="seconds between GET /ingest-status polls")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the measured serve answers /health")
    ap.add_argument("--perf", choices=["move_folders", "rename_files", "unchanged", "delete"],
                    help="perf record serve during this phase")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "follow-files.json")
    ap.add_argument("--md", type=Path, default=Path("/tmp/follow-bench.md"))
    ap.add_argument("--prune-timeout", type=float, default=300,
                    help="seconds `photo-sorter prune --older-than 0` may take at the end (0: no prune step)")
    ap.add_argument("--with-faces", action="store_true",
                    help="the library has faces: bench/scale/generate_library.py (N/10 persons, N faces, 512-d) takes the files' paths")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (tree, SQLite, logs) and the PostgreSQL database")
    args = ap.parse_args()
    if not args.binary.is_file():
        raise SystemExit(f"{args.binary} not found: swift build -c release")
    if args.delete > args.files:
        raise SystemExit("--delete must not exceed --files")
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    built = datetime.datetime.fromtimestamp(args.binary.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = {
        "started": subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip(),
        "machine": machine(), "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_sources": len(git("status", "--porcelain", "--", "Sources").splitlines()),
        "binary": os.path.relpath(args.binary.absolute(), REPO) if args.binary.absolute().is_relative_to(REPO) else str(args.binary),
        "binary_built": built, "files": args.files, "delete": args.delete, "poll": args.poll, "with_faces": args.with_faces,
        "command": "ml-service/.venv/bin/python bench/files/follow_files.py " + " ".join(sys.argv[1:]),
        "runs": {},
    }
    newer = subprocess.run(["find", str(REPO / "Sources"), "-type", "f", "-newer", str(args.binary)], capture_output=True,
                           text=True).stdout.split()
    report["sources_newer_than_binary"] = [os.path.relpath(p, REPO) for p in newer]
    if newer:
        log(f"note: {len(newer)} files under Sources/ are newer than the binary (e.g. {report['sources_newer_than_binary'][:3]})")
    try:
        for kind in args.databases:
            report["runs"][kind] = {}
            run_database(args, kind, work, report["runs"][kind])
    finally:
        report["finished"] = subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
        log(f"report: {args.json}")
        try:
            md = markdown(report)
            args.md.write_text(md)
            print(md)
        except Exception as e:  # noqa: BLE001
            log(f"no Markdown: {e!r}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(all(r.get("checks", {"ran": False}).values()) for r in report["runs"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
