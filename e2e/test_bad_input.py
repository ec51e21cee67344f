"""Bad input through the real pipeline: the corpus of bench/reliability/make_corpus.py (51 kinds beside real photos)
is ingested by `photo-sorter serve` and analysed by the real ML service, both running as a non-root user (`nobody`
when the tests run as root) so that a mode-000 file really cannot be read.

Timing: until the corpus is scanned, the ML service's port answers as the service does while its models load
(503, Retry-After), so every queued photo waits READY. Then the "deleted" file is deleted, the "changing" file
starts being rewritten in place, and the real ML service takes over the port. Once the job is done the rewriting
stops and a second ingest must pick the changed file up again and process it.

Every kind must end as the manifest expects (PROCESSED with/without faces, FAILED with a reason, or not queued with
a reason), the control photos must be PROCESSED with faces, and both services must still be up with no crashed pool
worker. Each kind is one row of the Reliability table (e2e/reliability_log.py).

PHOTO_SORTER_BAD_INPUT_BIG_DIR sets the entries of the big directory (default 100000).
"""
from __future__ import annotations

import http.server
import io
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "reliability"))
import harness  # noqa: E402
import make_corpus  # noqa: E402
from reliability_log import record  # noqa: E402

BIG_DIR_ENTRIES = int(os.environ.get("PHOTO_SORTER_BAD_INPUT_BIG_DIR", "100000"))
JOB_TIMEOUT = 240.0
USER = "nobody" if os.geteuid() == 0 else None  # None: the tests already run as a non-root user

pytestmark = pytest.mark.skipif(not (harness.faces_dir() / "face_recognition_examples").is_dir(),
                                reason=f"test photos not found at {harness.faces_dir()}")


class LoadingPort:
    """Holds a port and answers every request with 503 and Retry-After, as the ML service answers /process-photo
    while its models load."""

    def __init__(self, port: int, retry_after: int):
        class Handler(http.server.BaseHTTPRequestHandler):
            def _busy(self):
                body = json.dumps({"error": "models are still loading"}).encode()
                self.send_response(503)
                self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _busy

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Rewriter:
    """Rewrites a file in place (same size, new mtime) with alternating contents until stopped."""

    def __init__(self, path: Path, versions: list[bytes]):
        self.path, self.versions, self.writes = path, versions, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.writes += 1
            with open(self.path, "r+b") as f:
                f.write(self.versions[self.writes % 2])
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def ml_python_for(user: str | None) -> tuple[Path, dict]:
    """An interpreter `user` can run the ML service with, and the extra environment it needs.

    The venv's python links into /root/.pyenv, which other users cannot enter: then the system python of the same
    version runs the service with the venv's packages on PYTHONPATH."""
    venv = harness.ml_python()

    def works(py: Path, env: dict) -> bool:
        # Through a shell: setpriv itself may still reach a path the user cannot (the service's pool workers,
        # started by the service, could not).
        argv = ["sh", "-c", 'exec "$0" -c "import photo_sorter_ml.app"', str(py)]
        out = subprocess.run(harness.as_user(argv, user) if user else argv, cwd=harness.REPO / "ml-service",
                             env=harness.base_env(**env), capture_output=True, timeout=120)
        return out.returncode == 0

    if works(venv, {}):
        return venv, {}
    cfg = dict(line.split(" = ", 1) for line in (venv.parent.parent / "pyvenv.cfg").read_text().splitlines()
               if " = " in line)
    minor = ".".join(cfg["version"].split(".")[:2])
    system, packages = Path(f"/usr/bin/python{minor}"), venv.parent.parent / "lib" / f"python{minor}" / "site-packages"
    env = {"PYTHONPATH": f"{packages}:{harness.REPO / 'ml-service'}"}  # the venv's .pth files, by hand
    if system.exists() and works(system, env):
        return system, env
    pytest.fail(f"user {user} can run neither {venv} nor {system} with the venv's packages")


def _get_json(base: str, path: str, **query):
    q = {k: v for k, v in query.items() if v is not None}
    return harness.http_json("GET", f"{base}{path}" + (f"?{urllib.parse.urlencode(q)}" if q else ""))


def all_not_queued(base: str, job_id: str) -> list[dict]:
    out, after = [], None
    while True:
        page = _get_json(base, f"/ingest-jobs/{job_id}/not-queued", limit=1000, after=after)
        out += page["not_queued"]
        after = page.get("next_after")
        if after is None:
            return out


def wait_status(base: str, job_id: str, ready, procs: list, timeout: float = JOB_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = _get_json(base, f"/ingest-status/{job_id}")
        if ready(st):
            return st
        dead = [p.name for p in procs if not p.alive()]
        assert not dead, f"{dead} died while job {job_id} ran"
        assert time.monotonic() < deadline, f"job {job_id} not there after {timeout}s: {st}"
        time.sleep(0.5)


def _private_root() -> tuple[Path, Path]:
    """(root, work): a folder USER can enter (not under /tmp/pytest-of-root, mode 700) and in it a folder USER can
    write (database, logs)."""
    root = Path(tempfile.mkdtemp(prefix="photo-sorter-bad-input-"))
    os.chmod(root, 0o755)
    work = root / "work"
    work.mkdir()
    if USER:
        entry = pwd.getpwnam(USER)
        os.chown(work, entry.pw_uid, entry.pw_gid)
    return root, work


def _remove(root: Path, manifest: dict | None) -> None:
    """Keeps the logs of the run in e2e/out/bad-input/, then removes `root` (unreadable folders opened first)."""
    logs = harness.REPO / "e2e" / "out" / "bad-input"
    logs.mkdir(parents=True, exist_ok=True)
    for log in (root / "work").glob("*.log"):
        shutil.copyfile(log, logs / log.name)
    for kind in (manifest or {}).get("kinds", []):
        for entry in kind["entries"]:
            path = Path(manifest["root"]) / entry
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def run():
    root, work = _private_root()
    manifest = holder = swift = ml = rewriter = None
    try:
        manifest = make_corpus.build(root / "corpus", BIG_DIR_ENTRIES, root / "outside")
        corpus = Path(manifest["root"])
        by_action = {k.get("action"): k for k in manifest["kinds"]}
        changing = corpus / by_action["rewrite_during_analysis"]["entries"][0]
        first = changing.read_bytes()
        buf = io.BytesIO()  # a second version of the same size: the same picture with other JPEG tables...
        with Image.open(changing) as im:
            im.save(buf, "JPEG", quality=80)
        second = buf.getvalue()
        assert len(second) < len(first)
        second += first[len(second):]  # ...padded with bytes after its EOI, which decoders ignore
        python, py_env = ml_python_for(USER)
        port, ml_port = harness.free_port(), harness.free_port()
        base, ml_base, secret = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ml_port}", secrets.token_hex(16)
        holder = LoadingPort(ml_port, retry_after=8)
        # While the port is held, every photo waits READY (a busy or backed-off ML service counts no retry), with the
        # default retry settings.
        swift = harness.start_swift(harness.find_binary(), str(work / "photo-sorter.sqlite"), port, ml_base, [corpus],
                                    secret, work / "photo-sorter.log", user=USER, HOME=work,
                                    PHOTO_SORTER_SCHEDULER_INTERVAL_SECONDS=1)
        t1 = time.monotonic()
        job = harness.http_json("POST", base + "/ingest-folder", {"path": str(corpus), "recursive": True})["jobId"]
        wait_status(base, job, lambda st: st["status"] != "SCANNING", [swift])
        scan_s = time.monotonic() - t1
        (corpus / by_action["delete_after_scan"]["entries"][0]).unlink()
        rewriter = Rewriter(changing, [first, second])
        holder.close()
        holder = None
        ml = harness.start_ml_service(ml_port, base, [corpus], secret, work / "ml-service.log", user=USER,
                                      python=python, HOME=work, **py_env)
        status = wait_status(base, job, lambda st: st["done"], [swift, ml])
        rewrites = rewriter.writes
        rewriter.stop()
        rewriter = None
        changing.write_bytes(second)  # still, and different from what was scanned: the next ingest takes it again
        photos = harness.all_photos(base)
        details = {p["photo_id"]: _get_json(base, f"/photo/{p['photo_id']}") for p in photos}
        not_queued = all_not_queued(base, job)

        reingest = harness.http_json("POST", base + "/ingest-folder", {"path": str(corpus), "recursive": True})["jobId"]
        restatus = wait_status(base, reingest, lambda st: st["done"], [swift, ml])
        redetails = {p["photo_id"]: _get_json(base, f"/photo/{p['photo_id']}") for p in harness.all_photos(base)}
        health = {"swift": _get_json(base, "/health"), "ml": _get_json(ml_base, "/health")}
        alive = {p.name: p.alive() for p in (swift, ml)}
        yield {"manifest": manifest, "corpus": corpus, "status": status, "details": details, "not_queued": not_queued,
               "reingest": restatus, "redetails": redetails, "health": health, "alive": alive, "rewrites": rewrites,
               "swift": swift, "ml": ml, "scan_s": scan_s}
    finally:
        if rewriter:
            rewriter.stop()
        if holder:
            holder.close()
        for p in (swift, ml):
            if p is not None:
                p.stop()
        _remove(root, manifest)


def _observed(manifest: dict, photos, not_queued: list[dict]) -> dict[str, list[tuple[str, str | None, dict | None]]]:
    """Manifest entry -> [(outcome class, reason, photo detail)] for everything the pipeline reported; the entries
    of the big directory under the key "<bulk>". `photos`: (path, outcome class, reason, detail) tuples."""
    corpus = manifest["root"]
    kinds = manifest["kinds"]
    exact = {e for k in kinds for e in k["entries"]}
    by_prefix = {e.split("/")[0][:3]: e for k in kinds if not k.get("control") for e in k["entries"]}
    bulk_dir = next(k["bulk"]["dir"] for k in kinds if k.get("bulk"))
    out: dict[str, list] = {}

    def add(path: str, outcome: str, reason, detail) -> None:
        rel = os.path.relpath(path, corpus)
        if rel in exact:
            key = rel
        elif rel.startswith(bulk_dir + "/"):
            key = "<bulk>"
        else:  # a name the service could only show lossily (not UTF-8): its kind number still says which
            key = by_prefix.get(rel[:3], rel)
        out.setdefault(key, []).append((outcome, reason, detail))

    for photo in photos:
        add(*photo)
    for e in not_queued:
        add(e["path"], "not_queued", e.get("reason"), None)
    return out


def _observed_in(run) -> dict[str, list[tuple[str, str | None, dict | None]]]:
    """`_observed` for the served run: every photo's GET /photo/{id} and the job's not-queued entries."""
    photos = [(d["path"], ("processed_faces" if d.get("detections") else "processed_no_faces")
               if d["status"] == "PROCESSED" else d["status"].lower(), d.get("last_error"), d)
              for d in run["details"].values()]
    return _observed(run["manifest"], photos, run["not_queued"])


def _matches(kind: dict, outcome: str, reason, detail) -> bool:
    expect = kind["expect"]
    ok = outcome == expect
    if expect in ("failed", "not_queued"):
        ok = ok and bool(reason) and re.search(kind["reason"], reason, re.I) is not None
    if ok and kind.get("upright_size"):
        ok = [detail.get("width"), detail.get("height")] == kind["upright_size"]
    return ok


def _words(outcome: str, reason, detail) -> str:
    if outcome == "processed_faces":
        return f"PROCESSED, {len(detail['detections'])} face(s), {detail.get('width')}x{detail.get('height')}"
    if outcome == "processed_no_faces":
        return f"PROCESSED, no face, {detail.get('width')}x{detail.get('height')}"
    if outcome == "not_queued":
        return f"not queued: {reason}"
    return f"{outcome.upper()}: {reason}"


def test_every_kind_of_bad_input_ends_with_its_expected_outcome_and_a_clear_reason(run):
    observed = _observed_in(run)
    crashed_services = [name for name, up in run["alive"].items() if not up]
    wrong = []
    for i, kind in enumerate(k for k in run["manifest"]["kinds"] if not k.get("control")):
        results = [(e, r) for e in kind["entries"] for r in observed.get(e, [])]
        words, ok = [], True
        for entry in kind["entries"]:
            got = observed.get(entry, [])
            if kind["expect"] == "ignored":
                ok = ok and not got
                words.append("ignored (neither a photo nor a not-queued entry)" if not got else
                             f"listed: {[_words(*g) for g in got]}")
                continue
            if len(got) != 1:
                ok = False
                words.append(f"{entry!r} reported {len(got)} times: {[_words(*g) for g in got]}")
                continue
            ok = ok and _matches(kind, *got[0])
            words.append(_words(*got[0]))
        bulk = kind.get("bulk")
        if bulk:
            entries = observed.get("<bulk>", [])
            fits = sum(o == bulk["expect"] and bool(r) and re.search(bulk["reason"], r, re.I) is not None
                       for o, r, _ in entries)
            ok = ok and fits == len(entries) == bulk["count"]
            reasons = sorted({r for _, r, _ in entries})
            words.insert(0, f"{fits} of {bulk['count']} entries not queued ({'; '.join(map(str, reasons[:2]))}), "
                            f"scan {run['scan_s']:.0f} s")
        if kind.get("action") == "rewrite_during_analysis":
            words.append(f"({run['rewrites']} rewrites while it waited and was analysed)")
        worker_crashes = sum(bool(r) and re.search(r"crashed|internal error", r, re.I) is not None
                             for _, (_, r, _) in results)
        crashes = worker_crashes + (len(crashed_services) if i == 0 else 0)
        ok = ok and not crashed_services
        outcome = "; ".join(words).replace(f"{run['corpus']}/", "")
        record("bad-input", kind["kind"], outcome, ok, crashes=crashes,
               status=[o for _, (o, _, _) in results], reason=[r for _, (_, r, _) in results])
        if not ok:
            wrong.append((kind["kind"], kind["expect"], kind.get("reason"), outcome))
    assert not wrong, "\n".join(map(str, wrong))


def test_every_entry_is_reported_once_and_nothing_else(run):
    observed = _observed_in(run)
    expected = {e for k in run["manifest"]["kinds"] if k["expect"] != "ignored" for e in k["entries"]}
    assert set(observed) - {"<bulk>"} == expected, sorted(set(observed) ^ expected)
    assert all(len(v) == 1 for k, v in observed.items() if k != "<bulk>"), observed
    st = run["status"]
    assert st["not_queued_count"] == len(run["not_queued"]), st
    assert len(st["not_queued"]) == min(100, len(run["not_queued"])), st
    assert all(e["path"] and e["reason"] for e in st["not_queued"]), st["not_queued"][:5]


def test_control_photos_beside_the_bad_input_are_processed_with_their_faces(run):
    controls = next(k for k in run["manifest"]["kinds"] if k.get("control"))
    observed = _observed_in(run)
    for entry in controls["entries"]:
        (outcome, reason, detail), = observed[entry]
        assert outcome == "processed_faces" and len(detail["detections"]) >= 1, (entry, outcome, reason)
        assert all(d["person_id"] is not None for d in detail["detections"]), detail


def test_no_process_crashed_and_no_pool_worker_died(run):
    assert all(run["alive"].values()), run["alive"]
    assert run["health"]["swift"], run["health"]
    assert run["health"]["ml"]["status"] == "ok", run["health"]["ml"]
    for proc in (run["swift"], run["ml"]):
        log = proc.log_path.read_text(errors="replace")
        assert "Traceback" not in log and "worker process died" not in log and "Fatal error" not in log, \
            f"{proc.name}:\n{log[-4000:]}"


def test_the_changed_file_is_processed_by_the_next_ingest_and_nothing_else_is_queued_again(run):
    entry = next(k for k in run["manifest"]["kinds"] if k.get("action") == "rewrite_during_analysis")["entries"][0]
    path = str(run["corpus"] / entry)
    before = next(d for d in run["details"].values() if d["path"] == path)
    after = run["redetails"][before["photo_id"]]
    assert before["status"] == "FAILED", before
    assert after["status"] == "PROCESSED" and len(after["detections"]) == 1, after
    st = run["reingest"]
    assert st["status"] == "COMPLETED" and st["queued"] == 1, st
    # The same photos, no new row; the file deleted after the first scan is gone now: its photo is MISSING (hidden).
    deleted = str(run["corpus"] / next(k for k in run["manifest"]["kinds"] if k.get("action") == "delete_after_scan")["entries"][0])
    gone = {i for i, d in run["details"].items() if d["path"] == deleted}
    assert len(gone) == 1 and st["missing"] == 1, st
    assert set(run["redetails"]) == set(run["details"]) - gone
    unchanged = {i: d["status"] for i, d in run["details"].items() if i != before["photo_id"] and i not in gone}
    assert {i: run["redetails"][i]["status"] for i in unchanged} == unchanged


def test_the_unreadable_file_is_unreadable_to_the_services_user(run):
    entry = next(k for k in run["manifest"]["kinds"] if k["kind"].startswith("unreadable file"))["entries"][0]
    argv = ["cat", str(run["corpus"] / entry)]
    out = subprocess.run(harness.as_user(argv, USER) if USER else argv, capture_output=True, text=True)
    assert out.returncode != 0 and "Permission denied" in out.stderr, out


def test_sort_as_another_user_ends_normally_and_its_summary_lists_every_failure_and_every_entry_not_queued():
    """`photo-sorter sort --summary-json` (starting its own ML service) on a fresh corpus, as USER: it exits 1
    because photos FAILED (0 when none did; a crash would be a signal), and the timing kinds are ordinary photos
    here (nothing deletes or rewrites them)."""
    root, work = _private_root()
    manifest = None
    try:
        manifest = make_corpus.build(root / "corpus", 1000, root / "outside")
        python, py_env = ml_python_for(USER)
        argv = [harness.find_binary(), "sort", manifest["root"], "--database", work / "sort.sqlite",
                "--port", harness.free_port(), "--ml-url", f"http://127.0.0.1:{harness.free_port()}", "--no-progress",
                "--summary-json", work / "summary.json"]
        argv = [str(a) for a in argv]
        rc, _ = harness.run_cli(harness.as_user(argv, USER) if USER else argv, work / "sort.log", JOB_TIMEOUT,
                                HOME=work, PHOTO_SORTER_ML_PYTHON=python, **py_env)
        summary = json.loads((work / "summary.json").read_text())
        failures = [(f["path"], "failed", f["error"], None) for f in summary["failures"]]
        assert failures and rc == 1, (work / "sort.log").read_text(errors="replace")[-6000:]
        observed = _observed(manifest, failures, summary["not_queued"])
        kinds = manifest["kinds"]
        wrong = []
        for kind in kinds:
            expect = "processed" if kind.get("action") or kind["expect"].startswith("processed") else kind["expect"]
            for entry in kind["entries"]:
                got = observed.get(entry, [])
                if expect in ("failed", "not_queued"):
                    if len(got) != 1 or not _matches(kind, *got[0]):
                        wrong.append((entry, expect, got))
                elif got:
                    wrong.append((entry, expect, got))
        assert not wrong, wrong
        bulk = next(k["bulk"] for k in kinds if k.get("bulk"))
        assert len(observed["<bulk>"]) == bulk["count"]
        assert all(re.search(bulk["reason"], r, re.I) for _, r, _ in observed["<bulk>"])
        not_queued = sum(len(k["entries"]) for k in kinds if k["expect"] == "not_queued") + bulk["count"]
        assert summary["not_queued_count"] == len(summary["not_queued"]) == not_queued, summary["not_queued_count"]
        processed = sum(len(k["entries"]) for k in kinds if k.get("action") or k["expect"].startswith("processed"))
        assert summary["processed"] == processed and summary["failed"] == len(failures), summary
        assert summary["photos_total"] == processed + len(failures), summary
        assert summary["persons"] >= 4, summary  # obama, and the three control people
    finally:
        _remove(root, manifest)
