"""Face thumbnails and photo previews (thumbnails.py) on generated and real images, their settings, and how the
pipeline adds them to an analysis (in process, no HTTP)."""
from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from conftest import run_service
from photo_sorter_ml import pipeline
from photo_sorter_ml.config import Settings
from photo_sorter_ml.decode import decode
from photo_sorter_ml.models import load_models
from photo_sorter_ml.pipeline import PipelineParams, analyse
from photo_sorter_ml.thumbnails import PAD_RGB, _shrink_to, face_thumbnail, photo_preview, render
from test_decode import _gradient

OBAMA = "face_recognition_examples/obama/obama.jpg"
RED, BLUE, WHITE = (220, 20, 20), (20, 20, 220), (255, 255, 255)


def jpeg(data: bytes) -> Image.Image:
    """Decodes with Pillow and checks it is a plain JPEG (no EXIF)."""
    assert data[:3] == b"\xff\xd8\xff"
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format == "JPEG" and im.mode == "RGB"
    assert not im.getexif() and "exif" not in im.info
    return im


def filled(w: int, h: int, colour) -> np.ndarray:
    return np.tile(np.array(colour, np.uint8), (h, w, 1))


def patch(im: Image.Image, x: int, y: int, r: int = 3) -> np.ndarray:
    """Mean colour of a (2r+1)^2 patch: JPEG blurs single pixels."""
    a = np.asarray(im).astype(float)
    return a[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3).mean(axis=0)


def near(colour, expected, tol: float = 25.0) -> bool:
    return bool(np.abs(np.asarray(colour) - np.asarray(expected)).max() <= tol)


# --- face thumbnails ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 112, 512])
def test_face_thumbnail_is_a_square_jpeg_of_the_requested_size(faces, size):
    rgb = decode(str(faces / OBAMA), 10**9).rgb
    im = jpeg(face_thumbnail(rgb, [378, 83, 610, 427], size))
    assert im.size == (size, size)


def test_face_thumbnail_is_centred_on_the_face_with_1_4x_context():
    rgb = filled(400, 300, BLUE)
    rgb[80:130, 100:150] = RED  # a 50 x 50 "face"
    im = jpeg(face_thumbnail(rgb, [100, 80, 150, 130], 112))
    # square side 70 px -> the face covers 50/70 of the thumbnail: 80 px in the middle, 16 px of context
    assert near(patch(im, 56, 56), RED)
    for x, y in [(22, 56), (90, 56), (56, 22), (56, 90)]:
        assert near(patch(im, x, y, 2), RED), (x, y)
    for x, y in [(8, 56), (104, 56), (56, 8), (56, 104)]:
        assert near(patch(im, x, y, 2), BLUE), (x, y)


def test_face_thumbnail_of_a_tall_box_uses_its_longer_side():
    rgb = filled(400, 300, BLUE)
    rgb[50:150, 100:150] = RED  # 50 wide, 100 tall: square side 140
    im = jpeg(face_thumbnail(rgb, [100, 50, 150, 150], 112))
    assert im.size == (112, 112)
    assert near(patch(im, 56, 20), RED) and near(patch(im, 56, 92), RED)
    assert near(patch(im, 30, 56), BLUE) and near(patch(im, 82, 56), BLUE)  # face is 40 px wide here


def test_face_at_the_image_corner_slides_the_square_into_the_photo_instead_of_padding():
    rgb = filled(300, 200, WHITE)
    rgb[0:40, 0:40] = RED  # the face, in the top-left corner
    im = jpeg(face_thumbnail(rgb, [0, 0, 40, 40], 112))
    # square side 56 at (0, 0): the face covers the top-left 40/56 of the thumbnail (80 px), the rest is photo
    assert im.size == (112, 112)
    assert near(patch(im, 5, 5, 2), RED) and near(patch(im, 70, 70), RED)
    assert near(patch(im, 105, 105, 2), WHITE) and near(patch(im, 105, 5, 2), WHITE) and near(patch(im, 5, 105, 2), WHITE)


def test_face_wider_than_the_photo_is_tall_keeps_grey_only_where_no_photo_is():
    rgb = filled(300, 60, WHITE)
    im = jpeg(face_thumbnail(rgb, [100, 0, 180, 60], 112))
    # square side 80 (the face's longer side: 1.4x would exceed the 60 px photo), 20 px of it below the photo
    assert im.size == (112, 112)
    assert near(patch(im, 56, 40), WHITE) and near(patch(im, 56, 108, 2), PAD_RGB)


def test_face_filling_the_photo_gives_a_full_size_thumbnail(faces):
    rgb = decode(str(sorted((faces / "lfw_small/Tom_Hanks").glob("*.jpg"))[0]), 10**9).rgb
    h, w = rgb.shape[:2]
    for box in ([0, 0, w, h], [w - 30, h - 30, w, h], [-20, -20, w + 20, h + 20]):
        assert jpeg(face_thumbnail(rgb, box, 112)).size == (112, 112), box


def test_box_outside_the_image_gives_a_grey_thumbnail_not_an_error():
    im = jpeg(face_thumbnail(filled(100, 100, WHITE), [500, 500, 540, 540], 64))
    assert im.size == (64, 64) and near(patch(im, 32, 32), PAD_RGB)


def test_tiny_face_is_scaled_up_to_the_thumbnail_size():
    rgb = filled(200, 200, BLUE)
    rgb[100:110, 100:110] = RED
    im = jpeg(face_thumbnail(rgb, [100, 100, 110, 110], 112))
    assert im.size == (112, 112) and near(patch(im, 56, 56), RED)


# --- previews -------------------------------------------------------------------------------------

@pytest.mark.parametrize("w,h,max_side,expected", [
    (6000, 4000, 640, (640, 427)),
    (3000, 4000, 640, (480, 640)),
    (1986, 1545, 640, (640, 498)),
    (4000, 4000, 100, (100, 100)),
    (5000, 50, 640, (640, 6)),
])
def test_preview_longest_side_is_max_side_and_aspect_is_kept(w, h, max_side, expected):
    rgb = _gradient(w, h)
    data, pw, ph = photo_preview(rgb, max_side)
    im = jpeg(data)
    assert im.size == (pw, ph) == expected
    assert max(pw, ph) <= max_side
    assert abs(pw / ph - w / h) <= 0.5 * (w / h) / min(pw, ph) + 1e-9  # off by at most half a pixel
    # the fast path looks like a plain LANCZOS resize of the whole photo (before JPEG)
    ref = Image.fromarray(rgb).resize((pw, ph), Image.LANCZOS)
    assert np.abs(np.asarray(_shrink_to(rgb, pw, ph), float) - np.asarray(ref, float)).mean() < 2


def test_small_photo_is_not_upscaled(faces):
    path = sorted((faces / "lfw_small/Tom_Hanks").glob("*.jpg"))[0]
    rgb = decode(str(path), 10**9).rgb
    data, pw, ph = photo_preview(rgb, 640)
    assert (pw, ph) == (250, 250) == jpeg(data).size


def test_preview_of_an_exif_rotated_photo_is_upright(tmp_path):
    up = _gradient(400, 200)
    up[:40, :40] = RED  # marks the upright top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; displayed after a clockwise turn
    p = tmp_path / "rot.jpg"
    Image.fromarray(up).transpose(Image.Transpose.ROTATE_90).save(p, exif=exif, quality=95)
    d = decode(str(p), 10**8)
    data, pw, ph = photo_preview(d.rgb, 100)
    im = jpeg(data)
    assert (pw, ph) == im.size == (100, 50)
    assert near(patch(im, 4, 4, 2), RED, 40)
    ref = Image.fromarray(up).resize((100, 50), Image.LANCZOS)
    assert np.abs(np.asarray(im, dtype=float) - np.asarray(ref, dtype=float)).mean() < 8


def test_preview_uses_a_downscaled_base_copy_only_when_it_is_big_enough():
    rgb = _gradient(2000, 1000)
    small = np.asarray(Image.fromarray(rgb).resize((800, 400), Image.BILINEAR))
    black = np.zeros_like(small)
    a, aw, ah = photo_preview(rgb, 640, base=small)
    assert (aw, ah) == (640, 320)
    assert np.abs(np.asarray(jpeg(a), float) - np.asarray(jpeg(photo_preview(rgb, 640)[0]), float)).mean() < 4
    # too small a base is ignored: the preview comes from the full image, not from this black copy
    tiny = black[:100, :200]
    b, _, _ = photo_preview(rgb, 640, base=tiny)
    assert np.asarray(jpeg(b)).mean() > 50


def test_fast_downscale_equals_pillow_reduce_also_on_a_crop():
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (1203, 1601, 3), dtype=np.uint8)
    out = np.asarray(_shrink_to(rgb[:1200, :1600], 400, 300), dtype=int)  # a view, factor 4
    ref = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[:1200, :1600])).reduce(4), dtype=int)
    assert out.shape == ref.shape == (300, 400, 3)
    assert np.abs(out - ref).max() <= 1


def test_render_answers_the_preview_and_one_thumbnail_per_box(faces):
    rgb = decode(str(faces / "dlib_faces/_group/bald_guys.jpg"), 10**9).rgb
    boxes = [[100, 100, 200, 200], [0, 0, 30, 50], [1900, 1500, 1986, 1545]]
    out = render(rgb, boxes, 96, 320)
    assert set(out) == {"preview", "preview_width", "preview_height", "thumbnails"}
    assert jpeg(out["preview"]).size == (out["preview_width"], out["preview_height"]) == (320, 249)
    assert [jpeg(t).size for t in out["thumbnails"]] == [(96, 96)] * 3
    assert render(rgb, [], 96, 320)["thumbnails"] == []


# --- settings -------------------------------------------------------------------------------------

def test_thumbnail_settings_defaults_and_overrides():
    s = Settings.from_env({})
    assert (s.thumbnail_size, s.preview_max_side) == (112, 640)
    p = PipelineParams.from_settings(s)
    assert (p.thumbnail_size, p.preview_max_side) == (112, 640)
    s = Settings.from_env({"PHOTO_SORTER_ML_THUMBNAIL_SIZE": "0", "PHOTO_SORTER_ML_PREVIEW_MAX_SIDE": "4096"})
    assert (s.thumbnail_size, s.preview_max_side) == (0, 4096)
    s = Settings.from_env({"PHOTO_SORTER_ML_THUMBNAIL_SIZE": "32", "PHOTO_SORTER_ML_PREVIEW_MAX_SIDE": "64"})
    assert (s.thumbnail_size, s.preview_max_side) == (32, 64)
    assert Settings.from_env({"PHOTO_SORTER_ML_THUMBNAIL_SIZE": "512"}).thumbnail_size == 512


@pytest.mark.parametrize("name,value,needle", [
    ("PHOTO_SORTER_ML_THUMBNAIL_SIZE", "31",
     "PHOTO_SORTER_ML_THUMBNAIL_SIZE must be 0 (off) or between 32 and 512, got 31"),
    ("PHOTO_SORTER_ML_THUMBNAIL_SIZE", "513", "between 32 and 512, got 513"),
    ("PHOTO_SORTER_ML_THUMBNAIL_SIZE", "-1", "between 32 and 512, got -1"),
    ("PHOTO_SORTER_ML_THUMBNAIL_SIZE", "big", "PHOTO_SORTER_ML_THUMBNAIL_SIZE must be an integer, got 'big'"),
    ("PHOTO_SORTER_ML_PREVIEW_MAX_SIDE", "63", "PHOTO_SORTER_ML_PREVIEW_MAX_SIDE must be between 64 and 4096, got 63"),
    ("PHOTO_SORTER_ML_PREVIEW_MAX_SIDE", "4097", "between 64 and 4096, got 4097"),
    ("PHOTO_SORTER_ML_PREVIEW_MAX_SIDE", "0", "between 64 and 4096, got 0"),
])
def test_thumbnail_settings_out_of_range_are_rejected(name, value, needle):
    with pytest.raises(ValueError) as e:
        Settings.from_env({name: value})
    assert needle in str(e.value)


def test_service_does_not_start_with_a_bad_thumbnail_size():
    r = run_service({"PHOTO_SORTER_ML_THUMBNAIL_SIZE": "20"})
    assert r.returncode == 2, r.stderr
    assert "configuration error: PHOTO_SORTER_ML_THUMBNAIL_SIZE must be 0 (off) or between 32 and 512" in r.stderr


# --- in the pipeline ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arcface():
    return load_models("arcface")


def _params(**overrides) -> PipelineParams:
    return PipelineParams.from_settings(Settings(model="arcface", **overrides))


def test_analysis_adds_a_thumbnail_per_face_and_a_preview(faces, arcface):
    r = analyse(str(faces / "dlib_faces/_group/bald_guys.jpg"), models=arcface, params=_params())
    assert r["ok"] and len(r["detections"]) == 24
    assert [jpeg(d["thumbnail"]).size for d in r["detections"]] == [(112, 112)] * 24
    assert jpeg(r["preview"]).size == (r["preview_width"], r["preview_height"]) == (640, 498)
    assert r["timings"]["thumbs_ms"] > 0
    # the same thumbnails as a later render of the same boxes
    rgb = decode(str(faces / "dlib_faces/_group/bald_guys.jpg"), 10**9).rgb
    assert render(rgb, [d["bbox"] for d in r["detections"][:3]])["thumbnails"] == \
        [d["thumbnail"] for d in r["detections"][:3]]


def test_analysis_has_no_thumbnails_or_preview_when_size_is_0(faces, arcface):
    r = analyse(str(faces / OBAMA), models=arcface, params=_params(thumbnail_size=0))
    assert r["ok"] and len(r["detections"]) == 1
    assert "thumbnail" not in r["detections"][0]
    assert not {"preview", "preview_width", "preview_height"} & set(r)
    assert "thumbs_ms" not in r["timings"]


def test_thumbnail_failure_does_not_fail_the_analysis(faces, arcface, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(pipeline, "render", broken)
    with caplog.at_level(logging.ERROR, logger="photo_sorter_ml.pipeline"):
        r = analyse(str(faces / OBAMA), models=arcface, params=_params())
    assert r["ok"] and len(r["detections"]) == 1 and len(r["detections"][0]["embedding"]) == 512 * 4
    assert "thumbnail" not in r["detections"][0] and "preview" not in r
    assert "making thumbnails failed" in caplog.text and "encoder exploded" in caplog.text


def test_render_photo_clips_boxes_and_rejects_boxes_outside(faces):
    path = str(faces / OBAMA)  # 910 x 1137
    params = _params(thumbnail_size=0)  # thumbnails off in analyses: a render still makes 112 px ones
    r = pipeline.render_photo(path, OBAMA, [[-100, -100, 50, 60], [800, 1000, 5000, 5000]], params)
    assert r["ok"] and (r["width"], r["height"]) == (910, 1137)
    assert [jpeg(t).size for t in r["thumbnails"]] == [(112, 112)] * 2
    assert (r["preview_width"], r["preview_height"]) == (512, 640)
    r = pipeline.render_photo(path, OBAMA, [[10, 10, 20, 20], [910, 0, 1000, 50]], params)
    assert not r["ok"] and r["error_kind"] == "bad_box"
    assert r["error"] == "box 1 [910, 0, 1000, 50] lies outside the 910x1137 image"
    r = pipeline.render_photo(str(faces / "nope.jpg"), "nope.jpg", [], params)
    assert not r["ok"] and r["error_kind"] == "missing"
