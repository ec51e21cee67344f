"""Shared fixtures: the real service (uvicorn subprocess, real models: `server` runs the default ArcFace model,
`dlib_server` the dlib one) and a real callback receiver."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ML_DIR = Path(__file__).resolve().parents[1]
REPO = ML_DIR.parent
sys.path.insert(0, str(ML_DIR))

SECRET = "test-secret-123"
# The service's face models as its OpenAPI document lists them (`x-face-models`, held to `FaceModel.all` by the Swift
# test OpenAPIContractTests): names, embedders, dimensions and the identity rule its person dump hands this service.
SERVICE_MODELS = {m["name"]: m for m in
                  json.loads((REPO / "Sources/PhotoSorterServer/OpenAPI/openapi.json").read_text())["x-face-models"]}
MATCH_THRESHOLDS = {name: model["match_threshold"] for name, model in SERVICE_MODELS.items()}


def faces_dir() -> Path:
    env = os.environ.get("PHOTO_SORTER_FACES_DIR")
    return Path(env) if env else REPO.parent / "shared/testdata/faces"


@pytest.fixture(scope="session")
def faces() -> Path:
    d = faces_dir()
    if not (d / "lfw_small").is_dir():
        pytest.skip(f"test photos not found at {d} (set PHOTO_SORTER_FACES_DIR)")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real HTTP server: records callbacks (POST /cb), answers scripted statuses, serves /person-dump (`persons`,
    one entry per look, paged by look id, with `identity_rule` when it is set, as the Swift service does once the
    library has a face model)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict] = []  # every POST, with status answered
        self.script: dict[int, list[int]] = {}  # photo_id -> statuses to answer, in order (then 200)
        self.persons: list[dict] = []
        self.identity_rule: dict | None = None
        self.dump_requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                with receiver.lock:
                    queue = receiver.script.get(body.get("photo_id"), [])
                    status = queue.pop(0) if queue else 200
                    receiver.calls.append({"body": body, "status": status, "path": self.path,
                                           "secret": self.headers.get("X-Photo-Sorter-Secret"), "t": time.time()})
                data = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with receiver.lock:
                    receiver.dump_requests.append({"path": self.path, "secret": self.headers.get("X-Photo-Sorter-Secret")})
                    persons = list(receiver.persons)
                    rule = receiver.identity_rule
                if not self.path.startswith("/person-dump"):
                    self.send_response(404)
                    self.end_headers()
                    return
                from urllib.parse import parse_qs, urlsplit

                q = parse_qs(urlsplit(self.path).query)
                since = int(q.get("since_id", ["0"])[0])
                look_ids = [p.get("look_id", p["person_id"]) for p in persons]
                answer = {"persons": [p for p, look in zip(persons, look_ids) if look > since],
                          "next_since_id": max([since] + look_ids), "has_more": False}
                if rule is not None:
                    answer["identity_rule"] = rule
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str = "cb") -> str:
        return f"{self.origin}/{name}"

    def calls_for(self, photo_id: int) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["body"].get("photo_id") == photo_id]

    def wait(self, photo_id: int, timeout: float = 60.0, status: int = 200) -> dict:
        """The body of the first callback for photo_id that was answered with `status`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for c in self.calls_for(photo_id):
                if c["status"] == status:
                    return c["body"]
            time.sleep(0.02)
        raise AssertionError(f"no callback for photo {photo_id} within {timeout}s; got {self.calls_for(photo_id)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_env(env: dict, port: int) -> dict:
    """The test process's environment without PHOTO_SORTER_* variables, plus `env`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTO_SORTER_")}
    full_env.update({"PHOTO_SORTER_ML_HOST": "127.0.0.1", "PHOTO_SORTER_ML_PORT": str(port), "PYTHONPATH": str(ML_DIR)})
    full_env.update(env)
    return full_env


class MLServer:
    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "photo_sorter_ml"], env=service_env(env, self.port),
                                     cwd=str(ML_DIR), stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ML service exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                r = self.client.get("/health")
                if r.status_code == 200 and r.json().get("models_loaded"):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ML service not ready in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ml-work")


def _started(faces, receiver, work_dir, log_path: Path, **extra: str):
    """2 workers, roots = faces + work dir, callbacks to the receiver, shared secret."""
    env = {
        "PHOTO_SORTER_ML_WORKERS": "2",
        "PHOTO_SORTER_ALLOWED_ROOTS": os.pathsep.join([str(faces), str(work_dir)]),
        "PHOTO_SORTER_SERVICE_URL": receiver.origin,
        "PHOTO_SORTER_SHARED_SECRET": SECRET,
        "PHOTO_SORTER_ML_CALLBACK_RETRIES": "3",
        "PHOTO_SORTER_ML_CALLBACK_BACKOFF_S": "0.05",
        "PHOTO_SORTER_ML_DUMP_REFRESH_S": "0.3",
        **extra,
    }
    s = MLServer(env, log_path)
    try:
        s.wait_ready()
    except BaseException:
        s.stop()
        raise
    s.client.headers["X-Photo-Sorter-Secret"] = SECRET
    return s


@pytest.fixture(scope="session")
def server(faces, receiver, work_dir, tmp_path_factory):
    """The main service, with the default model (ArcFace)."""
    s = _started(faces, receiver, work_dir, tmp_path_factory.mktemp("logs") / "ml-main.log")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def dlib_server(faces, receiver, work_dir, tmp_path_factory):
    """The same service with PHOTO_SORTER_ML_MODEL=dlib."""
    s = _started(faces, receiver, work_dir, tmp_path_factory.mktemp("logs") / "ml-dlib.log",
                 PHOTO_SORTER_ML_MODEL="dlib")
    yield s
    s.stop()


def run_service(env: dict, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Runs `python -m photo_sorter_ml` to its end (for configurations that must not start)."""
    return subprocess.run([sys.executable, "-m", "photo_sorter_ml"], env=service_env(env, free_port()),
                          cwd=str(ML_DIR), capture_output=True, text=True, timeout=timeout)


_photo_ids = iter(range(1000, 10**9))


@pytest.fixture
def next_id():
    return lambda: next(_photo_ids)


def submit(server: MLServer, receiver: Receiver, path, photo_id: int, callback_id=None, timeout: float = 90.0) -> dict:
    r = server.client.post("/process-photo", json={"photo_id": photo_id, "path": str(path),
                                                   "callbackUrl": receiver.url(), "callback_id": callback_id})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] is True
    return receiver.wait(photo_id, timeout)


def analyse(server: MLServer, path) -> dict:
    r = server.client.post("/embeddings/from-image", json={"path": str(path)})
    assert r.status_code == 200, r.text
    return r.json()
