"""In-process unit tests: config/safety parsing, person cache without a Swift service, CNN detector."""
from __future__ import annotations

import asyncio
import base64
import os

import numpy as np
import pytest

from photo_sorter_ml.config import Settings, origin_of
from photo_sorter_ml.persons import PersonCache, decode_embedding
from photo_sorter_ml.security import CallbackPolicy, PathPolicy


def test_origins_and_allowlist():
    assert origin_of("http://127.0.0.1:8080/callback/x?y=1") == "http://127.0.0.1:8080"
    assert origin_of("HTTP://LocalHost/cb") == "http://localhost:80"
    assert origin_of("https://a.example/cb") == "https://a.example:443"
    assert origin_of("ftp://x/y") is None and origin_of("not a url") is None
    s = Settings.from_env({"PHOTO_SORTER_SERVICE_URL": "http://127.0.0.1:8080"})
    policy = CallbackPolicy(s.callback_allowlist)
    assert policy.allowed("http://127.0.0.1:8080/callback/photo-processed")
    assert not policy.allowed("http://localhost:8080/callback/photo-processed")
    assert not policy.allowed("http://127.0.0.1:8081/cb")
    s = Settings.from_env({"PHOTO_SORTER_CALLBACK_ALLOWLIST": "http://localhost:9000, http://10.0.0.1:80"})
    assert CallbackPolicy(s.callback_allowlist).allowed("http://localhost:9000/cb")
    with pytest.raises(ValueError):
        Settings.from_env({"PHOTO_SORTER_ML_WORKERS": "zero"})


def test_settings_defaults():
    s = Settings.from_env({})
    assert s.port == 8001 and s.host == "127.0.0.1" and s.detector == "hog" and s.upsample == 1
    assert s.workers == (os.cpu_count() or 1) and s.queue_size == 4 * s.workers
    assert s.allowed_roots is None and s.suggest_threshold == 0.92
    assert Settings.from_env({"PHOTO_SORTER_ML_WORKERS": "3"}).queue_size == 12


def test_path_policy(tmp_path):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"x")
    (root / "link").symlink_to("/etc")
    p = PathPolicy([str(root)])
    assert p.resolve(str(root / "a" / "x.jpg")) == os.path.realpath(root / "a" / "x.jpg")
    assert p.resolve(str(root / "a" / ".." / ".." / "other.jpg")) is None
    assert p.resolve(str(root / "link" / "passwd")) is None
    assert p.resolve(str(tmp_path / "photos-evil" / "x.jpg")) is None  # prefix is not a parent
    assert p.resolve("") is None and p.resolve("a\x00b") is None
    assert PathPolicy(None).resolve("/etc/passwd") == "/etc/passwd"


def test_person_cache_unreachable_service_is_empty():
    async def go():
        cache = PersonCache("http://127.0.0.1:9", None, refresh_s=0.0, full_refresh_s=60, timeout_s=1)
        await cache.refresh()
        assert cache.size == 0 and cache.last_error
        v = np.ones((2, 128), np.float32) / np.sqrt(128)
        assert cache.suggest(v, 0.92) == [None, None]
        await cache.aclose()
    asyncio.run(go())


def test_decode_embedding_rejects_bad_input():
    v = np.arange(128, dtype="<f4") + 1
    out = decode_embedding(base64.b64encode(v.tobytes()).decode())
    assert out is not None and abs(np.linalg.norm(out) - 1) < 1e-6
    assert decode_embedding("!!!") is None
    assert decode_embedding(base64.b64encode(b"\0" * 512).decode()) is None  # zero vector
    assert decode_embedding(base64.b64encode(b"\1" * 12).decode()) is None  # wrong length


def test_cnn_detector_finds_lfw_face(faces):
    from PIL import Image

    from photo_sorter_ml.models.dlib_models import CnnDetector, ResnetEmbedder

    path = sorted((faces / "lfw_small/Tom_Hanks").glob("*.jpg"))[0]
    img = np.asarray(Image.open(path).convert("RGB"))
    dets = CnnDetector().detect(img, 0)
    assert len(dets) >= 1 and dets[0].confidence > 0
    vec = ResnetEmbedder().embed(img, dets[:1])
    assert vec.shape == (1, 128) and abs(np.linalg.norm(vec[0]) - 1) < 1e-5
