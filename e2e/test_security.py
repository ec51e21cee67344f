"""Security rules, one test each, against the real ML service and the real Swift service on loopback.

Rules (README "Reliability and security"): allowed roots enforced after resolving symlinks and `..` (both
services); the callback URL allowlist (no request to another host or port); the shared secret for the person dump,
embeddings and every correction, compared whole (a prefix, a longer string or one wrong last byte is refused); a
service reachable from other machines refuses to start without the secret; request body size limits; error bodies
without stack traces or SQL. Each test records its row of the RESULTS.md "Reliability" table (suite "security").
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from reliability_log import record  # noqa: E402

FACES = harness.faces_dir()
EXAMPLES = FACES / "face_recognition_examples"
SECRET_HEADER = "X-Photo-Sorter-Secret"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"test photos not found at {FACES}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """photos/ (the allowed root, with links pointing out of it), outside/ (a photo beyond the root), and a
    running stack whose both services only read photos/."""
    base = tmp_path_factory.mktemp("security")
    photos, outside = base / "photos", base / "outside"
    (photos / "obama").mkdir(parents=True)
    outside.mkdir()
    for name in ("obama.jpg", "obama1.jpg"):
        shutil.copy2(EXAMPLES / "obama" / name, photos / "obama" / name)
    shutil.copy2(EXAMPLES / "biden" / "biden.jpg", outside / "secret.jpg")
    os.symlink(outside, photos / "link-to-outside")
    os.symlink(outside / "secret.jpg", photos / "linked-secret.jpg")
    stack = harness.Stack(base / "stack", allowed_roots=[photos])
    try:
        job = stack.ingest(photos)
        status = stack.wait_job(job, timeout=600)
        yield {"stack": stack, "photos": photos, "outside": outside, "status": status, "job": job}
    finally:
        stack.stop()


def _secret(stack) -> dict:
    return {SECRET_HEADER: stack.secret}


def _post(url: str, body, headers=None, timeout=30.0) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), headers={"Content-Type": "application/json", **(headers or {})},
                      timeout=timeout)


def test_service_ingest_refuses_folders_outside_the_roots_through_symlinks_and_dotdot(world):
    stack, photos = world["stack"], world["photos"]
    refused = {}
    for path in (photos / "link-to-outside", photos / ".." / "outside", Path("/etc")):
        r = _post(stack.base + "/ingest-folder", {"path": str(path)}, _secret(stack))
        refused[str(path)] = r.status_code
    # A symlinked file inside the root that points out of it is not read either: it is listed as not queued.
    status = world["status"]
    linked = [e for e in status.get("not_queued", []) if e["path"].endswith("linked-secret.jpg")]
    outside_photos = [p for p in harness.all_photos(stack.base) if "secret" in p["path"] or "outside" in p["path"]]
    ok = all(code == 403 for code in refused.values()) and len(linked) == 1 and not outside_photos
    record("security", "service: allowed roots after symlinks and ..", f"ingest refused with {sorted(set(refused.values()))}; "
           f"file symlink out of the root not queued ({linked[0]['reason'] if linked else 'MISSING'})", ok,
           statuses=refused)
    assert all(code == 403 for code in refused.values()), refused
    assert len(linked) == 1 and "outside the allowed roots" in linked[0]["reason"], status.get("not_queued")
    assert not outside_photos, outside_photos


def test_ml_service_refuses_paths_outside_its_roots_through_symlinks_and_dotdot(world):
    stack, photos = world["stack"], world["photos"]
    tries = {
        "dotdot": str(photos / "obama" / ".." / ".." / "outside" / "secret.jpg"),
        "symlinked file": str(photos / "linked-secret.jpg"),
        "symlinked dir": str(photos / "link-to-outside" / "secret.jpg"),
        "absolute": "/etc/passwd",
    }
    codes = {}
    for what, path in tries.items():
        codes[f"process-photo {what}"] = _post(stack.ml_url + "/process-photo", {
            "photo_id": 1, "path": path, "callbackUrl": stack.base + "/callback/photo-processed"}, _secret(stack)).status_code
        codes[f"from-image {what}"] = _post(stack.ml_url + "/embeddings/from-image", {"path": path}, _secret(stack)).status_code
        codes[f"render {what}"] = _post(stack.ml_url + "/render", {"path": path, "boxes": []}, _secret(stack)).status_code
    ok = all(c == 403 for c in codes.values())
    record("security", "ML service: allowed roots after symlinks and ..", f"{len(codes)} requests, all 403" if ok
           else f"not all refused: {codes}", ok, statuses=codes)
    assert ok, codes


def test_callbacks_go_only_to_allowlisted_origins(world):
    """A callback URL on another port of this machine or another host is refused before any work, and nothing
    connects to it."""
    stack, photos = world["stack"], world["photos"]
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    trap.settimeout(0.2)
    connections = []

    def accept():
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                conn, _ = trap.accept()
                connections.append(conn)
            except OSError:
                pass

    watcher = threading.Thread(target=accept)
    watcher.start()
    urls = [f"http://127.0.0.1:{trap.getsockname()[1]}/callback/photo-processed",
            "http://169.254.169.254/latest/meta-data/", "http://example.invalid/cb",
            stack.base.replace("127.0.0.1", "localhost") + "/callback/photo-processed"]
    codes = {}
    for url in urls:
        codes[url] = _post(stack.ml_url + "/process-photo", {
            "photo_id": 1, "path": str(photos / "obama" / "obama.jpg"), "callbackUrl": url}, _secret(stack)).status_code
    watcher.join()
    trap.close()
    ok = all(c == 403 for c in codes.values()) and not connections
    record("security", "ML service: callback URL allowlist (no SSRF)", f"{len(urls)} foreign callback URLs refused with 403, "
           f"{len(connections)} connections to the trap port", ok, statuses=codes)
    assert ok, (codes, len(connections))


def test_person_dump_embeddings_and_corrections_need_the_whole_shared_secret(world):
    stack = world["stack"]
    right = stack.secret
    wrong = {"none": None, "last byte": right[:-1] + ("0" if right[-1] != "0" else "1"), "prefix": right[:-1],
             "longer": right + "0", "empty": ""}
    service_calls = [("GET", "/person-dump", None), ("PATCH", "/person/1", {"name": "x"}),
                     ("POST", "/persons/merge", {"target_person_id": 1, "person_ids": [2]}),
                     ("POST", "/faces/move", {"face_ids": [1], "person_id": 1}), ("POST", "/faces/1/reject", {}),
                     ("POST", "/faces/1/confirm", {}), ("POST", "/recluster", {}), ("POST", "/reprocess", {}),
                     ("POST", "/callback/photo-processed", {"photo_id": 1, "status": "FAILED", "error": "x"})]
    ml_calls = [("POST", "/process-photo", {"photo_id": 1, "path": str(world["photos"] / "obama" / "obama.jpg"),
                                            "callbackUrl": stack.base + "/callback/photo-processed"}),
                ("POST", "/embeddings/from-image", {"path": str(world["photos"] / "obama" / "obama.jpg")}),
                ("POST", "/render", {"path": str(world["photos"] / "obama" / "obama.jpg"), "boxes": []})]
    not_refused = []
    total = 0
    for base, calls in ((stack.base, service_calls), (stack.ml_url, ml_calls)):
        for method, path, body in calls:
            for label, value in wrong.items():
                headers = {"Content-Type": "application/json"}
                if value is not None:
                    headers[SECRET_HEADER] = value
                r = httpx.request(method, base + path, content=None if body is None else json.dumps(body),
                                  headers=headers, timeout=30)
                total += 1
                if r.status_code != 401:
                    not_refused.append((method, path, label, r.status_code))
    # With the secret, the same dump answers.
    dump = httpx.get(stack.base + "/person-dump", headers=_secret(stack), timeout=30)
    ok = not not_refused and dump.status_code == 200
    record("security", "shared secret for person dump, embeddings, corrections", f"{total} requests with no, partial or "
           f"wrong secret: {total - len(not_refused)} refused with 401; with the secret the dump answers {dump.status_code}",
           ok, requests=total, not_refused=not_refused)
    assert not not_refused, not_refused
    assert dump.status_code == 200


def test_services_reachable_from_other_machines_refuse_to_start_without_the_secret(tmp_path):
    """Both real binaries, told to listen on 0.0.0.0 without a shared secret, exit with an error naming it."""
    env = harness.base_env(PHOTO_SORTER_HOST="0.0.0.0", PHOTO_SORTER_PORT=harness.free_port(),
                           PHOTO_SORTER_API_TOKEN="0123456789abcdef0123",
                           PHOTO_SORTER_DATABASE_URL=str(tmp_path / "db.sqlite"))
    swift = subprocess.run([str(harness.find_binary()), "serve"], env=env, capture_output=True, text=True, timeout=120)
    ml_env = harness.base_env(PHOTO_SORTER_ML_HOST="0.0.0.0", PHOTO_SORTER_ML_PORT=harness.free_port(),
                              PHOTO_SORTER_ALLOWED_ROOTS=str(tmp_path))
    ml = subprocess.run([str(harness.ml_python()), "-m", "photo_sorter_ml"], env=ml_env, cwd=str(harness.REPO / "ml-service"),
                        capture_output=True, text=True, timeout=120)
    swift_out, ml_out = swift.stdout + swift.stderr, ml.stdout + ml.stderr
    ok = (swift.returncode != 0 and "PHOTO_SORTER_SHARED_SECRET" in swift_out
          and ml.returncode == 2 and "PHOTO_SORTER_SHARED_SECRET" in ml_out)
    record("security", "beyond loopback only with the shared secret", f"service exit {swift.returncode}, ML service exit "
           f"{ml.returncode}, both naming PHOTO_SORTER_SHARED_SECRET" if ok else "started without a secret", ok)
    assert swift.returncode != 0 and "PHOTO_SORTER_SHARED_SECRET" in swift_out, swift_out[-2000:]
    assert ml.returncode == 2 and "PHOTO_SORTER_SHARED_SECRET" in ml_out, ml_out[-2000:]


def test_request_bodies_over_the_limit_are_refused_with_413(world):
    stack = world["stack"]
    big = b'{"path": "' + b"a" * (17 * 1024 * 1024) + b'"}'
    codes = {}
    for name, url in (("service /ingest-folder", stack.base + "/ingest-folder"),
                      ("service /callback/photo-processed", stack.base + "/callback/photo-processed"),
                      ("ML /process-photo", stack.ml_url + "/process-photo"),
                      ("ML /render", stack.ml_url + "/render")):
        try:
            codes[name] = httpx.post(url, content=big, headers={"Content-Type": "application/json", **_secret(stack)},
                                     timeout=60).status_code
        except httpx.HTTPError as e:  # a server may close the connection after answering 413 mid-upload
            codes[name] = f"connection closed ({type(e).__name__})"
    alive = httpx.get(stack.base + "/health", timeout=10).status_code == 200 and \
        httpx.get(stack.ml_url + "/health", timeout=10).status_code == 200
    ok = all(c == 413 for c in codes.values()) and alive
    record("security", "request body size limits", "17 MB JSON bodies refused: " + ", ".join(f"{k} {v}" for k, v in codes.items()),
           ok, statuses=codes)
    assert ok, codes


LEAKS = ("Traceback", "File \"/", ".swift:", "Fatal error", "SELECT ", "INSERT ", "UPDATE ", "sqlite", "SQLite",
         "psql", "PSQLError", "syntax error", "violates", "constraint")


def test_error_bodies_carry_no_stack_traces_or_sql(world):
    stack = world["stack"]
    sec = _secret(stack)
    service_tries = [("GET", "/photo/99999999999999999999999", None), ("GET", "/photo/-1", None),
                     ("GET", "/photos?limit=abc", None), ("GET", "/photos?status='; DROP TABLE photos;--", None),
                     ("GET", "/person/0", None), ("GET", "/persons?limit=-5", None), ("PATCH", "/person/abc", {"name": 1}),
                     ("POST", "/persons/merge", {"target_person_id": 99999999999, "person_ids": [99999999999]}),
                     ("POST", "/faces/move", {"face_ids": [-1], "person_id": 9223372036854775807}),
                     ("POST", "/ingest-folder", "{not json"), ("POST", "/callback/photo-processed", {"photoId": "x"}),
                     ("GET", "/ingest-status/'or'1'='1", None), ("GET", "/thumbnails/face/%2e%2e%2fetc.jpg", None)]
    ml_tries = [("POST", "/process-photo", "{not json"), ("POST", "/process-photo", {"photoId": None}),
                ("POST", "/render", {"path": 5, "boxes": "x"}), ("POST", "/embeddings/from-image", {"path": "\u0000"})]
    leaks, server_errors, n = [], [], 0
    for base, tries in ((stack.base, service_tries), (stack.ml_url, ml_tries)):
        for method, path, body in tries:
            content = body if isinstance(body, str) or body is None else json.dumps(body)
            r = httpx.request(method, base + path, content=content, headers={"Content-Type": "application/json", **sec},
                              timeout=30)
            n += 1
            if r.status_code >= 500:
                server_errors.append((method, path, r.status_code))
            found = [w for w in LEAKS if w in r.text]
            if found:
                leaks.append((method, path, r.status_code, found, r.text[:300]))
    ok = not leaks and not server_errors
    record("security", "error bodies without stack traces or SQL", f"{n} malformed requests: {len(server_errors)} 5xx, "
           f"{len(leaks)} bodies with a trace or SQL", ok, requests=n, leaks=leaks, server_errors=server_errors)
    assert not leaks, leaks
    assert not server_errors, server_errors
