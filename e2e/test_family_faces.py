"""Faces as family libraries have them, through the real ML service and the real Swift service: a close-up whose face
fills the frame is found, and a print scanned sideways (no EXIF orientation) is found, turned upright, joins the
person of the same photo scanned upright, and keeps its orientation when its images are rendered again later.

Photos come from ../shared/testdata/hard_faces, copied (or turned) into a temporary folder at test time.
"""
from __future__ import annotations

import io
import os
import shutil
import sqlite3
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HARD_FACES = harness.REPO.parent / "shared" / "testdata" / "hard_faces"
CLOSE_UP = HARD_FACES / "cfp_dev" / "002_Aaron_Hernandez" / "frontal_01.jpg"  # SCRFD's first look finds no face
PRINT = HARD_FACES / "fgnet_dev" / "008" / "008A16.JPG"

pytestmark = pytest.mark.skipif(not HARD_FACES.is_dir(), reason=f"{HARD_FACES} not present")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The folder sorted through a real stack, and every photo read back: {file name: GET /photo/{id}}."""
    folder = tmp_path_factory.mktemp("family")
    shutil.copyfile(CLOSE_UP, folder / "close-up.jpg")
    shutil.copyfile(PRINT, folder / "print-upright.jpg")
    with Image.open(PRINT) as im:
        Image.fromarray(np.rot90(np.asarray(im.convert("RGB")), 1)).save(folder / "print-sideways.png")
    stack = harness.Stack(tmp_path_factory.mktemp("family-stack"), allowed_roots=[folder])
    try:
        status = stack.wait_job(stack.ingest(folder), timeout=600)
        assert status["processed"] == 3 and status["failed"] == 0, status
        photos = {Path(p["path"]).name: stack.get(f"/photo/{p['photo_id']}") for p in harness.all_photos(stack.base)}
        yield stack, photos
    finally:
        stack.stop()


def test_a_close_up_whose_face_fills_the_frame_is_found(library):
    _, photos = library
    close_up = photos["close-up.jpg"]
    assert close_up["status"] == "PROCESSED" and not close_up["no_faces"]
    assert len(close_up["detections"]) == 1


def test_a_print_scanned_sideways_is_found_turned_upright_and_joins_its_person(library):
    _, photos = library
    upright, sideways = photos["print-upright.jpg"], photos["print-sideways.png"]
    assert len(upright["detections"]) == 1 and len(sideways["detections"]) == 1
    assert (sideways["width"], sideways["height"]) == (upright["width"], upright["height"]), "shown upright"
    assert sideways["person_ids"] == upright["person_ids"], "the same face scanned twice is one person"


def test_images_rendered_again_later_keep_the_turn(library):
    stack, photos = library
    sideways = photos["print-sideways.png"]
    # A database from before previews: the service asks the ML service to render them again (POST /render).
    with sqlite3.connect(stack.database) as db:
        db.execute("DELETE FROM photo_previews WHERE photo_id = ?", (sideways["photo_id"],))
        db.execute("DELETE FROM face_thumbnails WHERE photo_id = ?", (sideways["photo_id"],))
    with urllib.request.urlopen(f"{stack.base}/thumbnails/photo/{sideways['photo_id']}.jpg", timeout=60) as response:
        preview = Image.open(io.BytesIO(response.read()))
    ratio = sideways["width"] / sideways["height"]
    assert abs(preview.width / preview.height - ratio) < 0.02, "the rendered preview is upright, like the boxes"
    face_id = sideways["detections"][0]["embedding_id"]
    with urllib.request.urlopen(f"{stack.base}/thumbnails/face/{face_id}.jpg", timeout=60) as response:
        assert response.status == 200 and response.read(3) == b"\xff\xd8\xff"
