"""Start-up: the service takes photos while its workers still load the models (`sort` hands its first photos over as
soon as the service listens); only models that failed to load turn photos away."""
from __future__ import annotations

import os
import time

import httpx
import pytest

from conftest import ML_DIR, MLServer
from photo_sorter_ml.pipeline import PipelineParams
from photo_sorter_ml.worker_pool import NotReady, WorkerPool


def pool() -> WorkerPool:
    return WorkerPool(PipelineParams(model="arcface", model_dir=None, detector="hog", upsample=0, detect_max_side=640,
                                     upsample_max_side=0, max_pixels=50_000_000), workers=1, queue_size=1)


def test_a_pool_still_loading_its_models_admits_jobs():
    p = pool()
    p.admit()
    assert p.depth == 1


def test_a_pool_whose_models_failed_to_load_turns_jobs_away_with_the_reason():
    p = pool()
    p.load_error = "ModelFileError: w600k_mbf.onnx is missing"
    with pytest.raises(NotReady, match="models failed to load: ModelFileError: w600k_mbf.onnx is missing"):
        p.admit()
    assert p.depth == 0


# Put first on the path, this onnxruntime takes 3 s to import, then hands over the real package: only a worker
# imports it (to load the detector), so the service listens long before its models are loaded, however fast the
# machine (the models load while the service starts, and a cached compile can finish first).
SLOW_ONNXRUNTIME = """
import importlib, os, sys, time
time.sleep(3)
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules["onnxruntime"]
sys.modules["onnxruntime"] = importlib.import_module("onnxruntime")
"""


def test_a_photo_sent_as_soon_as_the_service_listens_is_queued_and_analysed(faces, receiver, tmp_path):
    slow = tmp_path / "slow" / "onnxruntime"
    slow.mkdir(parents=True)
    (slow / "__init__.py").write_text(SLOW_ONNXRUNTIME)
    s = MLServer({"PHOTO_SORTER_ML_WORKERS": "1", "PHOTO_SORTER_ALLOWED_ROOTS": str(faces),
                  "PHOTO_SORTER_SERVICE_URL": receiver.origin,
                  "PYTHONPATH": os.pathsep.join([str(slow.parent), str(ML_DIR)])}, tmp_path / "ml.log")
    try:
        deadline = time.time() + 60
        while True:
            assert s.proc.poll() is None and time.time() < deadline, s.log_path.read_text()
            try:
                health = s.client.get("/health").json()
                break
            except httpx.TransportError:
                time.sleep(0.01)
        assert health["models_loaded"] is False and health["status"] == "loading", health  # the case under test
        path = str(faces / "face_recognition_examples/obama/obama.jpg")
        r = s.client.post("/process-photo", json={"photo_id": 700_001, "path": path, "callbackUrl": receiver.url()})
        assert r.status_code == 202, r.text
        body = receiver.wait(700_001, timeout=120)
        assert body["status"] == "PROCESSED" and len(body["detections"]) == 1, body
    finally:
        s.stop()
