"""Runs the real photo-sorter processes for end-to-end tests and benchmarks (stdlib only).

Used by e2e/test_end_to_end.py, bench/accuracy/accuracy.py and bench/throughput/throughput.py.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable, Optional

REPO = Path(__file__).resolve().parents[1]
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".nef", ".cr2"}


# --------------------------------------------------------------------------- locations

def faces_dir() -> Path:
    env = os.environ.get("PHOTO_SORTER_FACES_DIR")
    return Path(env).resolve() if env else (REPO.parent / "shared" / "testdata" / "faces").resolve()


def find_binary(prefer_release: bool = False) -> Path:
    env = os.environ.get("PHOTO_SORTER_BIN")
    if env:
        return Path(env).resolve()
    order = ["release", "debug"] if prefer_release else ["debug", "release"]
    for kind in order:
        p = REPO / ".build" / kind / "photo-sorter"
        if p.is_file() and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError(
        "photo-sorter binary not found: build it (swift build, or swift build -c release) or set PHOTO_SORTER_BIN")


def ml_python() -> Path:
    env = os.environ.get("PHOTO_SORTER_ML_PYTHON")
    return Path(env) if env else REPO / "ml-service" / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


# --------------------------------------------------------------------------- HTTP

class HTTPError(Exception):
    def __init__(self, status: int, body: str, url: str):
        super().__init__(f"HTTP {status} from {url}: {body[:500]}")
        self.status = status
        self.body = body


def http_json(method: str, url: str, body=None, timeout: float = 30.0, headers: Optional[dict] = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode() or "null"
            return json.loads(raw)
    except urllib.error.HTTPError as e:
        raise HTTPError(e.code, e.read().decode(errors="replace"), url) from None


# --------------------------------------------------------------------------- processes

def as_user(argv: list, user: str) -> list:
    """`argv` run as `user` (its uid and gid, no supplementary groups, through setpriv); the caller must be root."""
    import pwd

    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--", *argv]


class Process:
    """A child process whose output goes to a log file; stopped with SIGTERM, then SIGKILL. `user`: run as that user."""

    def __init__(self, name: str, argv: list, env: dict, log_path: Path, cwd: Path = REPO, user: Optional[str] = None):
        self.name = name
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "wb")
        argv = as_user(argv, user) if user else argv
        self.proc = subprocess.Popen([str(a) for a in argv], env=env, cwd=str(cwd), stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before answering {url}:\n"
                                   f"{self.log_tail()}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return
            except Exception as e:  # noqa: BLE001 - keep polling
                last = e
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout}s ({last}):\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.log.close()


def parse_env_pairs(pairs: Iterable[str]) -> dict:
    """`KEY=VALUE` strings (the benchmarks' --env options) as a dict; ValueError names a malformed one."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--env needs KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def base_env(**extra) -> dict:
    env = dict(os.environ)
    # Never let a developer's own settings leak into a test run.
    for k in list(env):
        if k.startswith("PHOTO_SORTER_") and k not in ("PHOTO_SORTER_MATCH_THRESHOLD", "PHOTO_SORTER_ML_WORKERS",
                                                       "PHOTO_SORTER_WORKERS", "PHOTO_SORTER_ML_PYTHON"):
            del env[k]
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def start_ml_service(port: int, service_url: str, allowed_roots: Iterable, secret: Optional[str], log_path: Path,
             workers: Optional[int] = None, timeout: float = 180.0, model: Optional[str] = None,
             user: Optional[str] = None, python: Optional[Path] = None, **extra_env) -> Process:
    """`user`: run it as that user; `python`: the interpreter (default: the venv's, `ml_python()`)."""
    py = python or ml_python()
    if not py.exists():
        raise FileNotFoundError(f"ML service venv not found at {py}: run scripts/install-ml.sh")
    env = base_env(PHOTO_SORTER_ML_HOST="127.0.0.1", PHOTO_SORTER_ML_PORT=port,
                   PHOTO_SORTER_SERVICE_URL=service_url,
                   PHOTO_SORTER_ALLOWED_ROOTS=":".join(str(r) for r in allowed_roots),
                   PHOTO_SORTER_SHARED_SECRET=secret, PHOTO_SORTER_ML_WORKERS=workers, PHOTO_SORTER_ML_MODEL=model,
                   **extra_env)
    p = Process("ML service", [py, "-m", "photo_sorter_ml"], env, log_path, cwd=REPO / "ml-service", user=user)
    try:
        p.wait_http(f"http://127.0.0.1:{port}/health", timeout)
        deadline = time.monotonic() + timeout
        while True:  # /health answers while the models still load: wait for them
            h = http_json("GET", f"http://127.0.0.1:{port}/health")
            if h.get("models_loaded") in (None, True) or (isinstance(h.get("models_loaded"), int)
                                                          and h["models_loaded"] > 0):
                break
            if h.get("load_error"):
                raise RuntimeError(f"ML service failed to load its models: {h['load_error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"ML service models not loaded after {timeout}s:\n{p.log_tail()}")
            time.sleep(0.25)
    except BaseException:
        p.stop()
        raise
    return p


def start_swift(binary: Path, database: str, port: int, ml_url: str, allowed_roots: Iterable, secret: str,
                log_path: Path, timeout: float = 120.0, user: Optional[str] = None, **extra_env) -> Process:
    env = base_env(PHOTO_SORTER_DATABASE_URL=database, PHOTO_SORTER_HOST="127.0.0.1", PHOTO_SORTER_PORT=port,
                   PHOTO_SORTER_ML_URL=ml_url, PHOTO_SORTER_SHARED_SECRET=secret,
                   PHOTO_SORTER_ALLOWED_ROOTS=":".join(str(r) for r in allowed_roots), **extra_env)
    p = Process("photo-sorter serve", [binary, "serve"], env, log_path, user=user)
    p.wait_http(f"http://127.0.0.1:{port}/health", timeout)
    return p


class Stack:
    """ML service + `photo-sorter serve` on free ports with a private SQLite database in `workdir`."""

    def __init__(self, workdir: Path, allowed_roots: Iterable, binary: Optional[Path] = None,
                 database: Optional[str] = None, ml_workers: Optional[int] = None, with_ml: bool = True,
                 ml_model: Optional[str] = None, **swift_env):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or find_binary()
        self.database = database or str(self.workdir / "photo-sorter.sqlite")
        self.secret = secrets.token_hex(16)
        self.port = free_port()
        self.ml_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ml_url = f"http://127.0.0.1:{self.ml_port}"
        roots = [str(Path(r).resolve()) for r in allowed_roots]
        self.ml = None
        self.swift = None
        try:
            if with_ml:
                self.ml = start_ml_service(self.ml_port, self.base, roots, self.secret, self.workdir / "ml-service.log",
                                   workers=ml_workers, model=ml_model)
            self.swift = start_swift(self.binary, self.database, self.port, self.ml_url, roots, self.secret,
                                     self.workdir / "photo-sorter.log", **swift_env)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for p in (self.swift, self.ml):
            if p is not None:
                p.stop()

    def logs(self) -> str:
        out = []
        for p in (self.swift, self.ml):
            if p is not None:
                out.append(f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(6000)}")
        return "\n".join(out)

    # API helpers
    def get(self, path: str, **kw):
        return http_json("GET", self.base + path, **kw)

    def post(self, path: str, body, **kw):
        return http_json("POST", self.base + path, body, **kw)

    def ingest(self, path: Path, **opts) -> str:
        body = {"path": str(Path(path).resolve()), "recursive": True}
        body.update(opts)
        return self.post("/ingest-folder", body)["jobId"]

    def wait_job(self, job_id: str, timeout: float = 900.0) -> dict:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.get(f"/ingest-status/{job_id}")
            if status.get("done") or status.get("status") == "FAILED":
                return status
            for p in (self.swift, self.ml):
                if p is not None and not p.alive():
                    raise RuntimeError(f"{p.name} died while job {job_id} ran:\n{self.logs()}")
            time.sleep(0.5)
        raise TimeoutError(f"ingest job {job_id} not done after {timeout}s; last status {status}\n{self.logs()}")


# --------------------------------------------------------------------------- reading results

def all_photos(base: str, status: str = "", page: int = 500) -> list[dict]:
    out, after = [], 0
    while True:
        q = urllib.parse.urlencode({"after_id": after, "limit": page, **({"status": status} if status else {})})
        res = http_json("GET", f"{base}/photos?{q}")
        out.extend(res.get("photos", []))
        nxt = res.get("next_after_id")
        if nxt is None or not res.get("photos"):
            return out
        after = nxt


def photo_details(base: str, photos: list[dict]) -> dict:
    """realpath -> GET /photo/{id} for every photo."""
    out = {}
    for p in photos:
        d = http_json("GET", f"{base}/photo/{p['photo_id']}")
        out[os.path.realpath(d.get("path") or p["path"])] = d
    return out


def image_size(path) -> Optional[tuple]:
    """(width, height) from a JPEG or PNG header (no EXIF rotation), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return struct.unpack(">II", head[16:24])
            if head[:2] != b"\xff\xd8":
                return None
            f.seek(2)
            while True:
                b = f.read(1)
                while b and b != b"\xff":
                    b = f.read(1)
                while b == b"\xff":
                    b = f.read(1)
                if not b:
                    return None
                marker = b[0]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    continue
                seglen = struct.unpack(">H", f.read(2))[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    f.read(1)
                    h, w = struct.unpack(">HH", f.read(4))
                    return (w, h)
                f.seek(seglen - 2, 1)
    except (OSError, struct.error):
        return None


def labelled_detection(detail: dict, path=None) -> Optional[dict]:
    """The detection whose bbox centre is nearest the image centre (the labelled face), or None."""
    dets = detail.get("detections") or []
    if not dets:
        return None
    w, h = detail.get("width"), detail.get("height")
    if not w or not h:
        size = image_size(path or detail.get("path"))
        if size:
            w, h = size
        else:  # fall back to the centre of all boxes
            xs = [v for d in dets for v in (d["bbox"][0], d["bbox"][2])]
            ys = [v for d in dets for v in (d["bbox"][1], d["bbox"][3])]
            w, h = min(xs) + max(xs), min(ys) + max(ys)
    cx, cy = w / 2.0, h / 2.0

    def dist(d):
        x1, y1, x2, y2 = d["bbox"]
        return math.hypot((x1 + x2) / 2.0 - cx, (y1 + y2) / 2.0 - cy)

    return min(dets, key=dist)


def labelled_person(detail: dict, path=None):
    """What the metrics score for a labelled photo: None when no face was found there, else the labelled face's
    person id, or for an unsorted face (too unsure to start a person, matched no one) a key of its own (a
    singleton, not a miss)."""
    det = labelled_detection(detail, path)
    if det is None:
        return None
    return det.get("person_id") or ("unsorted", path or detail.get("path"))


def labelled_photos(root: Path) -> list[tuple[str, str]]:
    """[(realpath, identity)] for <root>/<identity>/...; folders starting with '_' are not identities."""
    out = []
    for ident in sorted(Path(root).iterdir()):
        if not ident.is_dir() or ident.name.startswith("_") or ident.name.startswith("."):
            continue
        for p in list_images(ident):
            out.append((os.path.realpath(p), ident.name))
    return out


def run_sort(binary: Path, folder: Path, database: str, summary_json: Path, log_path: Path,
             timeout: float = 3600.0, extra_args: Iterable = (), start_ml: bool = False,
             **env) -> tuple[int, Optional[dict], float]:
    """`photo-sorter sort`; returns (exit code, summary JSON or None, wall seconds).

    By default `sort` starts the ML service itself. With start_ml=True it is started here first (on
    the URL given to `sort` with --ml-url, calling back to sort's --port), and `sort` uses it.
    """
    port, ml_port = free_port(), free_port()
    argv = [str(binary), "sort", str(folder), "--database", database, "--port", str(port),
            "--ml-url", f"http://127.0.0.1:{ml_port}", "--no-progress", "--summary-json", str(summary_json),
            *map(str, extra_args)]
    ml = None
    if start_ml:
        ml = start_ml_service(ml_port, f"http://127.0.0.1:{port}", [Path(folder).resolve()], None,
                              Path(log_path).with_suffix(".ml.log"), workers=env.get("PHOTO_SORTER_ML_WORKERS"))
    try:
        rc, wall = run_cli(argv, log_path, timeout, **env)
    finally:
        if ml is not None:
            ml.stop()
    summary = None
    if Path(summary_json).is_file():
        summary = json.loads(Path(summary_json).read_text())
    return rc, summary, wall


def run_cli(argv: list, log_path: Path, timeout: float = 3600.0, **env) -> tuple[int, float]:
    """Runs a photo-sorter command from the repository root, output to `log_path`; (exit code, wall seconds)."""
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.run([str(a) for a in argv], cwd=str(REPO), env=base_env(**env), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
    return proc.returncode, time.monotonic() - t0


def copy_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a tree of photos."""
    for p in list_images(src):
        target = Path(dst) / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copy2(p, target)


def machine_description() -> str:
    """'<cpu model>, N cores, M GiB RAM' from lscpu / os / /proc/meminfo."""
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    ram = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.0f}"
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {ram} GiB RAM"


def update_results_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the `## heading` section of a Markdown file, leaving other sections alone."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    title = f"## {heading}"
    start = next((i for i, l in enumerate(lines) if l.strip() == title), None)
    new = [title, ""] + body.strip("\n").splitlines() + [""]
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += [""] + new
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = new
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


if __name__ == "__main__":  # tiny self-check: python e2e/harness.py <image>
    for a in sys.argv[1:]:
        print(a, image_size(a))
