#!/usr/bin/env python3
r"""Benchmark of the real `photo-sorter recluster` command on a library of 100,000 faces (synthetic data).

    ml-service/.venv/bin/python bench/recluster/bench_recluster.py [--faces 100000] [--results-md] \
        [--binary .build/release/photo-sorter] [--json bench/out/recluster-bench.json]

What it does:

1. Creates an empty SQLite database with the real schema (`photo-sorter migrate --database X`).
2. Inserts, with Python's sqlite3, a library of `--faces` faces: the real ArcFace embeddings of `lfw_small`
   (`bench/out/embeddings-arcface-lfw_small.json`, every detection of its 576 photos, with their real photo
   grouping) plus generated persons up to the total. A generated person is a random unit centre in 512-d; each
   face is normalise(centre + s * random unit direction) with s drawn per face from [--noise-min, --noise-max]
   (default 0.6 .. 1.1), so two faces of one person score cos = 1/sqrt((1+s1^2)(1+s2^2)) ~ 0.45 .. 0.74 (real
   ArcFace pairs of one `lfw_small` person: median 0.6) and faces of two persons ~0 (sd 0.044; real ArcFace:
   mean 0.005, sd 0.065). Person sizes follow a power law (k^-0.9 over --persons persons, at least 2 faces each:
   a few persons with thousands of faces, like a family library) plus --stranger-share one-face strangers.
   Generated faces are packed into photos of 1..8 faces (60% one face) with distinct persons per photo.
   Every row carries every column the migrations require (photos, persons, embeddings, photo_persons), with the
   model_version `arcface-w600k_mbf+scrfd-500m-5pt` and float32 little-endian vectors.
3. Initial persons: each face starts in its true person (as the online rule would put it), except that
   --misplaced of the faces (default 1%) start in a wrong person, and the background faces of lfw_small photos
   start as persons of their own. The *first* `photo-sorter recluster` assigns everything by the rule
   (settling the library); the *second* runs on the settled library and must move 0 faces ("running it twice
   changes nothing").
4. Times both runs with `/usr/bin/time -v` (wall time and peak RSS of the whole command: start-up, loading the
   identity index, the re-cluster, the transaction) and reports the command's own `seconds` figure.
5. Scores the persons afterwards against the true persons (pairwise and BCubed, bench/accuracy/metrics.py).

Bars: each run under 2 minutes and under 4 GiB on the 2-core machine.

If `bench/out/embeddings-arcface-lfw_small.json` is missing, record it first:

    ml-service/.venv/bin/python bench/accuracy/record_embeddings.py --model arcface \
        ../shared/testdata/faces/lfw_small --out bench/out/embeddings-arcface-lfw_small.json
"""
from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e"))
sys.path.insert(0, str(REPO / "bench" / "accuracy"))
import harness  # noqa: E402
import metrics  # noqa: E402
sys.path.insert(0, str(REPO / "bench" / "scale"))
import generate_library as pg_tools  # noqa: E402  (psql, pg_prepare, copy_block: the scale bench's PostgreSQL loader)
from record_embeddings import read_recording  # noqa: E402

MODEL_VERSION = "arcface-w600k_mbf+scrfd-500m-5pt"
DIM = 512
DEFAULT_EMBEDDINGS = REPO / "bench" / "out" / "embeddings-arcface-lfw_small.json"
RESULTS_HEADING = "Re-cluster of 100k faces (synthetic data, real `photo-sorter recluster`)"


def log(msg: str) -> None:
    print(f"[recluster-bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data

def load_real(path: Path) -> list[dict]:
    """lfw_small photos: [{path, width, height, faces: [(vector, bbox, label or None)]}], labelled face = nearest centre."""
    data = read_recording(path, MODEL_VERSION, "../shared/testdata/faces/lfw_small")
    photos = []
    for p in data["photos"]:
        dets = p.get("detections") or []
        if not dets:
            continue
        parts = p["path"].split("/")
        identity = parts[1] if len(parts) >= 3 and not parts[1].startswith("_") else None
        cx, cy = p["width"] / 2, p["height"] / 2
        centre = min(range(len(dets)), key=lambda i: math.hypot((dets[i]["bbox"][0] + dets[i]["bbox"][2]) / 2 - cx,
                                                                 (dets[i]["bbox"][1] + dets[i]["bbox"][3]) / 2 - cy))
        faces = []
        for i, d in enumerate(dets):
            v = np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4").astype(np.float32)
            if v.shape[0] != DIM:
                raise SystemExit(f"{p['path']}: embedding of {v.shape[0]} values, expected {DIM}")
            v = v / np.linalg.norm(v)
            faces.append((v, [int(x) for x in d["bbox"]], identity if i == centre else None))
        photos.append({"path": p["path"], "width": p["width"], "height": p["height"], "faces": faces})
    return photos


def person_sizes(total: int, persons: int, alpha: float) -> list[int]:
    """`persons` sizes >= 2 summing to `total`, proportional to k^-alpha."""
    if total < 2 * persons:
        persons = max(1, total // 2)
    w = np.arange(1, persons + 1, dtype=np.float64) ** -alpha
    extra = total - 2 * persons
    sizes = 2 + np.floor(extra * w / w.sum()).astype(int)
    sizes[: total - int(sizes.sum())] += 1  # hand out the rounding remainder to the largest
    assert int(sizes.sum()) == total, (int(sizes.sum()), total)
    return sizes.tolist()


def generate(rng: np.random.Generator, n_faces: int, n_persons: int, alpha: float, stranger_share: float,
             noise: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors float32 [n, 512] unit, labels int [n]) for `n_faces` generated faces."""
    n_strangers = int(round(n_faces * stranger_share))
    sizes = person_sizes(n_faces - n_strangers, n_persons, alpha) + [1] * n_strangers
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.standard_normal((len(sizes), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n_faces, DIM), dtype=np.float32)
    chunk = 20000
    for start in range(0, n_faces, chunk):
        end = min(n_faces, start + chunk)
        d = rng.standard_normal((end - start, DIM)).astype(np.float32)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        s = rng.uniform(noise[0], noise[1], size=(end - start, 1)).astype(np.float32)
        v = centres[labels[start:end]] + s * d
        out[start:end] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, labels


def pack_photos(rng: np.random.Generator, labels: np.ndarray) -> list[list[int]]:
    """Shuffled face indices packed into photos of 1..8 faces, never two faces of one person in a photo."""
    order = rng.permutation(len(labels)).tolist()
    sizes_p = [(1, 0.60), (2, 0.20), (3, 0.10), (4, 0.05), (5, 0.02), (6, 0.015), (7, 0.01), (8, 0.005)]
    ks, ps = zip(*sizes_p)
    photos, pending = [], []
    while order or pending:
        want = int(rng.choice(ks, p=np.array(ps) / sum(ps)))
        photo, seen, skipped = [], set(), []
        while len(photo) < want and (pending or order):
            f = pending.pop() if pending else order.pop()
            if labels[f] in seen:
                skipped.append(f)
                if len(skipped) > 8:
                    break
                continue
            photo.append(f)
            seen.add(labels[f])
        pending.extend(skipped)
        photos.append(photo)
    return [p for p in photos if p]


def pair_stats(rng: np.random.Generator, vectors: np.ndarray, labels: np.ndarray, n: int = 20000) -> dict:
    """Cosine similarity of random same-person and different-person pairs (calibration check)."""
    by = {}
    for i, l in enumerate(labels):
        by.setdefault(int(l), []).append(i)
    multi = [v for v in by.values() if len(v) >= 2]
    same, diff = [], []
    for _ in range(n):
        g = multi[rng.integers(len(multi))]
        a, b = rng.choice(len(g), 2, replace=False)
        same.append(float(vectors[g[a]] @ vectors[g[b]]))
        a, b = rng.integers(len(labels), size=2)
        if labels[a] != labels[b]:
            diff.append(float(vectors[a] @ vectors[b]))
    q = lambda xs: [round(float(x), 3) for x in np.percentile(xs, [5, 50, 95])]  # noqa: E731
    return {"same_p5_p50_p95": q(same), "different_p5_p50_p95": q(diff), "different_max": round(max(diff), 3)}


def real_pair_stats(real: list[dict]) -> dict:
    vecs = [f[0] for p in real for f in p["faces"] if f[2] is not None]
    labs = [f[2] for p in real for f in p["faces"] if f[2] is not None]
    x = np.stack(vecs)
    s = x @ x.T
    la = np.array(labs)
    iu = np.triu_indices(len(labs), 1)
    same = (la[:, None] == la[None, :])[iu]
    v = s[iu]
    q = lambda xs: [round(float(t), 3) for t in np.percentile(xs, [5, 50, 95])]  # noqa: E731
    return {"same_p5_p50_p95": q(v[same]), "different_p5_p50_p95": q(v[~same]), "different_max": round(float(v[~same].max()), 3)}


# --------------------------------------------------------------------------- database

def build_library(args, rng: np.random.Generator, db: Path) -> dict:
    real = load_real(args.embeddings)
    n_real = sum(len(p["faces"]) for p in real)
    n_gen = args.faces - n_real
    if n_gen < 0:
        raise SystemExit(f"--faces {args.faces} is less than the {n_real} real faces")
    log(f"generating {n_gen} faces ({args.persons} recurring persons, {args.stranger_share:.0%} strangers) "
        f"+ {n_real} real lfw_small faces ...")
    gen_vecs, gen_labels = generate(rng, n_gen, args.persons, args.alpha, args.stranger_share,
                                    (args.noise_min, args.noise_max))
    gen_photos = pack_photos(rng, gen_labels)

    # Arrival order: generated photos with the real ones spread among them.
    entries = [("gen", i) for i in range(len(gen_photos))]
    for j, pos in enumerate(sorted(rng.integers(0, len(entries) + 1, size=len(real)).tolist(), reverse=True)):
        entries.insert(pos, ("real", len(real) - 1 - j))

    # Faces in commit order with their truth and initial person.
    truth_of_label: dict = {}
    faces = []  # (photo_no, face_index, vector, bbox, truth_key, scored)
    photos = []  # (path, width, height)
    for kind, i in entries:
        photo_no = len(photos)
        if kind == "gen":
            photos.append((f"/synthetic/library/{photo_no // 1000:03d}/IMG_{photo_no:06d}.jpg", 4000, 3000))
            for fi, f in enumerate(gen_photos[i]):
                x = 200 + 600 * fi
                faces.append((photo_no, fi, gen_vecs[f], [x, 800, x + 400, 1300], ("gen", int(gen_labels[f])), True))
        else:
            p = real[i]
            photos.append(("/synthetic/lfw/" + p["path"], p["width"], p["height"]))
            for fi, (v, bbox, label) in enumerate(p["faces"]):
                key = ("lfw", label) if label is not None else ("lfw-bg", f"{p['path']}#{fi}")
                faces.append((photo_no, fi, v, bbox, key, label is not None))

    # Initial persons: truth, in order of first appearance; a share misplaced into another person not in the photo.
    person_of_truth: dict = {}
    initial = []
    for photo_no, fi, v, bbox, key, _ in faces:
        if key not in person_of_truth:
            person_of_truth[key] = len(person_of_truth) + 1
        initial.append(person_of_truth[key])
    n_persons = len(person_of_truth)
    misplaced = 0
    by_photo: dict = {}
    for idx, f in enumerate(faces):
        by_photo.setdefault(f[0], []).append(idx)
    for idx in rng.permutation(len(faces))[: int(round(len(faces) * args.misplaced))].tolist():
        others = {initial[j] for j in by_photo[faces[idx][0]]}
        while True:
            target = int(rng.integers(1, n_persons + 1))
            if target not in others:
                break
        initial[idx] = target
        misplaced += 1

    log(f"writing {len(photos)} photos, {len(faces)} faces, {n_persons} persons to {db} ...")
    now = int(time.time() * 1000)
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    with con:
        person_faces: dict = {}
        person_photos: dict = {}
        photo_person_ids: dict = {}
        for idx, f in enumerate(faces):
            pid, ph = initial[idx], f[0] + 1
            person_faces[pid] = person_faces.get(pid, 0) + 1
            person_photos.setdefault(pid, []).append(ph)
            lst = photo_person_ids.setdefault(ph, [])
            if pid not in lst:
                lst.append(pid)
        con.executemany(
            "INSERT INTO photos (id, path, filename, format, filesize, modified_at, sample_hash, width, height, status, "
            "retry_count, attempt, last_error, processing_started_at, next_attempt_at, no_faces, face_count, person_ids, "
            "model_version, ml_ms, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'PROCESSED',0,1,NULL,NULL,NULL,0,?,?,?,?,?,?)",
            ((n + 1, path, path.rsplit("/", 1)[1], "jpg", 2_000_000 + n, now, f"{n:016x}", w, h,
              sum(1 for _ in by_photo[n]), json.dumps(photo_person_ids[n + 1], separators=(",", ":")), MODEL_VERSION,
              30.0, now + n, now + n)
             for n, (path, w, h) in enumerate(photos)))
        con.executemany(
            "INSERT INTO persons (id, display_name, face_count, photo_count, representative_photo_id, created_at, updated_at) "
            "VALUES (?, NULL, ?, ?, ?, ?, ?)",
            ((pid, person_faces.get(pid, 0), len(set(person_photos.get(pid, []))),
              min(person_photos[pid]) if pid in person_photos else None, now, now) for pid in range(1, n_persons + 1)))
        first_face_of: dict = {}
        rows = []
        for idx, (photo_no, fi, v, bbox, key, _) in enumerate(faces):
            pid = initial[idx]
            created = pid not in first_face_of
            first_face_of.setdefault(pid, idx)
            rows.append((idx + 1, photo_no + 1, pid, fi, np.asarray(v, dtype="<f4").tobytes(), *bbox, 0.9,
                         None if created else 0.6, int(created), MODEL_VERSION, now + photo_no))
        con.executemany(
            "INSERT INTO embeddings (id, photo_id, person_id, face_index, vector, bbox_x1, bbox_y1, bbox_x2, bbox_y2, confidence, "
            "similarity, created_person, suggested_person_id, model_version, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?)",
            rows)
        con.executemany("INSERT INTO photo_persons (photo_id, person_id) VALUES (?, ?)",
                        ((ph, pid) for ph, pids in photo_person_ids.items() for pid in pids))
    con.close()
    multi = sum(1 for v in by_photo.values() if len(v) > 1)
    gen_persons = len(set(gen_labels.tolist()))
    return {
        "faces": len(faces), "photos": len(photos), "photos_with_several_faces": multi,
        "initial_persons": n_persons, "misplaced_faces": misplaced, "real_faces": n_real, "real_photos": len(real),
        "generated_faces": n_gen, "generated_persons": gen_persons,
        "generated_strangers": int(round(n_gen * args.stranger_share)),
        "largest_person": int(np.bincount(gen_labels).max()) if n_gen else 0,
        "calibration_generated": pair_stats(rng, gen_vecs, gen_labels),
        "calibration_lfw_small": real_pair_stats(real),
        "truth": [(idx + 1, f[4], f[5]) for idx, f in enumerate(faces)],
    }


# --------------------------------------------------------------------------- PostgreSQL

COPIED_TABLES = ("persons", "photos", "embeddings", "photo_persons")


def copy_to_postgres(db: Path, url: str, binary: Path) -> None:
    """The SQLite library, row for row, in a PostgreSQL database migrated by the real binary: one psql session,
    one transaction, a COPY block per table (chunks of 20,000 rows), sequences set past the copied ids."""
    pg_tools.pg_prepare(url, force=True)
    pg_tools.migrate(binary, url)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    proc = subprocess.Popen([pg_tools.psql_bin(), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"BEGIN;\n")
        for table in COPIED_TABLES:
            pg_types = dict(line.split("|") for line in pg_tools.psql(
                url, f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}'").stdout.split("\n")
                if line)
            cols = [c[1] for c in con.execute(f"PRAGMA table_info({table})") if c[1] in pg_types]
            bools = {c for c in cols if pg_types[c] == "boolean"}
            cursor = con.execute(f"SELECT {', '.join(cols)} FROM {table}")
            while rows := cursor.fetchmany(20_000):
                rows = [tuple(bool(v) if c in bools and v is not None else v for c, v in zip(cols, r)) for r in rows]
                proc.stdin.write(pg_tools.copy_block(table, ", ".join(cols), rows))
            log(f"  copied {table}")
        for table in ("persons", "photos", "embeddings"):
            proc.stdin.write(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}));\n".encode())
        proc.stdin.write(b"COMMIT;\nVACUUM (ANALYZE);\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    con.close()
    if proc.wait() != 0:
        raise SystemExit(f"copying the library into {url} failed: {err[-2000:]}")


# --------------------------------------------------------------------------- runs

def parse_time_v(text: str) -> dict:
    out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_mib"] = int(m.group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        out["wall_seconds"] = secs
    m = re.search(r"User time \(seconds\): ([\d.]+)", text)
    if m:
        out["user_seconds"] = float(m.group(1))
    m = re.search(r"System time \(seconds\): ([\d.]+)", text)
    if m:
        out["system_seconds"] = float(m.group(1))
    return out


def parse_json_output(stdout: str):
    s = stdout.strip()
    try:
        return json.loads(s)
    except ValueError:
        pass
    start = s.find("{")
    while start >= 0:
        try:
            return json.loads(s[start:])
        except ValueError:
            start = s.find("{", start + 1)
    return None


class PeakRSS:
    """Fallback when /usr/bin/time is missing: polls /proc/<pid>/status VmHWM."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kb = 0

    def poll(self) -> None:
        try:
            for line in open(f"/proc/{self.pid}/status"):
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
        except OSError:
            pass


def run_recluster(binary: Path, db, workdir: Path, name: str, timeout: float) -> dict:
    argv = [str(binary), "recluster", "--database", str(db)]
    time_bin = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    stdout_path, stderr_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    log(f"{name}: {' '.join(argv)}")
    t0 = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        if time_bin:
            proc = subprocess.Popen([time_bin, "-v", *argv], cwd=str(REPO), env=harness.base_env(), stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL)
            rc = proc.wait(timeout)
            peak = None
        else:
            proc = subprocess.Popen(argv, cwd=str(REPO), env=harness.base_env(), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            peak = PeakRSS(proc.pid)
            while proc.poll() is None:
                peak.poll()
                time.sleep(0.05)
                if time.monotonic() - t0 > timeout:
                    proc.kill()
                    raise TimeoutError(f"{name} ran over {timeout}s")
            rc = proc.returncode
    wall = time.monotonic() - t0
    stdout, stderr = stdout_path.read_text(errors="replace"), stderr_path.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{name}: exit {rc}\nstdout: {stdout[-3000:]}\nstderr: {stderr[-3000:]}")
    res = {"exit_code": rc, "wall_seconds": wall, **parse_time_v(stderr)}
    if peak is not None:
        res["peak_rss_mib"] = peak.peak_kb / 1024
    res["result"] = parse_json_output(stdout)
    if res["result"] is None:
        raise RuntimeError(f"{name}: no JSON on stdout:\n{stdout[-3000:]}\nstderr: {stderr[-3000:]}")
    r = res["result"]
    log(f"{name}: {res['wall_seconds']:.1f} s wall, peak RSS {res.get('peak_rss_mib', float('nan')):.0f} MiB, "
        f"faces_moved {r.get('faces_moved')}, persons {r.get('persons')}, created {r.get('persons_created')}, "
        f"merged {r.get('persons_merged')}, in-command seconds {r.get('seconds')}")
    return res


def score(db, truth: list) -> dict:
    live_sql = "SELECT COUNT(*) FROM persons WHERE merged_into IS NULL AND face_count > 0"
    redirects_sql = "SELECT COUNT(*) FROM persons WHERE merged_into IS NOT NULL"
    if isinstance(db, str):  # a postgres:// URL
        person = {int(a): int(b) if b else None for a, b in
                  (line.split("|") for line in pg_tools.psql(db, "SELECT id, person_id FROM embeddings").stdout.split())}
        live, redirects = (int(pg_tools.psql(db, q).stdout) for q in (live_sql, redirects_sql))
    else:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        person = dict(con.execute("SELECT id, person_id FROM embeddings"))
        live = con.execute(live_sql).fetchone()[0]
        redirects = con.execute(redirects_sql).fetchone()[0]
        con.close()
    labels, preds = [], []
    for face_id, key, scored in truth:
        if scored:
            labels.append(key)
            preds.append(person[face_id])
    pw, bc = metrics.pairwise_scores(labels, preds), metrics.bcubed_scores(labels, preds)
    return {"scored_faces": len(labels), "pairwise": pw, "bcubed": bc, "live_persons": live, "redirects": redirects}


def results_md(report: dict) -> str:
    lib, r1, r2 = report["library"], report["runs"][0], report["runs"][1]
    sc = report["score"]
    cal_g, cal_r = lib["calibration_generated"], lib["calibration_lfw_small"]

    def row(name, r):
        res = r["result"]
        return (f"| {name} | {r['wall_seconds']:.1f} | {res.get('seconds', float('nan')):.1f} | "
                f"{r.get('peak_rss_mib', float('nan')):.0f} | {res.get('faces_moved')} | {res.get('persons')} | "
                f"{res.get('persons_kept')} | {res.get('persons_created')} | {res.get('persons_merged')} |")

    bars_met = all(r["wall_seconds"] < 120 and r.get("peak_rss_mib", 1e9) < 4096 for r in report["runs"])
    twice = r2["result"].get("faces_moved") == 0 and r2["result"].get("persons_created") == 0 \
        and r2["result"].get("persons_merged") == 0
    return f"""
**Synthetic data through the real command.** Measured {report['date']} on {report['machine']}; binary
`{report['binary']}`. The library is built by `bench/recluster/bench_recluster.py` directly in SQLite (schema from
`photo-sorter migrate`), then `photo-sorter recluster --database X` runs twice under `/usr/bin/time -v`.

```
ml-service/.venv/bin/python bench/recluster/bench_recluster.py --faces {lib['faces']} --results-md
```

Library: {lib['faces']:,} faces in {lib['photos']:,} photos ({lib['photos_with_several_faces']:,} with several faces):
{lib['real_faces']} real ArcFace faces of `lfw_small` ({lib['real_photos']} photos, every detection, background faces
included) and {lib['generated_faces']:,} generated faces of {lib['generated_persons']:,} generated persons (power-law
sizes, largest {lib['largest_person']:,} faces; {lib['generated_strangers']:,} of them one-face strangers). Generated
pairs of one person score cosine {cal_g['same_p5_p50_p95'][0]} / {cal_g['same_p5_p50_p95'][1]} / {cal_g['same_p5_p50_p95'][2]}
(p5 / median / p95; real `lfw_small` pairs {cal_r['same_p5_p50_p95'][0]} / {cal_r['same_p5_p50_p95'][1]} / {cal_r['same_p5_p50_p95'][2]}),
different persons {cal_g['different_p5_p50_p95'][0]} / {cal_g['different_p5_p50_p95'][1]} / {cal_g['different_p5_p50_p95'][2]}
(real {cal_r['different_p5_p50_p95'][0]} / {cal_r['different_p5_p50_p95'][1]} / {cal_r['different_p5_p50_p95'][2]}).
Initial persons: {lib['initial_persons']:,}, each face in its true person except {lib['misplaced_faces']:,} misplaced
faces; the first run settles them, the second runs on the settled library.

| run | wall s (whole command) | re-cluster s (in command) | peak RSS MiB | faces moved | persons | kept | created | merged |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{row('first (settles)', r1)}
{row('**second (settled)**', r2)}

After the runs: {sc['live_persons']:,} live persons, {sc['redirects']:,} redirects; against the true persons
({sc['scored_faces']:,} faces with a known identity) pairwise precision {sc['pairwise']['precision']:.4f}, recall
{sc['pairwise']['recall']:.4f}, BCubed F1 {sc['bcubed']['f1']:.4f}.

Bars: under 2 minutes and under 4 GiB per run — {'met' if bars_met else '**not met**'}; running it twice changes
nothing (second run: 0 faces moved, no person created or merged) — {'met' if twice else '**not met**'}.
""".strip("\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--persons", type=int, default=3000, help="recurring generated persons (power-law sizes)")
    ap.add_argument("--alpha", type=float, default=0.9, help="power-law exponent of person sizes")
    ap.add_argument("--stranger-share", type=float, default=0.10, help="share of generated faces that are one-face strangers")
    ap.add_argument("--noise-min", type=float, default=0.6)
    ap.add_argument("--noise-max", type=float, default=1.1)
    ap.add_argument("--misplaced", type=float, default=0.01, help="share of faces that start in a wrong person")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--embeddings", type=Path, default=DEFAULT_EMBEDDINGS)
    ap.add_argument("--binary", type=Path, default=None, help="default: $PHOTO_SORTER_BIN, else release, else debug build")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory (removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--postgres", default=None, metavar="URL",
                    help="run on this PostgreSQL database instead (postgres://user@host:port/db; its public schema is "
                         "dropped and recreated): the library is written to SQLite as usual, then copied there")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--results-md", action="store_true", help="write the section of bench/RESULTS.md")
    args = ap.parse_args()

    binary = args.binary.absolute() if args.binary else harness.find_binary(prefer_release=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recluster-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "library.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    rng = np.random.default_rng(args.seed)
    try:
        rc, _ = harness.run_cli([binary, "migrate", "--database", db], workdir / "migrate.log", 300)
        if rc != 0:
            raise SystemExit(f"photo-sorter migrate exited {rc}:\n{(workdir / 'migrate.log').read_text(errors='replace')[-3000:]}")
        t0 = time.monotonic()
        library = build_library(args, rng, db)
        log(f"library written in {time.monotonic() - t0:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)")
        truth = library.pop("truth")
        target = db
        if args.postgres:
            t0 = time.monotonic()
            copy_to_postgres(db, args.postgres, binary)
            log(f"library copied to PostgreSQL in {time.monotonic() - t0:.1f} s")
            target = args.postgres
        runs = [run_recluster(binary, target, workdir, "first", args.timeout),
                run_recluster(binary, target, workdir, "second", args.timeout)]
        report = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": harness.machine_description(),
            "binary": os.path.relpath(binary, REPO) if str(binary).startswith(str(REPO)) else str(binary),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "database": "PostgreSQL" if args.postgres else "SQLite",
            "library": library, "runs": runs, "score": score(target, truth),
        }
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    sc = report["score"]
    print(json.dumps({"runs": [{k: v for k, v in r.items()} for r in report["runs"]],
                      "pairwise_precision": sc["pairwise"]["precision"], "bcubed_f1": sc["bcubed"]["f1"],
                      "live_persons": sc["live_persons"]}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if args.results_md:
        harness.update_results_section(REPO / "bench" / "RESULTS.md", RESULTS_HEADING, results_md(report))
        log("bench/RESULTS.md updated")
    second = report["runs"][1]["result"]
    if second.get("faces_moved") != 0:
        log(f"FAIL: the second run moved {second.get('faces_moved')} faces (running it twice must change nothing)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
