"""Back-pressure: a tiny queue and one busy worker answer 429 with Retry-After; nothing is lost."""
from __future__ import annotations

import time

import pytest

from conftest import MLServer


@pytest.fixture(scope="module")
def small_server(faces, receiver, tmp_path_factory):
    env = {
        "PHOTO_SORTER_ML_WORKERS": "1",
        "PHOTO_SORTER_ML_QUEUE_SIZE": "1",
        "PHOTO_SORTER_ALLOWED_ROOTS": str(faces),
        "PHOTO_SORTER_SERVICE_URL": receiver.origin,
        # The slower dlib model at full resolution + upsample: each big photo keeps the single worker busy
        # for a while.
        "PHOTO_SORTER_ML_MODEL": "dlib",
        "PHOTO_SORTER_ML_DETECT_MAX_SIDE": "0",
        "PHOTO_SORTER_ML_UPSAMPLE_MAX_SIDE": "100000",
    }
    s = MLServer(env, tmp_path_factory.mktemp("logs") / "ml-small.log")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_queue_full_answers_429_with_retry_after(small_server, receiver, faces):
    path = str(faces / "dlib_faces/_group/bald_guys.jpg")
    accepted, rejected = [], []
    for i in range(6):
        pid = 500_000 + i
        r = small_server.client.post("/process-photo", json={"photo_id": pid, "path": path,
                                                              "callbackUrl": receiver.url()})
        if r.status_code == 202:
            accepted.append(pid)
            assert r.json()["queue_depth"] == len(accepted)
        else:
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) >= 1
            assert "queue full" in r.json()["error"]
            rejected.append(pid)
    # capacity = 1 running + 1 waiting
    assert len(accepted) == 2 and len(rejected) == 4
    h = small_server.client.get("/health").json()
    assert h["queue_depth"] == 2 and h["workers"] == 1
    for pid in accepted:
        assert receiver.wait(pid, timeout=120)["status"] == "PROCESSED"
    for pid in rejected:
        assert receiver.calls_for(pid) == []
    time.sleep(0.1)
    assert small_server.client.get("/health").json()["queue_depth"] == 0
    r = small_server.client.post("/process-photo", json={"photo_id": 500_100, "path": path,
                                                          "callbackUrl": receiver.url()})
    assert r.status_code == 202
    receiver.wait(500_100, timeout=120)
