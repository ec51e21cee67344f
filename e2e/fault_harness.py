"""For the fault and load tests: one scenario's processes on fixed ports (`Run`), the database read from outside the
service (`Database`: sqlite3, or `psql` of the Debian PostgreSQL install that scripts/start-postgres.sh uses), and the
invariants every scenario checks there (`Invariants`)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import harness

TIMEOUT = float(os.environ.get("PHOTO_SORTER_FAULTS_TIMEOUT", "120"))
# A photo whose result was lost is found by the stale-PROCESSING scheduler and retried; short timeouts keep each
# scenario quick (production defaults: 600 s, 10 s, 5 s).

FAST = dict(PHOTO_SORTER_PROCESSING_TIMEOUT_SECONDS=20, PHOTO_SORTER_RETRY_BACKOFF_SECONDS=1,
            PHOTO_SORTER_SCHEDULER_INTERVAL_SECONDS=1, PHOTO_SORTER_ML_TIMEOUT_SECONDS=10, PHOTO_SORTER_WORKERS=4,
            PHOTO_SORTER_MAX_RETRIES=5)


def psql_bin() -> str:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "psql").is_file():
            return str(d / "psql")
    raise FileNotFoundError("psql not found under /usr/lib/postgresql/*/bin (scripts/start-postgres.sh installs it)")


def fresh_postgres(name: str) -> str:
    out = subprocess.run([str(harness.REPO / "scripts" / "start-postgres.sh")], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PHOTO_SORTER_PG_DB=name, PHOTO_SORTER_PG_FRESH="1"), timeout=300)
    return out.stdout.strip().splitlines()[-1]


class Database:
    """Reads (and for fault injection, writes) the service's database from outside: sqlite3 or psql."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = url.startswith(("postgres://", "postgresql://"))

    def rows(self, sql: str) -> list[tuple]:
        if self.postgres:
            r = subprocess.run([psql_bin(), self.url, "-v", "ON_ERROR_STOP=1", "-tAqF", "\t", "-c", sql],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"psql failed: {r.stderr[-2000:]}\n{sql}")
            return [tuple(None if v == "" else v for v in line.split("\t")) for line in r.stdout.splitlines() if line]
        for attempt in range(100):  # a reader may meet the service's write lock: wait like a polite client
            try:
                con = sqlite3.connect(self.url, timeout=30)
                try:
                    return con.execute(sql).fetchall()
                finally:
                    con.close()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                time.sleep(0.1)
        raise TimeoutError(f"database stayed locked: {sql}")

    def one(self, sql: str):
        return self.rows(sql)[0][0]

    def counts(self) -> Counter:
        return Counter({status: int(n) for status, n in self.rows("SELECT status, COUNT(*) FROM photos GROUP BY status")})

    def person_ids(self) -> dict[int, list[int]]:
        """photo id -> sorted person ids of its stored faces, for every PROCESSED photo."""
        out: dict[int, list[int]] = {}
        for photo, person in self.rows("SELECT p.id, e.person_id FROM photos p LEFT JOIN embeddings e ON e.photo_id = p.id "
                                       "WHERE p.status = 'PROCESSED'"):
            out.setdefault(int(photo), [])
            if person is not None:
                out[int(photo)].append(int(person))
        return {k: sorted(v) for k, v in out.items()}


class Invariants:
    """What must hold after every scenario, read from the database; `violations` lists each broken one."""

    def __init__(self, db: Database, folder: Path, before: dict[int, list[int]]):
        self.db, self.folder, self.before = db, folder, before

    def check(self) -> dict:
        db = self.db
        expected = {os.path.realpath(p) for p in harness.list_images(self.folder)}
        rows = db.rows("SELECT id, path, status, face_count, person_ids FROM photos")
        paths = Counter(os.path.realpath(r[1]) for r in rows)
        duplicated = sum(n - 1 for n in paths.values() if n > 1)
        lost = len(expected - set(paths))
        not_processed = {r[1]: r[2] for r in rows if r[2] != "PROCESSED"}
        faces = {int(photo): int(n) for photo, n in db.rows("SELECT photo_id, COUNT(*) FROM embeddings GROUP BY photo_id")}
        wrong_face_count = {int(r[0]): (r[3], faces.get(int(r[0]), 0)) for r in rows
                            if r[2] == "PROCESSED" and int(r[3] or 0) != faces.get(int(r[0]), 0)}
        twice = db.rows("SELECT photo_id, bbox_x1, bbox_y1, bbox_x2, bbox_y2, COUNT(*) FROM embeddings "
                        "GROUP BY photo_id, bbox_x1, bbox_y1, bbox_x2, bbox_y2 HAVING COUNT(*) > 1")
        person_faces = {int(p): int(n) for p, n in db.rows(
            "SELECT person_id, COUNT(*) FROM embeddings WHERE person_id IS NOT NULL GROUP BY person_id")}
        person_photos = {int(p): int(n) for p, n in db.rows("SELECT person_id, COUNT(*) FROM photo_persons GROUP BY person_id")}
        wrong_person_counts = {int(pid): (int(fc), person_faces.get(int(pid), 0), int(pc), person_photos.get(int(pid), 0))
                               for pid, fc, pc in db.rows("SELECT id, face_count, photo_count FROM persons")
                               if (int(fc), int(pc)) != (person_faces.get(int(pid), 0), person_photos.get(int(pid), 0))}
        links = {}
        for photo, person in db.rows("SELECT photo_id, person_id FROM photo_persons"):
            links.setdefault(int(photo), set()).add(int(person))
        after = db.person_ids()
        wrong_links = {photo: (sorted(links.get(photo, ())), sorted(set(ids))) for photo, ids in after.items()
                       if links.get(photo, set()) != set(ids)}
        wrong_json = {int(r[0]): (r[4], after.get(int(r[0]))) for r in rows if r[2] == "PROCESSED"
                      and sorted(json.loads(r[4] or "[]")) != sorted(set(after.get(int(r[0]), [])))}
        changed = {photo: (ids, after.get(photo)) for photo, ids in self.before.items() if after.get(photo) != ids}
        self.summary = {"photos": len(expected), "rows": len(rows), "lost": lost, "duplicated": duplicated,
                        "processed": sum(1 for r in rows if r[2] == "PROCESSED"),
                        "faces": sum(faces.values()), "person_ids_changed": len(changed)}
        self.violations = {k: v for k, v in {
            "lost photos": sorted(expected - set(paths))[:10], "duplicated rows": [p for p, n in paths.items() if n > 1][:10],
            "not PROCESSED": dict(list(not_processed.items())[:10]),
            "face_count differs from stored faces": dict(list(wrong_face_count.items())[:10]),
            "a face stored twice": twice[:10], "person counts wrong (faces, real, photos, real)":
                dict(list(wrong_person_counts.items())[:10]),
            "photo_persons differ from faces": dict(list(wrong_links.items())[:10]),
            "photos.person_ids differs from faces": dict(list(wrong_json.items())[:10]),
            "person ids of photos processed before the fault changed": dict(list(changed.items())[:10]),
        }.items() if v}
        return self.summary


class Run:
    """One scenario's ML service and service on fixed ports (a restart comes back where callbacks are sent)."""

    def __init__(self, workdir: Path, folder: Path, database: Optional[str] = None, ml_workers: int = 2, **swift_env):
        self.workdir, self.folder = workdir, folder
        self.database = database or str(workdir / "photo-sorter.sqlite")
        self.db = Database(self.database)
        self.binary = harness.find_binary()
        self.secret = os.urandom(16).hex()
        self.port, self.ml_port = harness.free_port(), harness.free_port()
        self.base, self.ml_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.ml_port}"
        self.ml_workers = ml_workers
        self.swift_env = {**FAST, **swift_env}
        self.starts = Counter()
        self.ml: Optional[harness.Process] = None
        self.swift: Optional[harness.Process] = None

    def start_ml(self) -> None:
        self.starts["ml"] += 1
        self.ml = harness.start_ml_service(self.ml_port, self.base, [self.folder], self.secret,
                                           self.workdir / f"ml-{self.starts['ml']}.log", workers=self.ml_workers)

    def start_swift(self, timeout: float = 120.0) -> None:
        self.starts["swift"] += 1
        self.swift = harness.start_swift(self.binary, self.database, self.port, self.ml_url, [self.folder], self.secret,
                                         self.workdir / f"service-{self.starts['swift']}.log", timeout=timeout,
                                         **self.swift_env)

    def start(self) -> "Run":
        self.start_ml()
        self.start_swift()
        return self

    @staticmethod
    def kill(process: Optional[harness.Process]) -> None:
        """SIGKILL of the process group (the ML service with its pool workers), then reap it."""
        if process is not None and process.alive():
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait(10)
        if process is not None:
            process.log.close()

    def stop(self) -> None:
        for p in (self.swift, self.ml):
            if p is not None:
                p.stop()

    def logs(self) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {log.name} ---\n{log.read_bytes()[-4000:].decode(errors='replace')}")
        return "\n".join(out)

    def post(self, path: str, body: dict) -> dict:
        return harness.http_json("POST", self.base + path, body, headers={"X-Photo-Sorter-Secret": self.secret})

    def ingest(self, **opts) -> str:
        return self.post("/ingest-folder", {"path": str(self.folder), "recursive": True, **opts})["jobId"]

    def job(self, job_id: str) -> dict:
        return harness.http_json("GET", f"{self.base}/ingest-status/{job_id}")

    def processed(self) -> int:
        return self.db.counts().get("PROCESSED", 0)

    def wait(self, what: str, condition: Callable[[], object], timeout: float = TIMEOUT, every: float = 0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            for p in (self.swift, self.ml):
                if p is not None and not p.log.closed and not p.alive():
                    raise RuntimeError(f"{p.name} died while waiting for {what}:\n{self.logs()}")
            time.sleep(every)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}; photos {dict(self.db.counts())}\n{self.logs()}")

    def finish(self, job_id: str) -> dict:
        """Waits until the job is done and every photo of the folder is PROCESSED (or the deadline)."""
        total = len(harness.list_images(self.folder))
        self.wait("every photo PROCESSED", lambda: self.processed() == total, every=0.5)
        return self.wait(f"job {job_id} done", lambda: (s := self.job(job_id)).get("done") and s, every=0.5)
