"""End-to-end: the real ML service (dlib) and the real Swift service on the shared test photos.

Ingests ../shared/testdata/faces/{face_recognition_examples,dlib_faces} (PHOTO_SORTER_FACES_DIR
overrides the faces root) through `POST /ingest-folder` and checks the results through the HTTP API
only. A second part runs the `photo-sorter sort` command on a small copied folder.

Binary: $PHOTO_SORTER_BIN, else .build/debug/photo-sorter, else .build/release/photo-sorter.
Run: ml-service/.venv/bin/python -m pytest e2e -q
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from reliability_log import record  # noqa: E402

FACES = harness.faces_dir()
EXAMPLES = FACES / "face_recognition_examples"
DLIB = FACES / "dlib_faces"
SETS = (EXAMPLES, DLIB)
JOB_TIMEOUT = float(os.environ.get("PHOTO_SORTER_E2E_TIMEOUT", "1200"))

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"test photos not found at {FACES}")


def _rp(p) -> str:
    return os.path.realpath(p)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = harness.Stack(tmp_path_factory.mktemp("e2e"), allowed_roots=[FACES])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def run(stack):
    """Ingest both sets (two jobs, one after the other), read every photo back."""
    jobs, statuses = {}, {}
    for folder in SETS:  # one after the other; concurrent jobs: test_concurrent_ingest_jobs
        jobs[folder.name] = stack.ingest(folder, jobName=f"e2e-{folder.name}", batchSize=8)
        statuses[folder.name] = stack.wait_job(jobs[folder.name], JOB_TIMEOUT)
    photos = harness.all_photos(stack.base)
    details = harness.photo_details(stack.base, photos)
    labelled = harness.labelled_photos(EXAMPLES)
    ids = {}  # realpath -> person id of the labelled face (None: no face found)
    for path, _ in labelled:
        det = harness.labelled_detection(details[path], path) if path in details else None
        ids[path] = None if det is None else det["person_id"]
    by_identity = {}
    for path, ident in labelled:
        by_identity.setdefault(ident, []).append(path)
    return {"jobs": jobs, "statuses": statuses, "photos": photos, "details": details, "labelled": labelled,
            "ids": ids, "by_identity": by_identity}


def _majority(run, ident):
    found = [run["ids"][p] for p in run["by_identity"][ident] if run["ids"][p] is not None]
    return Counter(found).most_common(1)[0][0] if found else None


def test_jobs_complete_without_failures(run, stack):
    for name, st in run["statuses"].items():
        expected = len(harness.list_images(FACES / name))
        assert st["done"] is True, (name, st)
        assert st["status"] == "COMPLETED", (name, st, stack.logs())
        assert st["scanned"] == expected, (name, st)
        assert st["inserted"] == expected and st["queued"] == expected, (name, st)
        assert st["failed"] == 0, (name, st, stack.logs())
        assert st["processed"] == expected, (name, st)
        assert sum(b["photo_count"] for b in st["batches"]) == expected, (name, st)
    jobs = stack.get("/ingest-jobs")
    listed = jobs if isinstance(jobs, list) else next(v for v in jobs.values() if isinstance(v, list))
    assert {j.get("job_id") for j in listed} >= set(run["jobs"].values())


def test_every_photo_stored_and_processed(run):
    expected = {_rp(p) for s in SETS for p in harness.list_images(s)}
    got = {_rp(p["path"]) for p in run["photos"]}
    assert got == expected
    bad = {p["path"]: p["status"] for p in run["photos"] if p["status"] != "PROCESSED"}
    assert not bad, bad


def test_each_person_gets_one_consistent_id(run):
    problems, missed = [], []
    for ident, paths in run["by_identity"].items():
        found = {os.path.basename(p): run["ids"][p] for p in paths if run["ids"][p] is not None}
        missed += [f"{ident}/{os.path.basename(p)}" for p in paths if run["ids"][p] is None]
        assert found, f"no face found in any photo of {ident}"
        if len(set(found.values())) != 1:
            problems.append((ident, found))
    assert not problems, f"a person got several ids: {problems}"
    obama = run["by_identity"]["obama"]
    assert sum(run["ids"][p] is not None for p in obama) >= 6, f"too few obama photos with a face: missed {missed}"
    # Only the two partial-face obama photos may lack a detection.
    assert all(m.startswith("obama/obama_partial_face") for m in missed), missed


def test_different_people_never_share_an_id(run):
    majorities = {ident: _majority(run, ident) for ident in run["by_identity"]}
    owners = {}
    for ident, paths in run["by_identity"].items():
        for p in paths:
            pid = run["ids"][p]
            if pid is not None:
                owners.setdefault(pid, set()).add(ident)
    shared = {pid: sorted(idents) for pid, idents in owners.items() if len(idents) > 1}
    assert not shared, f"one person id holds several identities: {shared}"
    assert len(set(majorities.values())) == len(majorities), majorities


def test_group_photos_show_the_known_people(run):
    details = run["details"]
    for folder in (EXAMPLES / "_group", DLIB / "_group"):
        for p in harness.list_images(folder):
            d = details[_rp(p)]
            assert d["status"] == "PROCESSED", d
            assert d.get("no_faces") is False, d
            assert len((d.get("detections") or [])) >= 1, d
            assert all(det["person_id"] is not None for det in (d.get("detections") or [])), d
            assert set(d["person_ids"]) == {det["person_id"] for det in (d.get("detections") or [])}, d
    # Several faces where dlib's HOG detector is known to find several.
    assert len(details[_rp(DLIB / "_group" / "bald_guys.jpg")]["detections"]) >= 15
    assert sum(len(details[_rp(p)]["detections"]) >= 2 for p in harness.list_images(DLIB / "_group")) >= 8
    # The labelled people are recognised inside the group photos.
    maj = {ident: _majority(run, ident) for ident in run["by_identity"]}
    expect = {"obama_and_biden.jpg": ("obama", "biden"), "two_people.jpg": ("obama", "biden"),
              "kit_with_rose.jpg": ("kit_harington", "rose_leslie")}
    for name, people in expect.items():
        ids = set(details[_rp(EXAMPLES / "_group" / name)]["person_ids"])
        for person in people:
            assert maj[person] in ids, f"{person} (id {maj[person]}) not recognised in {name}: {ids}"


def test_no_face_photos(run):
    nofaces = [p for s in SETS if (s / "_noface").is_dir() for p in harness.list_images(s / "_noface")]
    assert nofaces, "expected at least one photo under _noface/"
    for p in nofaces:
        d = run["details"][_rp(p)]
        assert d["status"] == "PROCESSED", d
        assert d.get("no_faces") is True, d
        assert (d.get("person_ids") or []) == [] and (d.get("detections") or []) == [], d
    # And photos with faces are not flagged.
    for path, _ in run["labelled"]:
        if run["ids"][path] is not None:
            assert run["details"][path].get("no_faces") is False


def test_person_endpoint_lists_example_photos(run, stack):
    for ident, paths in run["by_identity"].items():
        pid = _majority(run, ident)
        person = stack.get(f"/person/{pid}")
        assert person["person_id"] == pid
        found = sum(run["ids"][p] == pid for p in paths)
        assert person["photo_count"] >= found, person
        assert person["face_count"] >= found, person
        examples = person["example_photos"]
        assert examples, person
        assert all({"photo_id", "path"} <= set(e) for e in examples), person
        # Every example photo really shows this person.
        for e in examples:
            assert pid in run["details"][_rp(e["path"])]["person_ids"], (ident, e)
    with pytest.raises(harness.HTTPError) as err:
        stack.get("/person/999999999")
    assert err.value.status == 404


def test_photo_endpoint_unknown_id_is_404(stack):
    with pytest.raises(harness.HTTPError) as err:
        stack.get("/photo/999999999")
    assert err.value.status == 404
    assert '"error"' in err.value.body


def test_reingest_keeps_ids_and_inserts_nothing(run, stack):
    before = {p["photo_id"]: (p["path"], sorted(p["person_ids"]), p["status"]) for p in run["photos"]}
    persons_before = stack.get("/health")["persons"]
    job = stack.ingest(EXAMPLES, jobName="e2e-reingest")
    st = stack.wait_job(job, JOB_TIMEOUT)
    expected = len(harness.list_images(EXAMPLES))
    assert st["status"] == "COMPLETED" and st["done"] is True, st
    assert st["scanned"] == expected, st
    assert st["inserted"] == 0 and st["queued"] == 0, st
    assert st["skipped"] == expected, st
    after = {p["photo_id"]: (p["path"], sorted(p["person_ids"]), p["status"]) for p in harness.all_photos(stack.base)}
    assert after == before
    assert stack.get("/health")["persons"] == persons_before


def test_concurrent_ingest_jobs(tmp_path):
    """Several ingest jobs at once on one SQLite database all complete, with no failed photo."""
    folders = [EXAMPLES, DLIB]
    s = harness.Stack(tmp_path / "concurrent", allowed_roots=[FACES])
    try:
        jobs = {f: s.ingest(f, batchSize=8) for f in folders}
        statuses = {f: s.wait_job(j, JOB_TIMEOUT) for f, j in jobs.items()}
        for f, st in statuses.items():
            n = len(harness.list_images(f))
            assert st["status"] == "COMPLETED" and st["done"] is True, (f.name, st, s.logs())
            assert st["inserted"] == n and st["processed"] == n and st["failed"] == 0, (f.name, st)
        photos = harness.all_photos(s.base)
        assert len(photos) == sum(len(harness.list_images(f)) for f in folders)
        assert all(p["status"] == "PROCESSED" for p in photos), photos
        details = harness.photo_details(s.base, photos)
        obama = {p: harness.labelled_detection(details[p], p) for p in map(_rp, harness.list_images(EXAMPLES / "obama"))}
        ids = {d["person_id"] for d in obama.values() if d is not None}
        assert len(ids) == 1, obama
    finally:
        s.stop()


PG_URL = os.environ.get("PHOTO_SORTER_E2E_POSTGRES_URL")


@pytest.mark.skipif(not PG_URL, reason="PHOTO_SORTER_E2E_POSTGRES_URL not set (scripts/test.sh sets it)")
def test_pipeline_on_postgres(tmp_path):
    """The same pipeline with PostgreSQL as the database: ids consistent, re-ingest inserts nothing.

    PHOTO_SORTER_E2E_POSTGRES_URL must name an empty database (test.sh recreates photo_sorter_e2e).
    """
    s = harness.Stack(tmp_path / "pg", allowed_roots=[FACES], database=PG_URL)
    try:
        assert s.get("/health")["database"] == "postgres"
        st = s.wait_job(s.ingest(EXAMPLES, batchSize=5), JOB_TIMEOUT)
        n = len(harness.list_images(EXAMPLES))
        assert st["status"] == "COMPLETED" and st["done"] is True, (st, s.logs())
        assert st["inserted"] == n and st["processed"] == n and st["failed"] == 0, st
        photos = harness.all_photos(s.base)
        details = harness.photo_details(s.base, photos)
        per_identity = {}
        for path, ident in harness.labelled_photos(EXAMPLES):
            det = harness.labelled_detection(details[path], path)
            if det is not None:
                per_identity.setdefault(ident, set()).add(det["person_id"])
        assert all(len(ids) == 1 for ids in per_identity.values()), per_identity
        majority = [next(iter(ids)) for ids in per_identity.values()]
        assert len(set(majority)) == len(majority), per_identity
        st2 = s.wait_job(s.ingest(EXAMPLES), JOB_TIMEOUT)
        assert st2["inserted"] == 0 and st2["queued"] == 0 and st2["skipped"] == n, st2
    finally:
        s.stop()


# ------------------------------------------------------------------ the `sort` command

@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sort-input")
    picks = {"obama": ["obama.jpg", "obama1.jpg", "obama2.jpg"], "biden": ["biden.jpg", "biden2.jpg"]}
    for ident, names in picks.items():
        (root / ident).mkdir()
        for n in names:
            shutil.copy2(EXAMPLES / ident / n, root / ident / n)
    (root / "_noface").mkdir()
    shutil.copy2(DLIB / "_noface" / "dogs.jpg", root / "_noface" / "dogs.jpg")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_sort_command_runs_the_whole_pipeline(small_folder, tmp_path):
    binary = harness.find_binary()
    db = str(tmp_path / "sort.sqlite")
    rc, summary, _ = harness.run_sort(binary, small_folder, db, tmp_path / "summary.json", tmp_path / "sort.log",
                                      timeout=900)
    log = (tmp_path / "sort.log").read_text(errors="replace")
    assert rc == 0, log[-6000:]
    assert summary is not None, log[-6000:]
    assert summary["photos_total"] == 6, summary
    assert summary["processed"] == 6 and summary["failed"] == 0 and summary["failures"] == [], summary
    assert summary["no_faces"] == 1, summary
    assert summary["faces"] >= 5, summary
    assert summary["persons"] == 2, summary
    assert summary["wall_seconds"] > 0 and summary["ml_seconds"] > 0 and summary["ml_workers"] >= 1, summary
    assert Path(db).is_file()
    # Once every result was back, `sort` told its ML child to stop at once (SIGUSR1), and the child heard it (the
    # signal arrives blocked from the Swift thread that spawned it, unless the child unblocks it).
    ml_log = (tmp_path / "ml-service.log").read_text(errors="replace")
    assert "stopping at once (SIGUSR1)" in ml_log and "Waiting for application shutdown" not in ml_log, ml_log[-3000:]

    # Sorting the same folder into the same database again changes nothing.
    rc2, summary2, _ = harness.run_sort(binary, small_folder, db, tmp_path / "summary2.json",
                                        tmp_path / "sort2.log", timeout=900)
    assert rc2 == 0, (tmp_path / "sort2.log").read_text(errors="replace")[-6000:]
    assert summary2["persons"] == 2 and summary2["failed"] == 0, summary2
    assert "browse: http://127.0.0.1:" in log, log[-2000:]


def _sort_with_a_broken_module(folder, tmp_path, module: str, message: str, extra_args=()) -> str:
    """`sort` with a `module`.py first on the ML child's path that raises ImportError(message); asserts the sort
    failed without a summary and returns its output."""
    blocker = tmp_path / f"no-{module}"
    blocker.mkdir()
    (blocker / f"{module}.py").write_text(f"raise ImportError({message!r})\n")
    rc, summary, _ = harness.run_sort(harness.find_binary(), folder, str(tmp_path / "db.sqlite"),
                                      tmp_path / "summary.json", tmp_path / "sort.log", timeout=300,
                                      extra_args=extra_args, PYTHONPATH=str(blocker))
    output = (tmp_path / "sort.log").read_text()
    assert rc != 0 and summary is None, output
    return output


def test_sort_with_the_dlib_model_but_no_dlib_says_how_to_install_it(small_folder, tmp_path):
    # dlib is optional (scripts/install-ml.sh --with-dlib): a dlib.py first on the ML child's path plays its absence.
    output = _sort_with_a_broken_module(small_folder, tmp_path, "dlib", "No module named dlib", ["--model", "dlib"])
    assert "the ML service exited at start-up: photo_sorter_ml: cannot start the dlib model" in output
    assert "scripts/install-ml.sh --with-dlib" in output


def test_sort_whose_ml_workers_cannot_load_the_models_stops_with_the_reason(small_folder, tmp_path):
    # `sort` starts as soon as the ML child listens, while its workers load the models: a failure there (an
    # openvino.py first on the path breaks only the workers' import: the default runtime embeds on OpenVINO) still
    # ends the sort with the reason.
    output = _sort_with_a_broken_module(small_folder, tmp_path, "openvino", "openvino is broken here")
    assert "the ML service could not load its models: " in output and "openvino is broken here" in output, output


def _sort_and_browse(folder, tmp_path) -> tuple[subprocess.Popen, int, int, Path]:
    """Starts `sort --browse` on `folder` (it starts its own ML service) and returns once the sort is done and the
    page is served: (process, service port, ML port, log path)."""
    port, ml_port = harness.free_port(), harness.free_port()
    log_path = tmp_path / "sort-browse.log"
    argv = [str(harness.find_binary()), "sort", str(folder), "--database", str(tmp_path / "browse.sqlite"),
            "--port", str(port), "--ml-url", f"http://127.0.0.1:{ml_port}", "--no-progress", "--browse"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=str(harness.REPO), env=harness.base_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while f"browse: http://127.0.0.1:{port}/" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("sort --browse printed no address:\n" + log_path.read_text(errors="replace")[-4000:])
        time.sleep(0.5)
    return proc, port, ml_port, log_path


def test_sort_browse_serves_the_page_with_real_thumbnails_until_interrupted(small_folder, tmp_path):
    """`sort --browse` keeps the service (and its ML child) up after the sort: the address it prints opens the
    page, and the thumbnails are the real ML service's JPEGs; Ctrl-C (SIGINT) ends it cleanly."""
    proc, port, _, log_path = _sort_and_browse(small_folder, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(base + "/", timeout=10)
        assert page.status_code == 200 and "/ui/app.js" in page.text
        persons = httpx.get(base + "/persons", timeout=10).json()["persons"]
        assert len(persons) == 2, persons
        for person in persons:
            thumb = httpx.get(f"{base}/thumbnails/person/{person['person_id']}.jpg", timeout=30)
            assert thumb.status_code == 200, thumb.text
            assert Image.open(io.BytesIO(thumb.content)).size == (112, 112)
        photo = httpx.get(f"{base}/thumbnails/photo/{persons[0]['representative_photo_id']}.jpg", timeout=30)
        assert photo.status_code == 200 and max(Image.open(io.BytesIO(photo.content)).size) <= 640
        assert proc.poll() is None, "sort --browse stopped serving"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log_path.read_text(errors="replace")[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ face models and `reprocess`

def _ids_by_path(binary, db, root) -> tuple[dict, dict]:
    """Person ids of every photo (by real path) and /health, read through `serve` on `db`."""
    s = harness.Stack(Path(db).parent / "read", allowed_roots=[root], binary=binary, database=db, with_ml=False)
    try:
        return {_rp(p["path"]): sorted(p["person_ids"]) for p in harness.all_photos(s.base)}, s.get("/health")
    finally:
        s.stop()


def test_model_switch_needs_reprocess_and_keeps_ids(small_folder, tmp_path):
    """A dlib library refuses to sort with ArcFace and names `reprocess`; `reprocess --model arcface`
    re-analyses every photo and keeps both persons' ids; a second reprocess with the same model changes no id."""
    binary = harness.find_binary()
    db = str(tmp_path / "lib.sqlite")
    rc, summary, _ = harness.run_sort(binary, small_folder, db, tmp_path / "s1.json", tmp_path / "s1.log",
                                      timeout=900, extra_args=["--model", "dlib"])
    assert rc == 0 and summary["persons"] == 2, (tmp_path / "s1.log").read_text(errors="replace")[-4000:]
    dlib_ids, health = _ids_by_path(binary, db, small_folder)
    assert health["model"] == "dlib", health

    # Without --model, sort keeps using the model the database holds: the ML child it starts before opening the
    # database (on the default model) is replaced by one running dlib.
    rc, summary, _ = harness.run_sort(binary, small_folder, db, tmp_path / "s2.json", tmp_path / "s2.log", timeout=900)
    second = (tmp_path / "s2.log").read_text(errors="replace")
    assert rc == 0 and summary["persons"] == 2 and summary["model"] == "dlib", second[-4000:]
    assert "starting the ML service with the dlib model" in second and "with the arcface model" not in second, second

    rc, _, _ = harness.run_sort(binary, small_folder, db, tmp_path / "s3.json", tmp_path / "s3.log", timeout=900,
                                extra_args=["--model", "arcface"])
    refusal = (tmp_path / "s3.log").read_text(errors="replace")
    assert rc != 0 and "photo-sorter reprocess --model arcface" in refusal, refusal[-4000:]

    def reprocess(log_name):
        port, ml_port = harness.free_port(), harness.free_port()
        rc, _ = harness.run_cli([binary, "reprocess", "--model", "arcface", "--database", db, "--port", port,
                                 "--ml-url", f"http://127.0.0.1:{ml_port}", "--no-progress"], tmp_path / log_name, 900)
        log = (tmp_path / log_name).read_text(errors="replace")
        assert rc == 0, log[-6000:]
        return log

    log = reprocess("r1.log")
    assert "2 kept their id" in log, log[-3000:]
    arcface_ids, health = _ids_by_path(binary, db, small_folder)
    assert health["model"] == "arcface" and health["persons"] == 2, health
    assert arcface_ids == dlib_ids

    reprocess("r2.log")
    assert _ids_by_path(binary, db, small_folder)[0] == arcface_ids


# ------------------------------------------------------------------ no orphans

def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (each thread lists the children it started)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still running (not zombies) after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and "State:\tZ" not in (Path(f"/proc/{p}/status").read_text() if Path(f"/proc/{p}").exists() else "")]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _assert_all_exit(pids: list[int], case: str, what: str) -> None:
    """Waits up to 15 s for `pids` to exit, records the "orphans" row, and fails naming any still running."""
    t0 = time.monotonic()
    left = _wait_gone(pids, timeout=15)
    record("orphans", case, f"{what} " + ("exited" if not left else f"left running: {len(left)}")
           + f" within {time.monotonic() - t0:.1f} s", not left, processes=len(pids), left=len(left))
    assert not left, f"still running after {case}: {[(p, _cmdline(p)) for p in left]}"


def test_kill_9_of_sort_ends_its_ml_service_and_workers(small_folder, tmp_path):
    """`kill -9` of `photo-sorter sort` runs none of its clean-up, yet the ML service it started (and that
    service's pool workers) exit within seconds: the child watches its parent (PHOTO_SORTER_ML_PARENT_PID)."""
    proc, _, ml_port, _ = _sort_and_browse(small_folder, tmp_path)
    try:
        family = _descendants(proc.pid)
        ml = [p for p in family if "photo_sorter_ml" in _cmdline(p)]
        assert ml, f"no ML service among the children of sort: {[_cmdline(p) for p in family]}"
        workers = [p for p in family if p not in ml]
        assert workers, "the ML service has no pool workers"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _assert_all_exit(family, "kill -9 of photo-sorter sort",
                         f"its ML service and {len(workers)} other processes (pool workers)")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{ml_port}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _descendants(proc.pid):
            os.kill(p, signal.SIGKILL)


def test_kill_9_of_the_ml_service_ends_its_pool_workers(tmp_path):
    """A pool worker exits when the ML service that started it is killed, instead of waiting forever on its queue."""
    port = harness.free_port()
    ml = harness.start_ml_service(port, "http://127.0.0.1:9", [tmp_path], None, tmp_path / "ml.log", workers=2)
    try:
        workers = _descendants(ml.proc.pid)
        assert len([p for p in workers if "multiprocessing" in _cmdline(p) or "spawn" in _cmdline(p)]) >= 2, \
            [_cmdline(p) for p in workers]
        os.kill(ml.proc.pid, signal.SIGKILL)
        ml.proc.wait(timeout=10)
        _assert_all_exit(workers, "kill -9 of the ML service", f"its {len(workers)} child processes (pool workers)")
    finally:
        ml.stop()
        try:
            os.killpg(ml.proc.pid, signal.SIGKILL)  # the workers share the service's process group
        except ProcessLookupError:
            pass
