"""Tests of the scale generators on a tiny library and tree (needs the photo-sorter binary for the schema), and of
find_photos.py on a tiny library.

    ml-service/.venv/bin/python -m pytest bench/scale/test_generators.py -q

The PostgreSQL test fills a database `photo_sorter_gen_test` (dropped afterwards) on the server of
$PHOTO_SORTER_TEST_POSTGRES_URL, else of scripts/start-postgres.sh (127.0.0.1:55432); it is skipped when none answers.
"""
from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def find_binary() -> str | None:
    """$PHOTO_SORTER_BIN, else the debug build (what scripts/test.sh builds from these sources), else release."""
    for c in (os.environ.get("PHOTO_SORTER_BIN"), REPO / ".build" / "debug" / "photo-sorter",
              REPO / ".build" / "release" / "photo-sorter"):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return str(c)
    return None


BINARY = find_binary()
needs_binary = pytest.mark.skipif(BINARY is None, reason="no photo-sorter binary: set PHOTO_SORTER_BIN or build "
                                  ".build/debug (or release)/photo-sorter; the generator takes the schema from it")


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True, timeout=600)


def library(db: Path, *extra: str) -> subprocess.CompletedProcess:
    return run("generate_library.py", "--database", str(db), "--photos", "200", "--persons", "20", "--faces", "300",
               "--dim", "512", "--binary", BINARY, *extra)


@needs_binary
def test_library_is_consistent_and_refused_without_force(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    r = library(db)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    q = lambda s: con.execute(s).fetchall()  # noqa: E731
    assert q("SELECT COUNT(*), SUM(status = 'PROCESSED') FROM photos") == [(200, 200)]
    assert q("SELECT COUNT(*) FROM persons") == [(20,)] and q("SELECT MIN(face_count) FROM persons")[0][0] >= 1
    assert q("SELECT COUNT(*) FROM embeddings") == [(300,)]
    assert q("SELECT SUM(face_count), SUM(photo_count) FROM persons") == [(300, 300)]
    # persons' counts are exact
    assert q("""SELECT COUNT(*) FROM persons p WHERE face_count != (SELECT COUNT(*) FROM embeddings e WHERE e.person_id = p.id)
                OR photo_count != (SELECT COUNT(*) FROM photo_persons pp WHERE pp.person_id = p.id)""") == [(0,)]
    # photo_persons = the distinct (photo, person) pairs of the faces; never two faces of one person in a photo
    assert q("SELECT COUNT(*) FROM (SELECT DISTINCT photo_id, person_id FROM embeddings)") == [(300,)]
    assert q("""SELECT COUNT(*) FROM photo_persons pp WHERE NOT EXISTS
                (SELECT 1 FROM embeddings e WHERE e.photo_id = pp.photo_id AND e.person_id = pp.person_id)""") == [(0,)]
    # photos: face_count, no_faces and person_ids (the service's JSON, in face order) match the faces
    faces: dict[int, list[int]] = {}
    for photo, person in q("SELECT photo_id, person_id FROM embeddings ORDER BY photo_id, face_index"):
        faces.setdefault(photo, []).append(person)
    rows = q("SELECT id, face_count, no_faces, person_ids, model_version, path FROM photos")
    assert sum(1 for r in rows if r[1] == 0) > 0, "some photos hold no face"
    for pid, count, no_faces, person_ids, mv, path in rows:
        assert count == len(faces.get(pid, [])) and bool(no_faces) == (count == 0)
        assert person_ids == json.dumps(faces.get(pid, []), separators=(",", ":"))
        assert mv == "arcface-w600k_mbf+scrfd-500m-5pt" and path.startswith("/library/") and path.endswith(".jpg")
    # persons: ids in order of first appearance, representative = the photo that created them
    created = q("SELECT person_id, photo_id FROM embeddings WHERE created_person = 1 ORDER BY id")
    assert [p for p, _ in created] == list(range(1, 21))
    assert dict(created) == dict(q("SELECT id, representative_photo_id FROM persons"))
    # vectors: unit float32, 512-d
    vecs = np.array([np.frombuffer(b, "<f4") for (b,) in q("SELECT vector FROM embeddings")])
    assert vecs.shape == (300, 512) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert q("SELECT generation FROM identity_generation") == [(0,)]
    # taken dates: the generated time as a UTC wall clock, from EXIF, copied into photo_persons
    for pid, modified, taken, offset, source, path in q(
            "SELECT id, modified_at, taken_at, taken_offset, taken_at_source, path FROM photos ORDER BY id"):
        wall = datetime.fromtimestamp(modified // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        assert (taken, offset, source) == (wall, None, "exif"), pid
        assert path.startswith("/library/" + taken[:10].replace("-", "/") + "/"), (path, taken)
    takens = [t for (t,) in q("SELECT taken_at FROM photos ORDER BY id")]
    assert takens == sorted(takens) and "2008-01-01" <= takens[0] < takens[-1] <= "2025-12-31T23:59:59"
    assert q("""SELECT COUNT(*) FROM photo_persons pp JOIN photos p ON p.id = pp.photo_id
                WHERE pp.taken_at = p.taken_at""") == [(300,)]
    con.close()
    assert "sample cosines: same person 0.5" in r.stdout, r.stdout

    before = db.read_bytes()
    again = library(db)
    assert again.returncode == 2 and "refusing" in again.stderr and "200 photos" in again.stderr, again.stderr
    assert db.read_bytes() == before

    forced = library(db, "--force", "--seed", "5")
    assert forced.returncode == 0, forced.stderr


def pg_server() -> str | None:
    """A postgres:// URL of the server's `postgres` database, when a server answers."""
    sys.path.insert(0, str(HERE))
    import generate_library as gl
    url = os.environ.get("PHOTO_SORTER_TEST_POSTGRES_URL") or "postgres://postgres@127.0.0.1:55432/photo_sorter_test"
    try:
        admin, _ = gl.pg_parts(url)
        ok = gl.psql(admin, "SELECT 1", check=False).returncode == 0
    except (gl.Refusal, OSError, subprocess.SubprocessError):
        return None
    return admin if ok else None


@needs_binary
def test_postgres_library_has_the_taken_dates(tmp_path: Path) -> None:
    admin = pg_server()
    if admin is None:
        pytest.skip("no PostgreSQL server answers (scripts/start-postgres.sh; or PHOTO_SORTER_TEST_POSTGRES_URL)")
    import generate_library as gl
    base, _, query = admin.rpartition("/postgres")
    url = f"{base}/photo_sorter_gen_test{query}"
    gl.psql(admin, 'DROP DATABASE IF EXISTS "photo_sorter_gen_test" WITH (FORCE)')
    try:
        r = library(url)  # type: ignore[arg-type]
        assert r.returncode == 0, r.stderr
        sql = lambda s: gl.psql(url, s).stdout.strip()  # noqa: E731
        assert sql("SELECT COUNT(*), COUNT(DISTINCT taken_at_source), MIN(taken_at_source) FROM photos") == "200|1|exif"
        assert sql("SELECT COUNT(*) FROM photos WHERE taken_offset IS NOT NULL OR taken_at != "
                   "to_char(to_timestamp(modified_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')") == "0"
        assert sql("SELECT COUNT(*) FROM photo_persons pp JOIN photos p ON p.id = pp.photo_id "
                   "WHERE pp.taken_at = p.taken_at") == "300"
        # the same library as SQLite's (one seed, one plan)
        db = tmp_path / "same.sqlite"
        assert library(db).returncode == 0
        con = sqlite3.connect(db)
        want = "\n".join(f"{a}|{b}|{c}" for a, b, c in con.execute(
            "SELECT photo_id, person_id, taken_at FROM photo_persons ORDER BY photo_id, person_id"))
        con.close()
        assert sql("SELECT photo_id, person_id, taken_at FROM photo_persons ORDER BY photo_id, person_id") == want
    finally:
        gl.psql(admin, 'DROP DATABASE IF EXISTS "photo_sorter_gen_test" WITH (FORCE)', check=False)


@needs_binary
def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    f = tmp_path / "notes.sqlite"
    f.write_text("not a database\n")
    r = library(f)
    assert r.returncode == 2 and "not a SQLite database" in r.stderr
    assert f.read_text() == "not a database\n"


def test_bad_input_exits_2(tmp_path: Path) -> None:
    r = run("generate_library.py", "--database", str(tmp_path / "x.sqlite"), "--photos", "10", "--persons", "20",
            "--faces", "5", "--dim", "512", "--binary", BINARY or "/nonexistent")
    assert r.returncode == 2 and "--faces" in r.stderr
    assert not (tmp_path / "x.sqlite").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_binary
def test_the_service_serves_the_library(tmp_path: Path) -> None:
    db = tmp_path / "lib.sqlite"
    assert library(db).returncode == 0
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([BINARY, "serve", "--database", str(db), "--port", str(port)], stdout=log, stderr=log,
                            env=dict(os.environ, PHOTO_SORTER_ML_URL="http://127.0.0.1:9"), cwd=tmp_path)
    try:
        def get(path: str) -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                assert r.status == 200
                return json.load(r)
        deadline = time.time() + 60
        while True:
            try:
                health = get("/health")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert health["persons"] == 20 and health["photos"] == {"PROCESSED": 200}
        assert len(get("/photos?limit=5")["photos"]) == 5
        assert get("/persons?limit=5")["total"] == 20
        assert get("/person/1")["face_count"] >= 1
        # a person's photos of one year, oldest first: the generator's dates as the service reads them
        con = sqlite3.connect(db)
        person, year = con.execute("""SELECT pp.person_id, substr(p.taken_at, 1, 4) FROM photo_persons pp
                                      JOIN photos p ON p.id = pp.photo_id GROUP BY 1, 2 ORDER BY COUNT(*) DESC""").fetchone()
        want = con.execute("""SELECT p.id, p.taken_at FROM photos p JOIN photo_persons pp ON pp.photo_id = p.id
                              WHERE pp.person_id = ? AND p.taken_at LIKE ? ORDER BY p.taken_at, p.id""",
                           (person, f"{year}-%")).fetchall()
        con.close()
        page = get(f"/person/{person}/photos?from={year}-01-01&to={year}-12-31&order=taken&limit=1000")
        assert [(p["photo_id"], p["taken_at"]) for p in page["photos"]] == want
        assert {p["taken_at_source"] for p in page["photos"]} == {"exif"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@needs_binary
def test_find_photos_runs_and_agrees_with_sql(tmp_path: Path) -> None:
    db, out = tmp_path / "lib.sqlite", tmp_path / "find.json"
    r = run("find_photos.py", "--database", str(db), "--photos", "600", "--persons", "30", "--faces", "900",
            "--binary", BINARY, "--requests", "3", "--warmup", "1", "--check-sample", "3", "--json", str(out),
            "--workdir", str(tmp_path / "work"))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    c = report["databases"][0]
    assert c["checks"] == {"pages_equal_sql": True} and not report["failures"]
    assert set(c["figures"]) >= {"pair_id", "pair_taken", "triple_id", "triple_taken", "year_person_largest",
                                 "year_person_mid", "year_photos_largest", "year_photos_mid"}
    assert all(f["n"] == 3 for f in c["figures"].values())
    ch = c["chosen"]
    assert ch["candidates_note"] and len(ch["pair"]["ids"]) == 2 and len(ch["triple"]["ids"]) == 3
    con = sqlite3.connect(db)
    shared = con.execute("SELECT COUNT(*) FROM photo_persons a JOIN photo_persons b ON a.photo_id = b.photo_id "
                         "WHERE a.person_id = ? AND b.person_id = ?", ch["pair"]["ids"]).fetchone()[0]
    largest = con.execute("SELECT id FROM persons ORDER BY photo_count DESC, id LIMIT 1").fetchone()[0]
    con.close()
    assert shared == ch["pair"]["shared"] and ch["largest"]["id"] == largest
    assert ch["pair"]["shared"] == min(ch["pair_shared_range"])
    assert len(c["correctness"]) == 9 + 2 * 3 and all(x["ok"] for x in c["correctness"])
    # the RESULTS.md section is made from the report (not written here)
    md = run("find_photos.py", "--from-json", str(out))
    assert md.returncode == 0 and "| (a) `persons=a,b&match=all&order=id` |" in md.stdout and "Against the bars" in md.stdout


def test_tree_is_valid_distinct_jpegs_and_refused_without_force(tmp_path: Path) -> None:
    from PIL import Image
    root = tmp_path / "tree"
    r = run("generate_tree.py", str(root), "--files", "450", "--per-folder", "200")
    assert r.returncode == 0, r.stderr
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 450
    assert len({p.parent for p in files}) == 3
    assert files[0].relative_to(root).as_posix() == "2015/01/day-01/IMG_0000001.jpg"
    assert len({p.read_bytes() for p in files}) == 450
    for p in files[::50]:
        with Image.open(p) as im:
            im.load()
            assert im.format == "JPEG" and im.size == (16, 16)
    assert run("generate_tree.py", str(root), "--files", "10").returncode == 2
    assert len(list(root.rglob("*.jpg"))) == 450
    (root / "mine.txt").write_text("keep")
    r = run("generate_tree.py", str(root), "--files", "10", "--force")
    assert r.returncode == 0, r.stderr
    assert len(list(root.rglob("*.jpg"))) == 10 and (root / "mine.txt").read_text() == "keep"
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    r = run("generate_tree.py", str(other), "--files", "10", "--force")
    assert r.returncode == 2 and "marker" in r.stderr and (other / "a.jpg").read_bytes() == b"x"
