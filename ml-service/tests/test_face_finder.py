"""Finding every face (face_finder.py) with the real SCRFD-500M and ArcFace models on real photos: frame-filling
faces found by a second look, sideways scans found and turned upright, no face found where there is none."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import skimage
from photo_sorter_ml.config import Settings
from photo_sorter_ml.decode import decode, downscale_for_detection
from photo_sorter_ml.face_finder import FIRST_LOOK, find_faces
from photo_sorter_ml.models import load_models
from photo_sorter_ml.pipeline import PipelineParams, analyse, render_photo

HARD_FACES = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "hard_faces"
# Photos without people that ship with scikit-image (a cat, a horse, a rocket, coins, text, textures, ...).
NO_PEOPLE = ["brick.png", "cell.png", "chelsea.png", "chessboard_RGB.png", "clock_motion.png", "coffee.png", "coins.png",
             "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "logo.png",
             "microaneurysms.png", "moon.png", "motorcycle_left.png", "page.png", "phantom.png", "retina.jpg",
             "rocket.jpg", "text.png"]

needs_hard_faces = pytest.mark.skipif(not HARD_FACES.is_dir(), reason=f"{HARD_FACES} not present")


@pytest.fixture(scope="module")
def models():
    return load_models("arcface")


@pytest.fixture(scope="module")
def params():
    return PipelineParams.from_settings(Settings(model="arcface", thumbnail_size=0))


def _detection_copy(path: Path) -> np.ndarray:
    return downscale_for_detection(decode(str(path), 100_000_000).rgb, 640)[0]


def _cosine(a: bytes, b: bytes) -> float:
    x, y = np.frombuffer(a, dtype="<f4"), np.frombuffer(b, dtype="<f4")
    return float(x @ y)


@needs_hard_faces
@pytest.mark.parametrize("photo", ["cfp_dev/002_Aaron_Hernandez/frontal_01.jpg", "fgnet_dev/001/001A16.JPG"])
def test_a_face_that_fills_the_frame_is_found_by_a_second_look(models, params, photo):
    path = HARD_FACES / photo
    assert models.detector.detect(_detection_copy(path), 0) == [], "the first look misses this close-up"
    result = analyse(str(path), models=models, params=params)
    assert result["ok"] and len(result["detections"]) == 1
    assert result["detect"]["look"] != FIRST_LOOK.name and result["quarter_turns"] == 0
    x1, y1, x2, y2 = result["detections"][0]["bbox"]
    assert 0 <= x1 < x2 <= result["width"] and 0 <= y1 < y2 <= result["height"]
    assert (x2 - x1) * (y2 - y1) > 0.2 * result["width"] * result["height"], "the box is the face that fills the frame"


def test_a_photo_whose_first_look_finds_faces_gets_no_second_look(models, faces):
    image = _detection_copy(sorted((faces / "lfw_small").rglob("*.jpg"))[0])
    calls = []

    class Counting:
        def detect(self, rgb, upsample):
            calls.append(rgb.shape)
            return models.detector.detect(rgb, upsample)

    found = find_faces(Counting(), image, 0)
    assert found.faces and found.look == "first" and found.quarter_turns == 0
    assert calls == [image.shape]


@needs_hard_faces
@pytest.mark.parametrize("turns", [1, 3, 2])
def test_a_scan_lying_on_its_side_or_upside_down_is_found_and_turned_upright(models, params, tmp_path, turns):
    path = HARD_FACES / "fgnet_dev/008/008A16.JPG"
    upright = analyse(str(path), models=models, params=params)
    assert upright["ok"] and upright["quarter_turns"] == 0 and len(upright["detections"]) == 1
    scan = tmp_path / "scan.png"  # no EXIF orientation: only the pixels say which way is up
    Image.fromarray(np.rot90(decode(str(path), 100_000_000).rgb, turns)).save(scan)

    result = analyse(str(scan), models=models, params=params)

    assert result["ok"] and len(result["detections"]) == 1
    assert (result["quarter_turns"] + turns) % 4 == 0, "turned back upright"
    assert (result["width"], result["height"]) == (upright["width"], upright["height"])
    assert _cosine(result["detections"][0]["embedding"], upright["detections"][0]["embedding"]) > 0.8
    # Rendering later turns the photo the same way, so the stored boxes still fit.
    rendered = render_photo(str(scan), None, [result["detections"][0]["bbox"]],
                            PipelineParams.from_settings(Settings(model="arcface")), quarter_turns=result["quarter_turns"])
    assert rendered["ok"] and (rendered["width"], rendered["height"]) == (upright["width"], upright["height"])


def test_photos_without_people_get_no_face_from_any_look(models, params, faces):
    data = Path(skimage.__file__).parent / "data"
    photos = [data / name for name in NO_PEOPLE] + [faces / "dlib_faces" / "_noface" / "dogs.jpg"]
    found = {p.name: len(analyse(str(p), models=models, params=params)["detections"]) for p in photos}
    assert found == {p.name: 0 for p in photos}

