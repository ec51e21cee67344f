"""Unsure faces, end to end through the real ML service and the real Swift service with the default model (ArcFace).

The ML service sends each face's `embedding_norm`: the length of the ArcFace embedding before L2 normalisation. A
face whose norm is below 15 is *unsure* (too small, blurred or turned away to recognise). Such a face is stored and
drawn on its photo, and it joins a person it matches by the normal identity rule, but it never starts a person: when
it matches no one it stays *unsorted* — no `person_id` in `GET /photo/{id}` or `GET /faces/{id}`, in no person's
counts, not in its photo's `person_ids`, and no person exists for it. A user can place it by hand
(`POST /faces/move`), but cannot reject it (`POST /faces/{id}/reject` answers 409: it is in no person to be taken out
of); the review queue asks about an unsorted face whose runner-up (a person within 0.10 below the threshold) it
nearly joined.

These tests prove it on real photos whose norms the ML service measures during the test (`POST
/embeddings/from-image`; the norms recorded offline are in bench/out/embeddings-arcface-family.json):

- LFW photos with a small background face below the floor (Vladimir_Putin_0005 14.57, Halle_Berry_0006 14.24,
  Naji_Sabri_0008 14.09, Paul_Burrell_0007 14.07), sorted with two more photos of each of those people, whose main
  faces form persons while the background faces match no one;
- CFP profiles: Caroline Wozniacki's profile_04 (11.28), sorted with her whole cfp_dev folder; Evo Morales' profile_04
  (14.88), which resembles his frontal photos (mean similarity 0.41 to frontal_01/02/03/09) and so joins him; Derrick
  Rose's profile_02 (14.26), which resembles his frontal photos only as a runner-up does (0.28 to frontal_01/02/03/06,
  under the joining threshold 0.32), and so stays unsorted with him as its runner-up.

The last test checks how an unsorted face is sent on the wire: `person_id` present and null, as the API document
(`GET /openapi.json`) must then allow.

Photos come from ../shared/testdata (36 in all), copied into temporary folders at test time.
Run: ml-service/.venv/bin/python -m pytest -q e2e/test_unsure_faces.py
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LFW = harness.faces_dir() / "lfw_small"
CFP = harness.REPO.parent / "shared" / "testdata" / "hard_faces" / "cfp_dev"
UNSURE_BELOW = 15.0  # FaceModel.arcface.unsureBelowNorm
MATCH_THRESHOLD = 0.32  # ArcFace's joining threshold
REVIEW_WINDOW = 0.10  # a runner-up is a person within this much below the threshold

# LFW: the photo with an unsure background face (its box as the ML service finds it), and two more photos of the
# photo's person, each showing that person's face alone.
UNSURE_BACKGROUND = {
    "Vladimir_Putin": ("Vladimir_Putin_0005.jpg", (60, 48, 80, 77), ("Vladimir_Putin_0001.jpg", "Vladimir_Putin_0002.jpg")),
    "Halle_Berry": ("Halle_Berry_0006.jpg", (162, 23, 238, 134), ("Halle_Berry_0001.jpg", "Halle_Berry_0002.jpg")),
    "Naji_Sabri": ("Naji_Sabri_0008.jpg", (18, 0, 110, 91), ("Naji_Sabri_0001.jpg", "Naji_Sabri_0004.jpg")),
    "Paul_Burrell": ("Paul_Burrell_0007.jpg", (34, 13, 88, 72), ("Paul_Burrell_0001.jpg", "Paul_Burrell_0003.jpg")),
}
CAROLINE = "088_Caroline_Wozniacki"
JOINS = ("158_Evo_Morales", ("frontal_01.jpg", "frontal_02.jpg", "frontal_03.jpg", "frontal_09.jpg"), "profile_04.jpg")
RUNNER_UP = ("130_Derrick_Rose", ("frontal_01.jpg", "frontal_02.jpg", "frontal_03.jpg", "frontal_06.jpg"), "profile_02.jpg")

pytestmark = pytest.mark.skipif(not (LFW.is_dir() and CFP.is_dir()), reason=f"test photos not found at {LFW} / {CFP}")


# ------------------------------------------------------------------ helpers

def _copy(src: Path, names, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)


def _secret(stack) -> dict:
    return {"X-Photo-Sorter-Secret": stack.secret}


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _ml_norms(stack, path: Path) -> list[tuple[tuple, float]]:
    """[(bbox, embedding_norm)] of every face the live ML service finds in `path` (POST /embeddings/from-image)."""
    analysis = harness.http_json("POST", stack.ml_url + "/embeddings/from-image", {"path": str(Path(path).resolve())},
                                 headers=_secret(stack), timeout=120)
    out = []
    for d in analysis["detections"]:
        assert d.get("embedding_norm") is not None, f"the ML service sent no embedding_norm for a face of {path}: {d}"
        out.append((tuple(d["bbox"]), float(d["embedding_norm"])))
    return out


def _face_at(detections: list[dict], bbox) -> dict:
    """The detection whose box is `bbox` (the best overlap, at least 0.8)."""
    best = max(detections, key=lambda d: _iou(d["bbox"], bbox), default=None)
    assert best is not None and _iou(best["bbox"], bbox) >= 0.8, f"no face at {bbox} among {detections}"
    return best


def _norm_of(norms: list[tuple[tuple, float]], bbox) -> float:
    best = max(norms, key=lambda n: _iou(n[0], bbox))
    assert _iou(best[0], bbox) >= 0.8, f"the ML service found no face at {bbox}: {norms}"
    return best[1]


def _photos(stack) -> dict:
    """File name -> GET /photo/{id}, for every photo of the library."""
    return {Path(p["path"]).name: stack.get(f"/photo/{p['photo_id']}") for p in harness.all_photos(stack.base)}


def _persons(stack) -> tuple[int, dict]:
    """(total, {person id: person}) of GET /persons?min_photos=1: everyone."""
    page = stack.get("/persons?min_photos=1&limit=1000")
    return page["total"], {p["person_id"]: p for p in page["persons"]}


def _sorted(stack, folder: Path, count: int) -> None:
    status = stack.wait_job(stack.ingest(folder), timeout=600)
    assert status["processed"] == count and status["failed"] == 0, status


def _assert_no_person_without_a_sure_face(photos: dict, norms: dict, persons: dict) -> None:
    """Every person holds a face with a norm at or above the floor (only such a face starts a person), and every face
    without a person is unsure."""
    sure_persons = set()
    for name, photo in photos.items():
        for d in photo["detections"]:
            norm = _norm_of(norms[name], d["bbox"])
            if d.get("person_id") is None:
                assert norm < UNSURE_BELOW, f"{name}: face {d['embedding_id']} (norm {norm:.4f}, sure) has no person: {d}"
            elif norm >= UNSURE_BELOW:
                sure_persons.add(d["person_id"])
    started_by_unsure = set(persons) - sure_persons
    assert not started_by_unsure, f"persons {sorted(started_by_unsure)} hold only unsure faces (norm < {UNSURE_BELOW})"


# ------------------------------------------------------------------ LFW: background faces

@pytest.fixture(scope="module")
def lfw_library(tmp_path_factory):
    """The LFW photos sorted through a real stack; yields (stack, what it showed right after sorting)."""
    folder = tmp_path_factory.mktemp("unsure-lfw") / "photos"
    count = 0
    for person, (photo, _, others) in UNSURE_BACKGROUND.items():
        _copy(LFW / person, (photo, *others), folder / person)
        count += 1 + len(others)
    stack = harness.Stack(tmp_path_factory.mktemp("unsure-lfw-stack"), allowed_roots=[folder])
    try:
        _sorted(stack, folder, count)
        photos = _photos(stack)
        norms = {name: _ml_norms(stack, photo["path"]) for name, photo in photos.items()}
        total, persons = _persons(stack)
        yield stack, {"photos": photos, "norms": norms, "total": total, "persons": persons}
    finally:
        stack.stop()


def test_a_small_background_face_is_drawn_but_starts_no_person(lfw_library):
    _, seen = lfw_library
    photos, norms, persons = seen["photos"], seen["norms"], seen["persons"]
    unsorted = {}
    for person, (photo_name, bbox, others) in UNSURE_BACKGROUND.items():
        photo = photos[photo_name]
        norm = _norm_of(norms[photo_name], bbox)
        print(f"\n{photo_name}: background face {bbox} embedding_norm {norm:.4f}")
        assert norm < UNSURE_BELOW, f"{photo_name}: the background face is not unsure (norm {norm:.4f})"

        # Drawn on its photo (stored with its box), in no person.
        face = _face_at(photo["detections"], bbox)
        assert face.get("person_id") is None, f"{photo_name}: the unsure background face got a person: {face}"
        unsorted[face["embedding_id"]] = photo_name
        view = lfw_library[0].get(f"/faces/{face['embedding_id']}")
        assert view.get("person_id") is None and view["photo_id"] == photo["photo_id"], view

        # The main faces of this person's photos form one person, which the photo lists.
        mains = {name: harness.labelled_detection(photos[name], photos[name]["path"]) for name in (photo_name, *others)}
        main_persons = {d.get("person_id") for d in mains.values()}
        assert len(main_persons) == 1 and None not in main_persons, f"{person}'s main faces: {mains}"
        assert main_persons <= set(photo["person_ids"]), photo

    # Every photo lists exactly the persons of its faces that have one.
    for name, photo in photos.items():
        with_person = [d["person_id"] for d in photo["detections"] if d.get("person_id") is not None]
        assert None not in photo["person_ids"], photo
        assert sorted(photo["person_ids"]) == sorted(set(with_person)), f"{name}: person_ids {photo['person_ids']} " \
                                                                        f"but its faces are in {with_person}"

    # No person exists for the unsorted faces: everyone listed is a person of some face, and is counted without them.
    distinct = {d["person_id"] for p in photos.values() for d in p["detections"] if d.get("person_id") is not None}
    assert seen["total"] == len(distinct) and set(persons) == distinct, (seen["total"], sorted(persons), sorted(distinct))
    for pid, person in persons.items():
        faces = [d for p in photos.values() for d in p["detections"] if d.get("person_id") == pid]
        in_photos = {p["photo_id"] for p in photos.values() if pid in p["person_ids"]}
        assert (person["face_count"], person["photo_count"]) == (len(faces), len(in_photos)), (person, faces)
    _assert_no_person_without_a_sure_face(photos, norms, persons)
    assert len(unsorted) == len(UNSURE_BACKGROUND)


def test_an_unsorted_face_can_be_placed_by_hand_and_not_rejected(lfw_library):
    stack, seen = lfw_library
    photos = seen["photos"]
    photo_name, bbox, _ = UNSURE_BACKGROUND["Vladimir_Putin"]
    face_id = _face_at(photos[photo_name]["detections"], bbox)["embedding_id"]
    assert stack.get(f"/faces/{face_id}").get("person_id") is None
    # A person the photo does not show yet: Halle Berry's.
    halle = harness.labelled_detection(photos["Halle_Berry_0001.jpg"], photos["Halle_Berry_0001.jpg"]["path"])["person_id"]
    total_before, persons_before = _persons(stack)

    # Rejected: 409 with a reason, and nothing changes.
    with pytest.raises(harness.HTTPError) as refused:
        stack.post(f"/faces/{face_id}/reject", None, headers=_secret(stack))
    assert refused.value.status == 409, refused.value
    reason = json.loads(refused.value.body).get("reason") or ""
    assert "unsorted" in reason, refused.value.body
    assert stack.get(f"/faces/{face_id}").get("person_id") is None
    assert _persons(stack) == (total_before, persons_before), "a refused reject changed the persons"

    # Moved to a person: it is in that person now, and counts there.
    moved = stack.post("/faces/move", {"face_ids": [face_id], "to_person_id": halle}, headers=_secret(stack))
    assert moved["person_id"] == halle and moved["created_person"] is False and moved["face_ids"] == [face_id], moved
    assert stack.get(f"/faces/{face_id}")["person_id"] == halle
    total_after, persons_after = _persons(stack)
    assert total_after == total_before and set(persons_after) == set(persons_before), "the move created or removed a person"
    before, after = persons_before[halle], persons_after[halle]
    assert after["face_count"] == before["face_count"] + 1, (before, after)
    assert after["photo_count"] == before["photo_count"] + 1, (before, after)
    photo = stack.get(f"/photo/{photos[photo_name]['photo_id']}")
    assert _face_at(photo["detections"], bbox)["person_id"] == halle and halle in photo["person_ids"], photo


# ------------------------------------------------------------------ CFP: profiles

def test_an_unsure_profile_joins_its_person_or_stays_unsorted_never_a_new_person(tmp_path):
    names = sorted(p.name for p in (CFP / CAROLINE).iterdir() if p.suffix.lower() == ".jpg")
    assert len(names) == 14 and "profile_04.jpg" in names, names
    folder = tmp_path / "photos" / CAROLINE
    _copy(CFP / CAROLINE, names, folder)
    stack = harness.Stack(tmp_path / "stack", allowed_roots=[tmp_path / "photos"])
    try:
        _sorted(stack, folder, len(names))
        photos = _photos(stack)
        norms = {name: _ml_norms(stack, photo["path"]) for name, photo in photos.items()}
        total, persons = _persons(stack)
    finally:
        stack.stop()

    profile = photos["profile_04.jpg"]
    assert len(profile["detections"]) == 1 and len(norms["profile_04.jpg"]) == 1, profile
    face, norm = profile["detections"][0], norms["profile_04.jpg"][0][1]
    print(f"\n{CAROLINE}/profile_04.jpg: embedding_norm {norm:.4f}, person {face.get('person_id')}")
    assert norm < UNSURE_BELOW, f"profile_04 is not unsure (norm {norm:.4f})"

    others = {d["person_id"] for name, p in photos.items() if name != "profile_04.jpg"
              for d in p["detections"] if d.get("person_id") is not None}
    frontal = {d["person_id"] for name, p in photos.items() if name.startswith("frontal_")
               for d in p["detections"] if d.get("person_id") is not None}
    assert frontal, "her frontal photos are in no person"
    if face.get("person_id") is None:
        assert profile["person_ids"] == [], profile
    else:
        assert face["person_id"] in others, f"profile_04 is a person of its own ({face}); her other photos are in {others}"
    # No person is started by the unsure profile: the persons are those of her other photos, each holding a sure face.
    assert set(persons) == others and total == len(others), (sorted(persons), sorted(others), total)
    _assert_no_person_without_a_sure_face(photos, norms, persons)


@pytest.fixture(scope="module")
def profiles_after_frontals(tmp_path_factory):
    """Evo Morales' and Derrick Rose's frontal photos sorted first (a person each), then one unsure profile of each."""
    root = tmp_path_factory.mktemp("unsure-cfp")
    frontals, profiles = root / "photos" / "frontals", root / "photos" / "profiles"
    for ident, frontal, profile in (JOINS, RUNNER_UP):
        _copy(CFP / ident, frontal, frontals / ident)
        _copy(CFP / ident, (profile,), profiles / ident)
    stack = harness.Stack(root / "stack", allowed_roots=[root / "photos"])
    try:
        _sorted(stack, frontals, len(JOINS[1]) + len(RUNNER_UP[1]))
        person_of = {}
        for ident, frontal, _ in (JOINS, RUNNER_UP):
            found = {d.get("person_id") for p in harness.all_photos(stack.base) if Path(p["path"]).parent.name == ident
                     for d in stack.get(f"/photo/{p['photo_id']}")["detections"]}
            assert len(found) == 1 and None not in found, f"{ident}'s frontal photos {frontal} are not one person: {found}"
            person_of[ident] = found.pop()
        _, persons_before = _persons(stack)
        status = stack.wait_job(stack.ingest(profiles), timeout=600)
        assert status["processed"] == 2 and status["failed"] == 0, status
        profile_photos = {Path(p["path"]).parent.name: stack.get(f"/photo/{p['photo_id']}")
                          for p in harness.all_photos(stack.base) if profiles.name in Path(p["path"]).parts}
        yield stack, person_of, persons_before, profile_photos
    finally:
        stack.stop()


def _unsure_profile(stack, photos: dict, case) -> tuple[dict, dict]:
    """The case's profile photo and its one face, checked unsure by the norm the ML service sends."""
    ident, _, profile_name = case
    photo = photos[ident]
    (bbox, norm), = _ml_norms(stack, photo["path"])
    print(f"\n{ident}/{profile_name}: embedding_norm {norm:.4f}")
    assert norm < UNSURE_BELOW, f"{profile_name} is not unsure (norm {norm:.4f})"
    return photo, _face_at(photo["detections"], bbox)


def test_an_unsure_face_that_matches_a_person_joins_it(profiles_after_frontals):
    stack, person_of, persons_before, photos = profiles_after_frontals
    ident = JOINS[0]
    photo, face = _unsure_profile(stack, photos, JOINS)
    evo = person_of[ident]
    assert face.get("person_id") == evo, f"the unsure profile did not join {ident}'s person {evo}: {face}"
    assert face["similarity"] >= MATCH_THRESHOLD and photo["person_ids"] == [evo], photo
    total, persons = _persons(stack)
    assert set(persons) == set(persons_before), "the profiles started a person"
    assert persons[evo]["face_count"] == persons_before[evo]["face_count"] + 1, (persons_before[evo], persons[evo])


def test_an_unsorted_face_near_a_person_is_asked_about_in_review_and_no_keeps_it_unsorted(profiles_after_frontals):
    stack, person_of, persons_before, photos = profiles_after_frontals
    ident = RUNNER_UP[0]
    photo, face = _unsure_profile(stack, photos, RUNNER_UP)
    face_id = face["embedding_id"]
    derrick = person_of[ident]

    # Unsorted, with his person as its runner-up: nearly joined, below the threshold.
    view = stack.get(f"/faces/{face_id}")
    assert view.get("person_id") is None and photo["person_ids"] == [], (view, photo)
    assert view.get("runner_up_person_id") == derrick, view
    assert MATCH_THRESHOLD - REVIEW_WINDOW <= view["runner_up_similarity"] < MATCH_THRESHOLD, view

    # The review queue asks whether it is the runner-up.
    items = [i for i in stack.get("/review?limit=500")["faces"] if i["face_id"] == face_id]
    assert len(items) == 1, f"face {face_id} is not in the review queue"
    assert items[0].get("person_id") is None and items[0]["question"] == {"kind": "runner_up", "person_id": derrick}, items

    # "No": recorded as not that person; the face stays unsorted, no person is made, and it is not asked again.
    answer = stack.post(f"/faces/{face_id}/reject", {"person_id": derrick}, headers=_secret(stack))
    assert answer["rejected_person_id"] == derrick and answer.get("person_id") is None, answer
    assert answer["created_person"] is False, answer
    assert stack.get(f"/faces/{face_id}").get("person_id") is None
    assert face_id not in {i["face_id"] for i in stack.get("/review?limit=500")["faces"]}
    _, persons = _persons(stack)
    assert set(persons) == set(persons_before), "answering the review made a person"


# ------------------------------------------------------------------ the wire

def test_an_unsorted_face_is_sent_with_person_id_null_as_the_api_document_allows(lfw_library):
    stack, seen = lfw_library
    photo_name, bbox, _ = UNSURE_BACKGROUND["Halle_Berry"]  # the earlier test moves Putin's, not this one
    photo = stack.get(f"/photo/{seen['photos'][photo_name]['photo_id']}")
    detection = _face_at(photo["detections"], bbox)
    face = stack.get(f"/faces/{detection['embedding_id']}")
    problems = []
    if "person_id" not in detection or detection["person_id"] is not None:
        problems.append(f"GET /photo/{photo['photo_id']}: the unsorted detection is {detection}")
    if "person_id" not in face or face["person_id"] is not None:
        problems.append(f"GET /faces/{detection['embedding_id']}: {face}")
    # The document must allow it: GET /faces/{id} (and the review queue's items, which extend it), the photo's
    # detections, and a reject's answer for a face that stays unsorted.
    schemas = stack.get("/openapi.json")["components"]["schemas"]
    for name in ("DetectionView", "FaceView", "RejectResult"):
        declared = schemas[name]["properties"]["person_id"]
        types = declared["type"] if isinstance(declared.get("type"), list) else [declared.get("type")]
        if "null" not in types:
            required = "person_id" in (schemas[name].get("required") or [])
            problems.append(f"GET /openapi.json: {name}.person_id is {declared}{' (required)' if required else ''}: "
                            f"null does not fit")
    assert not problems, "an unsorted face must be sent as \"person_id\": null:\n" + "\n".join(problems)


# ------------------------------------------------------------------ what `sort` reports

def test_sort_reports_the_unsorted_faces_it_left(tmp_path):
    """`photo-sorter sort` counts the faces it left unsorted, in its summary line and in --summary-json."""
    folder = tmp_path / "photos"
    for ident, (unsure, _, _) in UNSURE_BACKGROUND.items():
        _copy(LFW / ident, [unsure], folder)
    rc, summary, _ = harness.run_sort(harness.find_binary(), folder, str(tmp_path / "lib.sqlite"), tmp_path / "summary.json",
                                      tmp_path / "sort.log", timeout=600)
    assert rc == 0 and summary, (tmp_path / "sort.log").read_text(errors="replace")[-3000:]
    assert summary["unsorted_faces"] == len(UNSURE_BACKGROUND), summary
    assert summary["faces"] >= 2 * len(UNSURE_BACKGROUND), summary
    text = (tmp_path / "sort.log").read_text(errors="replace")
    assert f"({len(UNSURE_BACKGROUND)} unsorted: too unsure to start a person" in text, text[-3000:]
