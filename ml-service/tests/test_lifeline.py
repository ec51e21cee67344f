"""The parent watch that keeps the ML service and its workers from outliving their parent."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import MLServer
from photo_sorter_ml.lifeline import parent_pid_from_env

ML_SERVICE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("value", ["abc", "-5", "1", "0", "12x"])
def test_parent_pid_that_is_not_a_pid_is_a_configuration_error(monkeypatch, value):
    monkeypatch.setenv("PHOTO_SORTER_ML_PARENT_PID", value)
    with pytest.raises(ValueError, match="PHOTO_SORTER_ML_PARENT_PID"):
        parent_pid_from_env()


def test_parent_pid_unset_means_no_watch(monkeypatch):
    monkeypatch.delenv("PHOTO_SORTER_ML_PARENT_PID", raising=False)
    assert parent_pid_from_env() is None


def test_service_refuses_to_start_with_a_bad_parent_pid():
    env = dict(os.environ, PHOTO_SORTER_ML_PARENT_PID="nope", PHOTO_SORTER_ML_PORT="0")
    out = subprocess.run([sys.executable, "-m", "photo_sorter_ml"], cwd=ML_SERVICE, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "PHOTO_SORTER_ML_PARENT_PID" in out.stderr


def test_watched_process_exits_when_its_parent_was_already_gone():
    """A child whose parent pid no longer matches (re-parented) ends at once instead of running on."""
    code = ("import time, os\n"
            "from photo_sorter_ml.lifeline import watch_parent\n"
            "watch_parent(os.getppid() + 100000, lambda: os._exit(7), 'test')\n"
            "time.sleep(30)\n")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], cwd=ML_SERVICE, timeout=30)
    assert out.returncode == 7
    assert time.monotonic() - t0 < 10


def test_sigusr1_stops_the_service_and_its_workers_at_once(faces, tmp_path):
    """What `sort` sends its ML child once every result is back: the workers stop and the service exits (status 0)
    without the HTTP layer's graceful shutdown."""
    server = MLServer({"PHOTO_SORTER_ML_WORKERS": "2", "PHOTO_SORTER_ALLOWED_ROOTS": str(faces)}, tmp_path / "ml.log")
    try:
        server.wait_ready()
        workers = [int(c) for t in os.listdir(f"/proc/{server.proc.pid}/task")
                   for c in open(f"/proc/{server.proc.pid}/task/{t}/children").read().split()]
        assert len(workers) >= 2, workers  # the pool's workers (and multiprocessing's resource tracker)
        os.kill(server.proc.pid, signal.SIGUSR1)
        assert server.proc.wait(timeout=30) == 0
        deadline = time.time() + 10
        while any(os.path.exists(f"/proc/{w}") for w in workers) and time.time() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if os.path.exists(f"/proc/{w}")], "a worker outlived the service"
        log = (tmp_path / "ml.log").read_text()
        assert "stopping at once (SIGUSR1)" in log and "Waiting for application shutdown" not in log, log[-2000:]
    finally:
        server.stop()
