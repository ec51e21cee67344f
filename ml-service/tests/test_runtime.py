"""The runtime switch (PHOTO_SORTER_ML_RUNTIME): OpenVINO and onnxruntime give the same faces and embeddings on real
photos, a bad value is refused, and the service says what runs each model."""
from __future__ import annotations

import base64
import importlib.metadata

import numpy as np
import pytest

from conftest import _started, run_service
from photo_sorter_ml.config import Settings
from photo_sorter_ml.decode import decode
from photo_sorter_ml.models import load_models, unit_rows
from photo_sorter_ml.models.base import Detection
from photo_sorter_ml.models.runtimes import ENGINES

# The identity bound for adopting a runtime (issue 23): every embedding at cosine >= 0.999 to onnxruntime's.
MIN_COSINE = 0.999
MAX_PIXELS = Settings.max_pixels


@pytest.fixture(scope="module")
def both():
    """Both models on OpenVINO, and both on onnxruntime."""
    return {engine: load_models("arcface", runtime=engine) for engine in ENGINES}


def _photos(faces) -> list:
    """Ten lfw_small photos of ten people, and the 24 faces of bald_guys.jpg (a 3 MP group photo)."""
    people = sorted(p for p in (faces / "lfw_small").iterdir() if p.is_dir() and not p.name.startswith("_"))
    return [sorted(p.iterdir())[0] for p in people[::10]] + [faces / "dlib_faces/_group/bald_guys.jpg"]


def test_runtimes_find_the_same_faces_with_the_same_embeddings(both, faces):
    checked = 0
    for path in _photos(faces):
        rgb = decode(str(path), MAX_PIXELS).rgb
        found = {rt: m.detector.detect(rgb, 0) for rt, m in both.items()}
        ref, ov = found["onnxruntime"], found["openvino"]
        assert len(ov) == len(ref) > 0, path
        ref.sort(key=lambda d: (d.left, d.top))
        ov.sort(key=lambda d: (d.left, d.top))
        for a, b in zip(ref, ov):
            corners = np.abs(np.array([a.left, a.top, a.right, a.bottom]) - [b.left, b.top, b.right, b.bottom])
            assert corners.max() <= 1.0 and np.abs(a.landmarks - b.landmarks).max() <= 1.0, path
        cosines = np.sum(unit_rows(both["onnxruntime"].embedder.embed(rgb, ref))[0]
                         * unit_rows(both["openvino"].embedder.embed(rgb, ov))[0], 1)
        assert cosines.min() >= MIN_COSINE, (path, cosines.min())
        checked += len(ref)
    assert checked >= 30


def test_box_only_faces_embed_alike_on_both_runtimes(both, faces):
    """The path of an XMP region drawn where no face was detected: aligned from the box alone."""
    rgb = decode(str(faces / "face_recognition_examples/obama/obama.jpg"), MAX_PIXELS).rgb
    box = [Detection(350, 60, 640, 450, 0.0)]
    cosine = float(unit_rows(both["onnxruntime"].embedder.embed(rgb, box))[0][0]
                   @ unit_rows(both["openvino"].embedder.embed(rgb, box))[0][0])
    assert cosine >= MIN_COSINE


def test_mixed_runtime_detects_on_onnxruntime_and_embeds_on_openvino():
    models = load_models("arcface", runtime="mixed")
    assert type(models.detector._session).__module__.startswith("onnxruntime")
    assert type(models.embedder._session).__name__ == "OpenVinoSession"


def test_openvino_compiles_once_into_its_cache_and_the_cached_model_embeds_identically(tmp_path, faces):
    rgb = decode(str(faces / "dlib_faces/_group/bald_guys.jpg"), MAX_PIXELS).rgb
    found = load_models("arcface", runtime="onnxruntime").detector.detect(rgb, 0)
    cache = tmp_path / "compiled"
    uncached = load_models("arcface", runtime="openvino").embedder.embed(rgb, found)
    compiled = load_models("arcface", runtime="openvino", compile_cache=str(cache))
    written = {b.name: b.stat().st_mtime_ns for b in cache.iterdir()}
    assert len(written) == 2  # the detector and the embedder
    reloaded = load_models("arcface", runtime="openvino", compile_cache=str(cache))
    assert {b.name: b.stat().st_mtime_ns for b in cache.iterdir()} == written  # read, not compiled again
    assert len(found) == 24
    assert np.array_equal(compiled.embedder.embed(rgb, found), uncached)
    assert np.array_equal(reloaded.embedder.embed(rgb, found), uncached)
    fresh, again = compiled.detector.detect(rgb, 0), reloaded.detector.detect(rgb, 0)
    assert [(d.left, d.top, d.right, d.bottom) for d in again] == [(d.left, d.top, d.right, d.bottom) for d in fresh]
    assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(again, fresh))


def test_a_compile_cache_that_cannot_be_written_is_skipped(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    models = load_models("arcface", runtime="openvino", compile_cache=str(blocker / "cache"))
    assert models.embedder.dim == 512 and not (blocker / "cache").exists()


def test_compile_cache_defaults_to_the_user_cache_folder_and_can_be_turned_off():
    assert Settings.from_env({"XDG_CACHE_HOME": "/x/cache"}).compile_cache == "/x/cache/photo-sorter/openvino"
    assert Settings.from_env({"PHOTO_SORTER_ML_COMPILE_CACHE": " off "}).compile_cache is None
    assert Settings.from_env({"PHOTO_SORTER_ML_COMPILE_CACHE": "rel/dir"}).compile_cache.endswith("/rel/dir")
    assert Settings().compile_cache is None


def test_unknown_runtime_is_refused_naming_the_allowed_values():
    assert Settings.from_env({}).runtime == "mixed"
    assert Settings.from_env({"PHOTO_SORTER_ML_RUNTIME": " ONNXRuntime "}).runtime == "onnxruntime"
    allowed = "PHOTO_SORTER_ML_RUNTIME must be one of mixed, openvino, onnxruntime"
    with pytest.raises(ValueError, match=f"{allowed}, got 'tensorrt'"):
        Settings.from_env({"PHOTO_SORTER_ML_RUNTIME": "tensorrt"})
    r = run_service({"PHOTO_SORTER_ML_RUNTIME": "tensorrt"})
    assert r.returncode == 2 and allowed in r.stderr


def _engine(name: str) -> dict:
    return {"name": name, "version": importlib.metadata.version(name)}


def test_version_names_the_runtime_and_openvino_serves_the_same_analysis(server, faces, receiver, work_dir, tmp_path):
    runtime = server.client.get("/version").json()["runtime"]
    assert (runtime["name"], runtime["detector"], runtime["embedder"]) == (
        "mixed", _engine("onnxruntime"), _engine("openvino"))
    other = _started(faces, receiver, work_dir, tmp_path / "ml-openvino.log", PHOTO_SORTER_ML_RUNTIME="openvino",
                     PHOTO_SORTER_ML_WORKERS="1")
    try:
        runtime = other.client.get("/version").json()["runtime"]
        assert (runtime["name"], runtime["detector"], runtime["embedder"]) == (
            "openvino", _engine("openvino"), _engine("openvino"))
        photo = {"path": str(faces / "face_recognition_examples/_group/obama_and_biden.jpg")}
        answers = [s.client.post("/embeddings/from-image", json=photo).json() for s in (server, other)]
    finally:
        other.stop()
    boxes = [[d["bbox"] for d in a["detections"]] for a in answers]
    assert boxes[0] == boxes[1] and len(boxes[0]) >= 2
    for a, b in zip(*(a["detections"] for a in answers)):
        va, vb = (np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in (a, b))
        assert float(va @ vb) >= MIN_COSINE
