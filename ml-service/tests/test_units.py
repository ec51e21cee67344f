"""In-process unit tests: config/safety parsing, person cache without a Swift service, dlib's CNN detector."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from typing import AsyncIterator, Callable

import numpy as np
import pytest
from aiohttp import web

from photo_sorter_ml.config import Settings, origin_of
from photo_sorter_ml.models import load_models, unit_rows
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
    assert s.port == 8001 and s.host == "127.0.0.1" and s.model == "arcface" and s.model_dir is None
    assert (s.detect_max_side, s.upsample) == (640, 0) and not hasattr(s, "suggest_threshold")  # the dump's rule
    assert s.workers == (os.cpu_count() or 1) and s.queue_size == 4 * s.workers
    assert s.allowed_roots is None
    assert Settings.from_env({"PHOTO_SORTER_ML_WORKERS": "3"}).queue_size == 12


def test_per_model_defaults_and_overrides():
    d = Settings.from_env({"PHOTO_SORTER_ML_MODEL": "DLIB", "PHOTO_SORTER_ML_DETECTOR": "cnn"})
    assert (d.model, d.detector, d.detect_max_side, d.upsample) == ("dlib", "cnn", 1600, 1)
    a = Settings.from_env({"PHOTO_SORTER_ML_DETECT_MAX_SIDE": "0", "PHOTO_SORTER_ML_UPSAMPLE": "1",
                           "PHOTO_SORTER_ML_MODEL_DIR": "/w"})
    assert (a.model, a.detect_max_side, a.upsample, a.model_dir) == ("arcface", 0, 1, "/w")
    with pytest.raises(ValueError, match="PHOTO_SORTER_ML_MODEL must be one of arcface, dlib"):
        Settings.from_env({"PHOTO_SORTER_ML_MODEL": "hog"})


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


@pytest.mark.parametrize("dim", [512, 128])
def test_person_cache_unreachable_service_is_empty(dim):
    async def go():
        cache = PersonCache("http://127.0.0.1:9", None, dim, refresh_s=0.0, full_refresh_s=60, timeout_s=1)
        await cache.refresh()
        assert cache.look_count == 0 and cache.last_error
        v = np.ones((2, dim), np.float32) / np.sqrt(dim)
        assert cache.suggest(v) == [None, None] and cache.rule is None
        await cache.aclose()
    asyncio.run(go())


def _b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def _entry(person_id: int, representative: np.ndarray, coherence: float = 1.0, face_count: int = 1,
           look_id: int | None = None) -> dict:
    """A look of the Swift service's dump: the person's own (`look_id` = `person_id`) unless `look_id` says
    another."""
    return {"person_id": person_id, "look_id": person_id if look_id is None else look_id,
            "representative_embedding": _b64(representative), "hidden": False, "coherence": coherence,
            "meta": {"face_count": face_count}}


@contextlib.asynccontextmanager
async def _dump_service(answer: Callable[[dict], dict]) -> AsyncIterator[str]:
    """A real HTTP server on a free loopback port that answers `GET /person-dump` with `answer(query)` as JSON;
    yields the service URL to give PersonCache."""
    async def person_dump(request: web.Request) -> web.Response:
        return web.json_response(answer(dict(request.query)))

    app = web.Application()
    app.router.add_get("/person-dump", person_dump)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _cache_of(answer: dict, dim: int) -> PersonCache:
    """A cache that has read `answer` as the whole dump."""
    async def go() -> PersonCache:
        async with _dump_service(lambda query: answer) as url:
            cache = PersonCache(url, None, dim, refresh_s=0.0, full_refresh_s=60)
            await cache.refresh()
            await cache.aclose()
        return cache
    return asyncio.run(go())


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_suggestions_score_a_face_as_the_services_identity_rule_does():
    """cos(face, representative) x coherence is the face's mean similarity to the person's faces, and it joins a
    person of n faces at match_threshold + small_person_margin / sqrt(n): the best person it would join is suggested
    with that score."""
    rng = np.random.default_rng(11)
    centre = rng.normal(size=128)
    big = [_unit(centre + rng.normal(scale=0.9, size=128)) for _ in range(9)]  # one person's nine faces
    total = np.sum(big, axis=0, dtype=np.float64)
    face = _unit(centre + rng.normal(scale=0.9, size=128))
    mean_similarity = float(np.mean([face @ f for f in big]))
    rule = {"match_threshold": mean_similarity - 0.02, "small_person_margin": 0.05}
    # The same representative as a one-face person needs margin / sqrt(1) more: the face does not reach it.
    answer = {"persons": [_entry(7, total, float(np.linalg.norm(total)) / 9, 9),
                          _entry(8, total, float(np.linalg.norm(total)) / 9, 1)],
              "next_since_id": 8, "has_more": False, "identity_rule": rule}
    cache = _cache_of(answer, 128)
    assert cache.rule is not None and cache.status()["identity_rule"] == rule
    (pid, score), = cache.suggest(face[None, :])
    assert pid == 7 and abs(score - mean_similarity) < 1e-5  # not its cosine to the representative
    assert score < float(face @ _unit(total))
    # A margin that a nine-face person does not make up for: no suggestion.
    answer["identity_rule"] = {"match_threshold": mean_similarity - 0.02, "small_person_margin": 0.07}
    assert _cache_of(answer, 128).suggest(face[None, :]) == [None]


def test_the_best_mean_similarity_wins_not_the_best_cosine():
    """A face closest in direction to a spread-out person (low coherence) goes to a tight person it resembles more
    on average."""
    rng = np.random.default_rng(12)
    loose, tight = _unit(rng.normal(size=512)), _unit(rng.normal(size=512))
    face = _unit(0.75 * loose + 0.65 * tight)
    assert face @ loose > face @ tight
    answer = {"persons": [_entry(1, loose, 0.4, 20), _entry(2, tight, 0.95, 20)], "next_since_id": 2,
              "has_more": False, "identity_rule": {"match_threshold": 0.3, "small_person_margin": 0}}
    (pid, score), = _cache_of(answer, 512).suggest(face[None, :])
    assert pid == 2 and abs(score - 0.95 * float(face @ tight)) < 1e-5


def test_no_suggestion_before_the_dump_gives_a_rule_or_for_a_person_without_coherence():
    rng = np.random.default_rng(13)
    v = _unit(rng.normal(size=512))
    unruled = _cache_of({"persons": [_entry(1, v)], "next_since_id": 1, "has_more": False}, 512)
    assert unruled.look_count == 1 and unruled.rule is None and unruled.status()["identity_rule"] is None
    assert unruled.suggest(v[None, :]) == [None]
    rule = {"match_threshold": 0.3, "small_person_margin": 0}
    without = {k: x for k, x in _entry(2, v).items() if k != "coherence"}
    cache = _cache_of({"persons": [without, _entry(3, v, coherence=1.5)], "next_since_id": 3, "has_more": False,
                       "identity_rule": rule}, 512)
    assert cache.look_count == 0 and cache.suggest(v[None, :]) == [None]


def test_person_cache_keeps_only_the_models_dimension():
    """A 512-d cache (ArcFace) suggests from 512-d representatives and skips 128-d ones (another model's)."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=512), rng.normal(size=512)
    persons = [_entry(1, a), _entry(2, b), _entry(3, rng.normal(size=128))]

    answer = {"persons": persons, "next_since_id": 3, "has_more": False,
              "identity_rule": {"match_threshold": 0.45, "small_person_margin": 0}}
    cache = _cache_of(answer, 512)
    assert cache.look_count == 2
    queries = np.stack([a / np.linalg.norm(a), -b / np.linalg.norm(b)]).astype(np.float32)
    (pid, sim), none = cache.suggest(queries)
    assert pid == 1 and abs(sim - 1) < 1e-5 and none is None


def test_decode_embedding_rejects_bad_input():
    for dim in (128, 512):
        v = np.arange(dim, dtype="<f4") + 1
        out = decode_embedding(_b64(v), dim)
        assert out is not None and out.shape == (dim,) and abs(np.linalg.norm(out) - 1) < 1e-6
    assert decode_embedding(_b64(np.ones(128)), 512) is None  # another model's length
    assert decode_embedding("!!!", 128) is None
    assert decode_embedding(base64.b64encode(b"\0" * 512).decode(), 128) is None  # zero vector
    assert decode_embedding(base64.b64encode(b"\1" * 12).decode(), 128) is None  # wrong length
    assert decode_embedding(_b64(np.ones(128)), 128, "f64") is None  # unknown encoding


def test_decode_embedding_reads_float16_within_a_thousandth():
    rng = np.random.default_rng(3)
    v = rng.normal(size=512).astype(np.float32)
    v /= np.linalg.norm(v)
    half = base64.b64encode(v.astype("<f2").tobytes()).decode()
    out = decode_embedding(half, 512, "f16")
    assert out is not None and out.dtype == np.float32 and float(out @ v) > 0.9999
    assert decode_embedding(half, 512) is None  # f16 bytes are not 512 float32s


def test_cnn_detector_finds_lfw_face(faces):
    from PIL import Image

    models = load_models("dlib", "cnn")
    assert models.version == "dlib-resnet-v1+cnn-5pt"
    path = sorted((faces / "lfw_small/Tom_Hanks").glob("*.jpg"))[0]
    img = np.asarray(Image.open(path).convert("RGB"))
    dets = models.detector.detect(img, 0)
    assert len(dets) >= 1 and dets[0].confidence > 0
    vec = unit_rows(models.embedder.embed(img, dets[:1]))[0]
    assert vec.shape == (1, 128) and abs(np.linalg.norm(vec[0]) - 1) < 1e-5


def test_person_cache_applies_changes_since_its_sequence_and_lists_again_after_a_reset():
    """After one listing the cache asks only for changes (since_seq + epoch): a changed representative replaces the
    old one, a removed (merged) person leaves; a `reset` answer (the service reloaded) lists everything again."""
    rng = np.random.default_rng(5)
    a, b, b2, c = (rng.normal(size=512) for _ in range(4))
    requests: list[dict] = []
    answers = {
        "listing": {"persons": [_entry(1, a), _entry(2, b)],
                    "next_since_id": 2, "has_more": False, "epoch": "e1", "seq": 5},
        "changes": {"persons": [_entry(2, b2)], "removed": [1],
                    "next_since_id": 0, "has_more": False, "epoch": "e1", "seq": 7, "reset": False},
        "reset": {"persons": [], "removed": [], "next_since_id": 0, "has_more": False, "epoch": "e2", "seq": 0, "reset": True},
        "relisting": {"persons": [_entry(3, c)],
                      "next_since_id": 3, "has_more": False, "epoch": "e2", "seq": 1},
    }
    for answer in answers.values():
        answer["identity_rule"] = {"match_threshold": 0.5, "small_person_margin": 0}
    script = ["listing", "changes", "reset", "relisting"]

    def dump(query: dict) -> dict:
        requests.append(query)
        return answers[script[len(requests) - 1]]

    def unit(v):
        return (v / np.linalg.norm(v)).astype(np.float32)

    async def go():
        async with _dump_service(dump) as url:
            await check(PersonCache(url, None, 512, refresh_s=0.0, full_refresh_s=3600))

    async def check(cache: PersonCache):
        await cache.refresh()
        assert cache.look_count == 2 and cache.status()["epoch"] == "e1" and cache.status()["seq"] == 5
        await cache.refresh()
        assert requests[1] == {"since_seq": "5", "epoch": "e1", "limit": "5000", "encoding": "f16"}
        assert cache.look_count == 1
        (pid, sim), = cache.suggest(unit(b2)[None, :])
        assert pid == 2 and sim > 0.999
        await cache.refresh()  # reset: the service reloaded, so the cache lists everything again at once
        assert requests[3]["since_id"] == "0"
        assert cache.look_count == 1 and cache.status()["epoch"] == "e2"
        (pid, _), = cache.suggest(unit(c)[None, :])
        assert pid == 3
        await cache.aclose()
    asyncio.run(go())


RULE = {"match_threshold": 0.5, "small_person_margin": 0}


def test_a_face_near_a_persons_second_look_is_suggested_that_person():
    """A person with two looks (its own and one merged into it): a face that joins only the second look is
    suggested the owning person, with its mean similarity to that look; the cache counts one person, two looks."""
    rng = np.random.default_rng(21)
    own, merged = _unit(rng.normal(size=512)), _unit(rng.normal(size=512))
    answer = {"persons": [_entry(1, own, 0.9, 10), _entry(1, merged, 0.8, 4, look_id=2)], "next_since_id": 2,
              "has_more": False, "identity_rule": RULE}
    cache = _cache_of(answer, 512)
    assert (cache.status()["persons"], cache.status()["looks"]) == (1, 2)
    (pid, score), (own_pid, _) = cache.suggest(np.stack([merged, own]))
    assert pid == own_pid == 1 and abs(score - 0.8) < 1e-5


def test_an_entry_without_look_id_is_its_persons_only_look():
    """An older service's entry (no `look_id`) is the person's own look, kept and suggested as before."""
    rng = np.random.default_rng(22)
    v = _unit(rng.normal(size=512))
    old = {k: x for k, x in _entry(5, v).items() if k != "look_id"}
    cache = _cache_of({"persons": [old], "next_since_id": 5, "has_more": False, "identity_rule": RULE}, 512)
    assert cache._looks.keys() == {5} and cache.status()["persons"] == 1
    (pid, score), = cache.suggest(v[None, :])
    assert pid == 5 and score > 0.999


@contextlib.asynccontextmanager
async def _changes_cache(answers: list[dict]) -> AsyncIterator[tuple[PersonCache, list[dict]]]:
    """A cache that reads `answers` one refresh each (the first a listing, the next changes) and the query of each."""
    requests: list[dict] = []

    def dump(query: dict) -> dict:
        requests.append(query)
        return {"has_more": False, "identity_rule": RULE, "epoch": "e1", **answers[len(requests) - 1]}

    async with _dump_service(dump) as url:
        cache = PersonCache(url, None, 512, refresh_s=0.0, full_refresh_s=3600)
        yield cache, requests
        await cache.aclose()


def test_a_look_relisted_with_a_new_owner_moves_its_suggestion_to_that_owner():
    """A merge of B into A comes as a change re-listing look B with person_id A: a face of B is then suggested A,
    and B's own person is gone from the cache."""
    rng = np.random.default_rng(23)
    a, b = _unit(rng.normal(size=512)), _unit(rng.normal(size=512))
    answers = [
        {"persons": [_entry(1, a), _entry(2, b)], "next_since_id": 2, "seq": 5},
        {"persons": [_entry(1, b, look_id=2)], "removed": [], "seq": 6, "reset": False},
    ]

    async def go():
        async with _changes_cache(answers) as (cache, requests):
            await cache.refresh()
            assert cache.suggest(b[None, :])[0][0] == 2
            await cache.refresh()
            assert requests[1]["since_seq"] == "5"
            assert [pid for pid, _ in cache.suggest(np.stack([b, a]))] == [1, 1]  # A keeps its own look too
            assert (cache.status()["persons"], cache.status()["looks"]) == (1, 2)
    asyncio.run(go())


def test_a_removed_look_id_drops_that_look_not_its_person():
    """`removed` names looks: the removed look suggests nothing any more, the same person's other look still
    suggests it."""
    rng = np.random.default_rng(24)
    own, merged = _unit(rng.normal(size=512)), _unit(rng.normal(size=512))
    answers = [
        {"persons": [_entry(1, own), _entry(1, merged, look_id=2)], "next_since_id": 2, "seq": 5},
        {"persons": [], "removed": [2], "seq": 6, "reset": False},
    ]

    async def go():
        async with _changes_cache(answers) as (cache, _):
            await cache.refresh()
            await cache.refresh()
            assert cache.suggest(merged[None, :]) == [None]
            (pid, _), = cache.suggest(own[None, :])
            assert pid == 1 and (cache.status()["persons"], cache.status()["looks"]) == (1, 1)
    asyncio.run(go())


def test_analyse_fails_a_file_rewritten_while_it_is_decoded_and_analyses_it_once_it_is_still(faces, tmp_path):
    """A photo rewritten in place (same size, new mtime) while it is decoded is a "changed" failure, never a
    result made of two versions; once nothing writes to it, the same file is analysed."""
    import io
    import threading

    from PIL import Image

    from photo_sorter_ml.pipeline import PipelineParams, analyse

    big = Image.open(faces / "face_recognition_examples/obama/obama.jpg").convert("RGB").resize((5000, 6250))
    versions = []
    for quality in (92, 85):
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=quality)
        versions.append(buf.getvalue())
    size = max(map(len, versions))
    versions = [v + b"\0" * (size - len(v)) for v in versions]  # bytes after EOI do not matter to a decoder
    path = tmp_path / "photo.jpg"
    path.write_bytes(versions[0])
    params = PipelineParams.from_settings(Settings.from_env({}))
    models = params.load_models()
    stop = threading.Event()

    def rewrite():
        i = 0
        while not stop.is_set():
            i += 1
            with open(path, "r+b") as f:
                f.write(versions[i % 2])

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        result = analyse(str(path), "photo.jpg", models, params)
    finally:
        stop.set()
        writer.join()
    assert result["ok"] is False and result["error_kind"] == "changed", result
    assert result["error"].startswith("file changed while being analysed") and "photo.jpg" in result["error"]
    still = analyse(str(path), "photo.jpg", models, params)
    assert still["ok"] is True and len(still["detections"]) == 1
