#!/usr/bin/env python3
r"""A synthetic, already-processed photo-sorter library in a real database (issue 12: a million photos on one machine;
issue 25: finding photos by people and date).

    ml-service/.venv/bin/python bench/scale/generate_library.py --database (SQLITE_FILE | postgres://...) \
        --photos N --persons M --faces K --dim (128|512) [--seed S] [--binary PATH] [--force]

e.g. `--database /tmp/scale/lib-1m-512.sqlite --photos 1000000 --persons 100000 --faces 1000000 --dim 512`.

Why: the scale benchmarks need a library of the size a real one reaches (start-up, index load, page queries,
identity matching against 100k persons) without running the ML model over a million photos. What it writes is
the shape `IdentityService.storeFaces` commits, so the real service serves it as if it had processed the photos:

- the schema from the real binary (`BINARY migrate --database DB`; BINARY: --binary, else $PHOTO_SORTER_BIN, else
  .build/release/photo-sorter); a binary whose schema has no taken dates (built before issue 25) is refused;
- N `photos`, all PROCESSED with every column the service sets (path `/library/YYYY/MM/DD/IMG_0000123.jpg`, dates
  2008-2025 rising with the id, format `jpeg`, size, sample hash, width/height, `no_faces`, `face_count`,
  `person_ids` as the service's JSON `[3,17]` in face order, `model_version`, `ml_ms`). Each photo is dated as if
  its EXIF header held the date: `taken_at` = its generated time (`modified_at`, the path's day) as a UTC wall clock
  `YYYY-MM-DDTHH:MM:SS` (whole seconds; UTC whatever the machine's zone), `taken_at_source` = `exif`,
  `taken_offset` NULL. As the ids rise with the dates, taken order is id order (ties of one second aside), as in
  a library scanned folder by folder. K / 1.3 photos hold faces,
  at most 85 % of them (K = N: 23 % hold none; K = N / 10: 92 % hold none), each 1 + a geometric number of faces
  (at most 12, never two faces of one person in a photo, as the service rules);
- K `embeddings`, one per face: float32 little-endian L2-normalised vectors (`dim` x 4 bytes), box, confidence,
  `created_person` on each person's first face (in photo-id order), `similarity` on the others, `model_version`
  `arcface-w600k_mbf+scrfd-500m-5pt` (512-d) or `dlib-resnet-v1+hog-5pt` (128-d);
- M `persons`, every one with >= 1 face; sizes Zipf-like (weight 1/rank, plus 1 each: for 100k persons / 1M faces
  the largest has ~74k faces, the 100th ~700, the 10,000th ~8, four in five have 1-5). Ids are given in order of first
  appearance, as the service creates them; `face_count` = `photo_count` (one face per person per photo),
  `representative_photo_id` = the photo that created the person;
- one `photo_persons` row per face, with its photo's `taken_at` (the service writes both together; the index
  `photo_persons_person_taken` serves a person's photos by date); `identity_generation` stays the migration's
  (1, 0); no ingest jobs, callbacks, thumbnails or previews (none is needed to serve the library).

Vectors: person p has a random unit centre c_p; a face is cos(t) c_p + sin(t) u with u a random unit vector
orthogonal to c_p, so its cosine to the centre is exactly cos(t):
- 512-d (ArcFace): cos(t) ~ N(0.75, 0.05) clipped to [0.55, 0.95] -> two faces of one person ~0.56 +- 0.06,
  faces of two persons ~0 +- 0.044 (random directions). Real ArcFace on lfw (bench/out/embeddings-arcface.json):
  same person 0.62 +- 0.08, different 0.01 +- 0.07.
- 128-d (dlib): cos(t) ~ N(0.964, 0.01) clipped to [0.92, 0.995] -> same person ~0.93; the centres share a common
  direction (c = sqrt(0.6) m + sqrt(0.4) r) as dlib's descriptors do, so faces of two persons are ~0.56 (euclidean
  ~0.94, beyond dlib's 0.6 = cosine 0.82).
The script reads a sample back from the database at the end and prints the measured mean cosines.

Databases: refuses (exit 2) one that already holds photos, persons or embeddings, or a file that is not SQLite,
unless --force: SQLite, the file and its -wal/-shm are deleted; PostgreSQL, `DROP SCHEMA public CASCADE; CREATE
SCHEMA public` on that database only. A missing SQLite file or PostgreSQL database is created (PostgreSQL through
the server's `postgres` database). SQLite is loaded with Python's sqlite3 (journal off, synchronous off, one
transaction, 50k photos a chunk), then journal_mode WAL as the service sets it; PostgreSQL by `COPY FROM STDIN`
streamed through `psql`, then `setval` of the id sequences and VACUUM (ANALYZE): the visibility map set, as
autovacuum leaves a library that has been running a while (right after the load, before autovacuum, index-only
scans still visit the heap and PostgreSQL chose slower plans for issue 25's person queries). Memory: the person
centres (M x dim float32) and a few int arrays of K; vectors are made 50k photos at a time.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODEL_VERSIONS = {512: "arcface-w600k_mbf+scrfd-500m-5pt", 128: "dlib-resnet-v1+hog-5pt"}
# (mean, sd, lo, hi) of a face's cosine to its person's centre, and the shared-direction weight of the centres.
SPREAD = {512: (0.75, 0.05, 0.55, 0.95, 0.0), 128: (0.964, 0.01, 0.92, 0.995, 0.6)}
MAX_FACES_PER_PHOTO = 12
CHUNK_PHOTOS = 50_000
SCHEMA_TABLES = {"photos", "persons", "embeddings", "photo_persons", "ingest_jobs", "ingest_batches", "photo_ingest_map",
                 "processed_callbacks", "reprocess_jobs", "reprocess_photos", "reprocess_faces", "face_rejections",
                 "recluster_jobs", "identity_generation", "face_thumbnails", "photo_previews", "identity_changes",
                 "ingest_rejections", "identity_snapshots", "identity_snapshot_persons", "parked_faces",
                 "parked_face_rejections", "_fluent_migrations", "sqlite_sequence"}
START_DATE = datetime.datetime(2008, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
END_DATE = datetime.datetime(2025, 12, 31, tzinfo=datetime.timezone.utc).timestamp()
SIZES = [(4032, 3024), (3024, 4032), (4000, 3000), (6000, 4000), (4000, 6000), (1920, 1080)]
SIZE_P = [0.45, 0.2, 0.15, 0.1, 0.05, 0.05]


class Refusal(Exception):
    """A reason to stop without touching anything (exit 2)."""


def log(msg: str) -> None:
    print(f"[generate-library] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the plan (ids, counts, persons)

def redistribute(counts: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Clips `counts` at `cap` and hands the excess to the entries below the cap, in proportion to their room."""
    for _ in range(1000):
        over = counts > cap
        if not over.any():
            return counts
        excess = int((counts[over] - cap).sum())
        counts[over] = cap
        room = (cap - counts).astype(np.float64)
        counts += rng.multinomial(excess, room / room.sum()).astype(counts.dtype)
    raise RuntimeError("could not spread the counts under the cap")


class Plan:
    """Everything but the vectors: which photo holds how many faces of which person. Arrays of N and K ints."""

    def __init__(self, n_photos: int, n_persons: int, n_faces: int, seed: int):
        rng = np.random.default_rng([seed, 1])
        N, M, K = n_photos, n_persons, n_faces
        per_photo_cap = min(MAX_FACES_PER_PHOTO, M)
        # Photos with faces: ~1.3 faces each when they can, at most 85 % of the photos unless K needs more.
        with_faces = min(max(round(K / 1.3), -(-K // per_photo_cap)), max(round(0.85 * N), 1), K)
        with_faces = max(with_faces, -(-K // per_photo_cap))
        if with_faces > N:
            raise Refusal(f"{K} faces do not fit in {N} photos (at most {per_photo_cap} distinct persons a photo)")
        extras = np.zeros(with_faces, dtype=np.int64)
        if K > with_faces:
            weights = rng.exponential(size=with_faces)   # a Poisson of exponential rate: geometric extras
            extras = rng.multinomial(K - with_faces, weights / weights.sum()).astype(np.int64)
            extras = redistribute(extras, per_photo_cap - 1, rng)
        face_photos = np.sort(rng.choice(N, with_faces, replace=False)) + 1
        self.face_count = np.zeros(N + 1, dtype=np.int32)          # index = photo id
        self.face_count[face_photos] = 1 + extras
        self.face_photo = np.repeat(np.arange(N + 1, dtype=np.int64), self.face_count)   # photo of each face
        # first face of each photo: offsets
        self.photo_first_face = np.zeros(N + 2, dtype=np.int64)
        np.cumsum(self.face_count, out=self.photo_first_face[1:])
        self.face_index = (np.arange(K, dtype=np.int64) - self.photo_first_face[self.face_photo]).astype(np.int32)

        # Person sizes: 1 each plus K - M spread by Zipf weights (1/rank), none larger than the photos with faces.
        sizes = np.ones(M, dtype=np.int64)
        if K > M:
            w = 1.0 / np.arange(1, M + 1)
            sizes += rng.multinomial(K - M, w / w.sum())
            sizes = redistribute(sizes, with_faces, rng)
        labels = np.repeat(np.arange(M, dtype=np.int64), sizes)
        rng.shuffle(labels)
        # Two faces of one photo are never one person: swap the duplicates with random faces until none is left.
        for attempt in range(500):
            order = np.lexsort((labels, self.face_photo))
            sp, sl = self.face_photo[order], labels[order]
            bad = order[1:][(sp[1:] == sp[:-1]) & (sl[1:] == sl[:-1])]
            if bad.size == 0:
                break
            for b, o in zip(bad.tolist(), rng.integers(0, K, bad.size).tolist()):
                labels[b], labels[o] = labels[o], labels[b]
        else:
            raise RuntimeError("could not place the persons without two faces of one person in a photo")
        # Ids in order of first appearance (photo id, then face index), as the service creates persons.
        _, first = np.unique(labels, return_index=True)          # first face of each old label
        new_id = np.empty(M, dtype=np.int64)
        new_id[np.argsort(first, kind="stable")] = np.arange(1, M + 1)
        self.person = new_id[labels]                                # person id of each face
        first_sorted = np.sort(first)
        self.created_person = np.zeros(K, dtype=bool)
        self.created_person[first_sorted] = True
        self.person_faces = np.bincount(self.person, minlength=M + 1)   # index = person id
        self.representative = self.face_photo[first_sorted]            # of person ids 1..M
        self.N, self.M, self.K, self.with_faces = N, M, K, with_faces
        self.sizes_sorted = np.sort(sizes)[::-1]


# --------------------------------------------------------------------------- rows, chunk by chunk

class Rows:
    """Generates the rows of photos [lo, hi) and their faces; deterministic per chunk."""

    def __init__(self, plan: Plan, dim: int, seed: int, now_ms: int):
        self.plan, self.dim, self.seed, self.now = plan, dim, seed, now_ms
        self.model_version = MODEL_VERSIONS[dim]
        rng = np.random.default_rng([seed, 2])
        mu, sd, lo, hi, shared = SPREAD[dim]
        centres = rng.standard_normal((plan.M + 1, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        if shared > 0:
            common = rng.standard_normal(dim).astype(np.float32)
            common /= np.linalg.norm(common)
            centres = np.float32(np.sqrt(shared)) * common + np.float32(np.sqrt(1 - shared)) * centres
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        self.centres = centres                                      # row = person id (row 0 unused)
        self.mu, self.sd, self.lo, self.hi = mu, sd, lo, hi
        times = np.sort(rng.uniform(START_DATE, END_DATE, plan.N))
        self.modified_ms = (times * 1000).astype(np.int64)
        self.width_digits = max(7, len(str(plan.N)))
        self.day_dirs: dict[int, str] = {}

    def day_dir(self, t_s: float) -> str:
        day = int(t_s // 86400)
        d = self.day_dirs.get(day)
        if d is None:
            d = self.day_dirs[day] = datetime.datetime.fromtimestamp(day * 86400, datetime.timezone.utc).strftime("%Y/%m/%d")
        return d

    def chunk(self, lo: int, hi: int):
        """(photos, embeddings, photo_persons) rows of photo ids lo..hi-1, as tuples in column order."""
        p = self.plan
        rng = np.random.default_rng([self.seed, 3, lo])
        n = hi - lo
        size_idx = rng.choice(len(SIZES), n, p=SIZE_P)
        wh = np.array(SIZES)[size_idx]
        filesize = rng.integers(1_200_000, 7_500_000, n)
        hashes = rng.integers(0, 2**63, n, dtype=np.int64)
        ml_ms = np.round(rng.uniform(15, 120, n), 2)
        f_lo, f_hi = int(p.photo_first_face[lo]), int(p.photo_first_face[hi])
        persons = p.person[f_lo:f_hi]
        face_photo = p.face_photo[f_lo:f_hi]
        # vectors: cos(t) c + sin(t) u, u a unit vector orthogonal to c
        k = f_hi - f_lo
        c = self.centres[persons]
        u = rng.standard_normal((k, self.dim), dtype=np.float32)
        u -= np.einsum("ij,ij->i", u, c)[:, None] * c
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        cos_t = np.clip(rng.normal(self.mu, self.sd, k), self.lo, self.hi).astype(np.float32)
        v = cos_t[:, None] * c + np.sqrt(1 - cos_t * cos_t)[:, None] * u
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        blob = v.astype("<f4").tobytes()
        step = self.dim * 4
        # taken dates: the generated time as a UTC wall clock (`YYYY-MM-DDTHH:MM:SS`, whole seconds)
        taken = np.datetime_as_string(self.modified_ms[lo - 1:hi - 1].astype("datetime64[ms]").astype("datetime64[s]"),
                                      unit="s").tolist()
        # boxes inside the photo
        pw, ph = wh[face_photo - lo, 0], wh[face_photo - lo, 1]
        fw = rng.integers(60, 520, k)
        x1 = (rng.random(k) * (pw - fw)).astype(np.int64)
        fh = np.minimum((fw * 1.25).astype(np.int64), ph - 1)
        y1 = (rng.random(k) * (ph - fh)).astype(np.int64)
        conf = np.round(rng.uniform(0.55, 0.995, k), 4)
        created = p.created_person[f_lo:f_hi]
        sim = np.round(self.mu * cos_t, 4)        # ~ mean cosine to the person's other faces
        now = self.now
        mv = self.model_version
        embeddings = [
            (f_lo + i + 1, int(face_photo[i]), int(persons[i]), int(p.face_index[f_lo + i]), blob[i * step:(i + 1) * step],
             int(x1[i]), int(y1[i]), int(x1[i] + fw[i]), int(y1[i] + fh[i]), float(conf[i]),
             None if created[i] else float(sim[i]), bool(created[i]), mv, now)
            for i in range(k)]
        photo_persons = [(int(face_photo[i]), int(persons[i]), taken[int(face_photo[i]) - lo]) for i in range(k)]
        photos = []
        fc = p.face_count
        first = p.photo_first_face
        for j in range(n):
            pid = lo + j
            t_ms = int(self.modified_ms[pid - 1])
            name = f"IMG_{pid:0{self.width_digits}d}.jpg"
            count = int(fc[pid])
            a = int(first[pid]) - f_lo
            pids = ",".join(str(x) for x in persons[a:a + count].tolist())
            photos.append((pid, f"/library/{self.day_dir(t_ms / 1000)}/{name}", name, "jpeg", int(filesize[j]), t_ms,
                           f"{int(hashes[j]):016x}", int(wh[j, 0]), int(wh[j, 1]), "PROCESSED", 0, 1, count == 0, count,
                           f"[{pids}]", mv, float(ml_ms[j]), now, now, taken[j], TAKEN_SOURCE))
        return photos, embeddings, photo_persons

    def persons(self):
        p = self.plan
        for pid in range(1, p.M + 1):
            n = int(p.person_faces[pid])
            yield (pid, n, n, int(p.representative[pid - 1]), self.now, self.now)


PHOTO_COLS = ("id, path, filename, format, filesize, modified_at, sample_hash, width, height, status, retry_count, attempt, "
              "no_faces, face_count, person_ids, model_version, ml_ms, created_at, updated_at, taken_at, taken_at_source")
EMB_COLS = ("id, photo_id, person_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence, similarity, "
            "created_person, model_version, created_at")
PERSON_COLS = "id, face_count, photo_count, representative_photo_id, created_at, updated_at"
PHOTO_PERSON_COLS = "photo_id, person_id, taken_at"
TAKEN_SOURCE = "exif"   # as if every photo's header held its date (no offset: taken_offset stays NULL)


# --------------------------------------------------------------------------- helpers

def resolve_binary(arg: str | None) -> Path:
    candidates = [arg] if arg else [os.environ.get("PHOTO_SORTER_BIN"), str(REPO / ".build" / "release" / "photo-sorter")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise Refusal(f"photo-sorter binary not found (tried {', '.join(c for c in candidates if c)}); "
                  "build it (swift build -c release) or pass --binary / set PHOTO_SORTER_BIN")


def migrate(binary: Path, database: str) -> None:
    r = subprocess.run([str(binary), "migrate", "--database", database], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PHOTO_SORTER_ML_URL="http://127.0.0.1:9"))
    if r.returncode != 0:
        raise SystemExit(f"{binary} migrate --database {database} exited {r.returncode}:\n{(r.stdout + r.stderr)[-3000:]}")


def check_schema(database: str, is_pg: bool) -> None:
    """The migrated schema has the columns this generator fills (a binary from before issue 25 lacks the dates)."""
    if is_pg:
        rows = psql(database, "SELECT table_name || '.' || column_name FROM information_schema.columns "
                              "WHERE table_schema = current_schema() AND table_name IN ('photos', 'photo_persons')").stdout.split()
    else:
        con = sqlite3.connect(database)
        rows = [f"{t}.{r[1]}" for t in ("photos", "photo_persons") for r in con.execute(f"PRAGMA table_info({t})")]
        con.close()
    missing = sorted({"photos.taken_at", "photos.taken_at_source", "photo_persons.taken_at"} - set(rows))
    if missing:
        raise SystemExit(f"the schema of this binary lacks {', '.join(missing)} (built before issue 25's taken dates?): "
                         "rebuild it or pass a newer --binary")


def psql_bin() -> str:
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                  key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for d in dirs:
        if (d / "psql").is_file():
            return str(d / "psql")
    found = shutil.which("psql")
    if not found:
        raise Refusal("psql not found (Debian package postgresql-client, under /usr/lib/postgresql/*/bin)")
    return found


def psql(url: str, sql: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([psql_bin(), url, "-v", "ON_ERROR_STOP=1", "-X", "-tAqc", sql], capture_output=True, text=True,
                       timeout=3600)
    if check and r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()[-2000:]}\n{sql[:500]}")
    return r


def pg_parts(url: str) -> tuple[str, str]:
    """(the URL of the server's `postgres` database, the database name) of a postgres:// URL."""
    m = re.match(r"^(postgres(?:ql)?://[^/]*)/([^/?#]+)(\?.*)?$", url)
    if not m:
        raise Refusal(f"cannot read a database name from {url!r} (expected postgres://user@host:port/dbname)")
    return f"{m.group(1)}/postgres{m.group(3) or ''}", m.group(2)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------- SQLite

def sqlite_path(database: str) -> Path:
    if database.startswith("sqlite://"):
        database = database[len("sqlite://"):]
    return Path(database)


def sqlite_prepare(path: Path, force: bool) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if path.is_dir():
        raise Refusal(f"{path} is a directory, not a SQLite file")
    reason = None
    if path.stat().st_size > 0:
        with open(path, "rb") as f:
            header = f.read(16)
        if header != b"SQLite format 3\x00":
            reason = "it is not a SQLite database"
        else:
            try:
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                          for t in ("photos", "persons", "embeddings") if t in tables}
                con.close()
            except sqlite3.DatabaseError as e:
                reason = f"it cannot be read as SQLite ({e})"
            else:
                foreign = sorted(tables - SCHEMA_TABLES)
                if any(counts.values()):
                    reason = "it holds " + ", ".join(f"{counts.get(t, 0)} {t}" for t in ("photos", "persons", "embeddings"))
                elif foreign:
                    reason = f"it holds tables that are not photo-sorter's ({', '.join(foreign[:5])})"
    if reason is None:
        return
    if not force:
        raise Refusal(f"refusing to fill {path}: {reason} (--force deletes and recreates it)")
    log(f"--force: deleting {path} ({reason})")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def sqlite_load(path: Path, rows: Rows, plan: Plan) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = OFF")      # a fresh file: a failed load is regenerated with --force
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -1000000")   # 1 GB
    con.execute("PRAGMA temp_store = MEMORY")
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO persons ({PERSON_COLS}) VALUES (?,?,?,?,?,?)", rows.persons())
    t0 = time.perf_counter()
    for lo in range(1, plan.N + 1, CHUNK_PHOTOS):
        hi = min(lo + CHUNK_PHOTOS, plan.N + 1)
        photos, embeddings, photo_persons = rows.chunk(lo, hi)
        con.executemany(f"INSERT INTO photos ({PHOTO_COLS}) VALUES ({','.join('?' * 21)})", photos)
        con.executemany(f"INSERT INTO embeddings ({EMB_COLS}) VALUES ({','.join('?' * 14)})", embeddings)
        con.executemany(f"INSERT INTO photo_persons ({PHOTO_PERSON_COLS}) VALUES (?,?,?)", photo_persons)
        done = hi - 1
        log(f"  photos {done:,}/{plan.N:,}, faces {int(plan.photo_first_face[hi]):,}/{plan.K:,} "
            f"({time.perf_counter() - t0:.1f} s)")
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode = WAL")      # what the service sets at start-up
    con.execute("ANALYZE")
    con.close()


def sqlite_counts(path: Path) -> dict:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    q = lambda s: con.execute(s).fetchone()[0]  # noqa: E731
    out = {t: q(f"SELECT COUNT(*) FROM {t}") for t in ("photos", "persons", "embeddings", "photo_persons")}
    con.close()
    return out


def sqlite_sample(path: Path, person_ids: list[int], face_ids: list[int]) -> tuple[list, list]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    same = con.execute(f"SELECT person_id, vector FROM embeddings WHERE person_id IN ({','.join(map(str, person_ids))})").fetchall()
    rand = con.execute(f"SELECT person_id, vector FROM embeddings WHERE id IN ({','.join(map(str, face_ids))})").fetchall()
    con.close()
    return same, rand


# --------------------------------------------------------------------------- PostgreSQL

def pg_prepare(url: str, force: bool) -> None:
    admin, name = pg_parts(url)
    r = psql(url, "SELECT 1", check=False)
    if r.returncode != 0:
        if "does not exist" in r.stderr:
            log(f"creating database {name}")
            psql(admin, f'CREATE DATABASE "{name}"')
            return
        raise Refusal(f"cannot connect to {url}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    present = set(psql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").stdout.split())
    counted = [t for t in ("photos", "persons", "embeddings") if t in present]
    counts = dict.fromkeys(("photos", "persons", "embeddings"), 0)
    if counted:
        vals = psql(url, "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {t})" for t in counted)).stdout.strip().split("|")
        counts.update(zip(counted, (int(v) for v in vals)))
    foreign = sorted(present - SCHEMA_TABLES)
    if any(counts.values()):
        reason = "it holds " + ", ".join(f"{counts[t]} {t}" for t in ("photos", "persons", "embeddings"))
    elif foreign:
        reason = f"it holds tables that are not photo-sorter's ({', '.join(foreign[:5])})"
    else:
        return
    if not force:
        raise Refusal(f"refusing to fill {url}: {reason} (--force drops its public schema and recreates it)")
    if name == "photo_sorter_test":
        raise Refusal("refusing to --force photo_sorter_test, the test suite's database; name another database")
    log(f"--force: dropping the public schema of {name} ({reason})")
    psql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def copy_text(value) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return str(value)


def copy_block(table: str, cols: str, rows) -> bytes:
    """`COPY ... FROM STDIN` with its rows in text format, as psql reads it from a script (ended by `\\.`)."""
    body = "".join("\t".join(map(copy_text, r)) + "\n" for r in rows)
    return f"COPY {table} ({cols}) FROM STDIN;\n{body}\\.\n".encode()


def pg_load(url: str, rows: Rows, plan: Plan) -> None:
    """One psql session reading a script from stdin: one transaction, persons then per chunk of photos their
    photos, embeddings and photo_persons as COPY blocks (the foreign keys see the session's own rows)."""
    proc = subprocess.Popen([psql_bin(), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"BEGIN;\n")
        proc.stdin.write(copy_block("persons", PERSON_COLS, rows.persons()))
        t0 = time.perf_counter()
        for lo in range(1, plan.N + 1, CHUNK_PHOTOS):
            hi = min(lo + CHUNK_PHOTOS, plan.N + 1)
            photos, embeddings, photo_persons = rows.chunk(lo, hi)
            proc.stdin.write(copy_block("photos", PHOTO_COLS, photos))
            proc.stdin.write(copy_block("embeddings", EMB_COLS, embeddings))
            proc.stdin.write(copy_block("photo_persons", PHOTO_PERSON_COLS, photo_persons))
            log(f"  photos {hi - 1:,}/{plan.N:,}, faces {int(plan.photo_first_face[hi]):,}/{plan.K:,} "
                f"({time.perf_counter() - t0:.1f} s)")
        proc.stdin.write(f"""
            SELECT setval(pg_get_serial_sequence('photos', 'id'), {plan.N});
            SELECT setval(pg_get_serial_sequence('persons', 'id'), {plan.M});
            SELECT setval(pg_get_serial_sequence('embeddings', 'id'), {max(plan.K, 1)});
            COMMIT;
            VACUUM (ANALYZE);
            """.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise SystemExit(f"loading {url} through psql failed: {err[-2000:]}")


def pg_counts(url: str) -> dict:
    keys = ("photos", "persons", "embeddings", "photo_persons")
    vals = psql(url, "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {t})" for t in keys)).stdout.strip().split("|")
    return dict(zip(keys, (int(v) for v in vals)))


def pg_sample(url: str, person_ids: list[int], face_ids: list[int]) -> tuple[list, list]:
    def q(where: str) -> list:
        out = psql(url, f"SELECT person_id, encode(vector, 'hex') FROM embeddings WHERE {where}").stdout.split()
        return [(int(a), bytes.fromhex(b)) for a, b in (line.split("|") for line in out)]
    return q(f"person_id IN ({','.join(map(str, person_ids))})"), q(f"id IN ({','.join(map(str, face_ids))})")


# --------------------------------------------------------------------------- main

def measured_cosines(same_rows: list, rand_rows: list, dim: int) -> tuple[float, float, int, int]:
    def vec(b: bytes) -> np.ndarray:
        v = np.frombuffer(b, "<f4")
        if v.size != dim:
            raise RuntimeError(f"a stored vector has {v.size} values, expected {dim}")
        return v
    by: dict[int, list] = {}
    for person, blob in same_rows:
        by.setdefault(person, []).append(vec(blob))
    same = []
    for vs in by.values():
        V = np.array(vs)
        S = V @ V.T
        same.extend(S[np.triu_indices(len(vs), 1)].tolist())
    persons = np.array([r[0] for r in rand_rows])
    R = np.array([vec(r[1]) for r in rand_rows])
    S = R @ R.T
    iu = np.triu_indices(len(R), 1)
    diff = S[iu][persons[iu[0]] != persons[iu[1]]]
    norms = np.linalg.norm(R, axis=1)
    if np.abs(norms - 1).max() > 1e-4:
        raise RuntimeError(f"stored vectors are not unit length (max deviation {np.abs(norms - 1).max():.2e})")
    return float(np.mean(same)), float(np.mean(diff)), len(same), int(diff.size)


def dir_size(path: Path) -> int:
    return sum(Path(str(path) + s).stat().st_size for s in ("", "-wal", "-shm") if Path(str(path) + s).exists())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", required=True, help="SQLite file path (or sqlite:///abs/path) or postgres://user@host:port/db")
    ap.add_argument("--photos", type=int, required=True)
    ap.add_argument("--persons", type=int, required=True)
    ap.add_argument("--faces", type=int, required=True)
    ap.add_argument("--dim", type=int, required=True, choices=(128, 512))
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--binary", help="photo-sorter binary (default $PHOTO_SORTER_BIN, else .build/release/photo-sorter)")
    ap.add_argument("--force", action="store_true", help="replace a database that already holds a library")
    args = ap.parse_args()
    try:
        if args.photos < 1 or args.persons < 1 or args.faces < 0:
            raise Refusal("--photos and --persons must be >= 1, --faces >= 0")
        if args.faces < args.persons:
            raise Refusal(f"--faces ({args.faces}) must be >= --persons ({args.persons}): every person has a face")
        if args.faces > args.photos * min(MAX_FACES_PER_PHOTO, args.persons):
            raise Refusal(f"{args.faces} faces do not fit in {args.photos} photos "
                          f"(at most {min(MAX_FACES_PER_PHOTO, args.persons)} faces of distinct persons a photo)")
        binary = resolve_binary(args.binary)
        is_pg = args.database.startswith(("postgres://", "postgresql://"))
        if is_pg:
            pg_parts(args.database)
            psql_bin()
        t_start = time.perf_counter()
        plan = Plan(args.photos, args.persons, args.faces, args.seed)
        t_plan = time.perf_counter() - t_start
        if is_pg:
            pg_prepare(args.database, args.force)
        else:
            sqlite_prepare(sqlite_path(args.database), args.force)
    except Refusal as e:
        print(f"generate_library: {e}", file=sys.stderr)
        return 2
    database = args.database if is_pg else str(sqlite_path(args.database))
    log(f"plan: {plan.N:,} photos ({plan.with_faces:,} with faces), {plan.M:,} persons, {plan.K:,} faces, "
        f"{args.dim}-d; largest persons {plan.sizes_sorted[:5].tolist()} faces, "
        f"persons with 1-5 faces {int((plan.sizes_sorted <= 5).sum()):,} ({t_plan:.1f} s)")
    t0 = time.perf_counter()
    migrate(binary, database)
    check_schema(database, is_pg)
    rows = Rows(plan, args.dim, args.seed, int(time.time() * 1000))
    t_load = time.perf_counter()
    if is_pg:
        pg_load(database, rows, plan)
        counts = pg_counts(database)
        size = int(psql(database, "SELECT pg_database_size(current_database())").stdout.strip())
    else:
        sqlite_load(Path(database), rows, plan)
        counts = sqlite_counts(Path(database))
        size = dir_size(Path(database))
    load_s = time.perf_counter() - t_load
    total_s = time.perf_counter() - t0 + t_plan
    expected = {"photos": plan.N, "persons": plan.M, "embeddings": plan.K, "photo_persons": plan.K}
    if counts != expected:
        raise SystemExit(f"row counts {counts} differ from the plan {expected}")
    all_rows = sum(counts.values())
    # sample cosines, read back from the database
    rng = np.random.default_rng([args.seed, 4])
    sizes = plan.person_faces[1:]
    small = np.flatnonzero((sizes >= 2) & (sizes <= 50)) + 1
    sample_persons = rng.choice(small, min(300, small.size), replace=False).tolist() if small.size else [1]
    sample_faces = (rng.choice(plan.K, min(2000, plan.K), replace=False) + 1).tolist() if plan.K else [1]
    same_rows, rand_rows = (pg_sample if is_pg else sqlite_sample)(database, sample_persons, sample_faces)
    if plan.K:
        same, diff, n_same, n_diff = measured_cosines(same_rows, rand_rows, args.dim)
        cos_line = (f"sample cosines: same person {same:.3f} ({n_same:,} pairs of {len(sample_persons)} persons), "
                    f"different persons {diff:.3f} ({n_diff:,} pairs)")
    else:
        cos_line = "no faces"
    print(f"generated {database}: {counts['photos']:,} photos, {counts['persons']:,} persons, {counts['embeddings']:,} faces "
          f"({args.dim}-d, {MODEL_VERSIONS[args.dim]}), {counts['photo_persons']:,} photo_persons")
    print(f"time {total_s:.1f} s (load {load_s:.1f} s), {all_rows / load_s:,.0f} rows/s, {plan.K / load_s:,.0f} faces/s; "
          f"database size {human(size)}")
    print(cos_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
