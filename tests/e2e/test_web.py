"""End-to-end: the people web page in a real browser (headless Chromium from Debian, driven by Playwright).

The real ML service and the real `photo-sorter serve` run on a private SQLite database; two small fixture folders
are ingested through the API (`face_recognition_examples`: named people photographed several times, and
`dlib_faces`: group photos, whose many one-photo strangers give the review queue close calls). Every correction is
made by clicking or typing in the page and then checked through the HTTP API, never through the page itself.

Screenshots of each page (1280x800) go to tests/e2e/out/web/ (git-ignored).

Needs: Playwright for Python (tests/requirements.txt, in ml-service/.venv) and /usr/bin/chromium
(Debian's `chromium`; `playwright install` is never used). Photos: ../shared/testdata/faces
(PHOTO_SORTER_FACES_DIR overrides). Binary: $PHOTO_SORTER_BIN, else .build/debug, else .build/release.
Run: ml-service/.venv/bin/python -m pytest tests/e2e/test_web.py -q
The tests of one module share one library and run in file order (each builds on the corrections before it).
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FACES = harness.faces_dir()
EXAMPLES = FACES / "face_recognition_examples"
GROUPS = FACES / "dlib_faces"
CHROMIUM = os.environ.get("PHOTO_SORTER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
OUT = harness.REPO / "tests" / "e2e" / "out" / "web"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 20_000

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - reported as a skip reason below
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(not (EXAMPLES.is_dir() and GROUPS.is_dir()), reason=f"test photos not found at {FACES}"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -r tests/requirements.txt)"),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


# ------------------------------------------------------------------ the services and the browser

def api(stack, method: str, path: str, body=None, headers=None):
    return harness.http_json(method, stack.base + path, body, headers=headers)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """ML service + photo-sorter serve with both folders ingested. No shared secret: with one, every correction
    needs the X-Photo-Sorter-Secret header, which a browser page does not hold."""
    work = tmp_path_factory.mktemp("web")
    port, ml_port = harness.free_port(), harness.free_port()
    base, ml_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ml_port}"
    roots = [str(FACES)]
    ml = harness.start_ml_service(ml_port, base, roots, None, work / "ml-service.log")
    try:
        swift = harness.start_swift(harness.find_binary(), str(work / "photo-sorter.sqlite"), port, ml_url, roots, None,
                                    work / "photo-sorter.log")
    except BaseException:
        ml.stop()
        raise
    s = SimpleNamespace(base=base, work=work, ml=ml, swift=swift, jobs=[])
    try:
        for folder in (EXAMPLES, GROUPS):  # one after the other: the ids of the first folder come first
            job = api(s, "POST", "/ingest-folder", {"path": str(folder), "recursive": True})["jobId"]
            deadline = time.monotonic() + 600
            while True:
                status = api(s, "GET", f"/ingest-status/{job}")
                if status["done"] or status["status"] == "FAILED":
                    break
                assert time.monotonic() < deadline, f"ingest of {folder} not done: {status}"
                assert swift.alive() and ml.alive(), f"a service died:\n{swift.log_tail()}\n{ml.log_tail()}"
                time.sleep(0.5)
            assert status["done"] and status["failed"] == 0, status
            s.jobs.append(status)
        yield s
    finally:
        swift.stop()
        ml.stop()


@pytest.fixture(scope="module")
def browser():
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, stack, request):
    """A fresh browser context on the service; fails the test on any uncaught JavaScript error."""
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.base)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors, console = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    yield pg
    (OUT / f"{request.node.name}.console.txt").write_text("\n".join(console))
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(pg, name: str) -> None:
    pg.wait_for_timeout(150)  # let the last images decode
    pg.screenshot(path=str(OUT / f"{name}.png"))


VISIBLE_IMAGES_LOADED = """
(selector) => {
  const imgs = [...document.querySelectorAll(selector)].filter(el => {
    const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight;
  });
  return imgs.length > 0 && imgs.every(img => img.complete && img.naturalWidth > 0);
}
"""


def wait_images(pg, selector: str) -> None:
    pg.wait_for_function(VISIBLE_IMAGES_LOADED, arg=selector)


def current_person(pg) -> int:
    pg.wait_for_selector("[data-testid=person-header]")
    return int(pg.get_attribute("[data-testid=person-header]", "data-person-id"))


def all_persons(stack) -> list[dict]:
    return api(stack, "GET", "/persons?limit=500&hidden=any")["persons"]


def photos_of(stack, pid: int) -> set[int]:
    return {p["photo_id"] for p in api(stack, "GET", f"/person/{pid}/photos?limit=500")["photos"]}


# ------------------------------------------------------------------ People

def test_people_page_lists_persons_with_their_thumbnails(page, stack):
    listed = api(stack, "GET", "/persons?limit=120")
    page.goto("/")
    expect(page).to_have_url(f"{stack.base}/#/people")
    page.wait_for_selector("[data-testid=person-card]")
    expect(page.get_by_test_id("people-total")).to_have_text(str(listed["total"]))
    # Same persons in the same order as the API (most photos first).
    ids = [int(x) for x in page.locator("[data-testid=person-card]").evaluate_all("els => els.map(e => e.dataset.personId)")]
    assert ids == [p["person_id"] for p in listed["persons"]]
    # Every thumbnail on the first screen has loaded (none fell back to initials or a silhouette).
    wait_images(page, "[data-testid=person-card] img")
    assert page.locator("[data-testid=person-card] .thumb.broken").count() == 0
    sizes = page.locator("[data-testid=person-card] img").evaluate_all(
        "els => els.slice(0, 8).map(i => [i.getAttribute('width'), i.getAttribute('loading'), i.getAttribute('decoding')])")
    assert all(s == ["112", "lazy", "async"] for s in sizes), sizes
    shot(page, "people")


def test_rename_person_inline(page, stack):
    top = api(stack, "GET", "/persons?limit=1")["persons"][0]
    page.goto("/#/people")
    page.locator(f"[data-testid=person-card][data-person-id='{top['person_id']}']").click()
    pid = current_person(page)
    assert pid == top["person_id"]
    expect(page).to_have_url(f"{stack.base}/#/person/{pid}")

    page.get_by_test_id("person-name").click()
    page.get_by_test_id("person-name-input").fill("Barack <b>Obama</b>")
    page.get_by_test_id("person-name-input").press("Enter")
    expect(page.get_by_test_id("person-name")).to_have_text("Barack <b>Obama</b>")  # shown as text, not markup
    assert api(stack, "GET", f"/person/{pid}")["display_name"] == "Barack <b>Obama</b>"

    # Escape cancels: nothing is sent.
    page.get_by_test_id("person-name").click()
    page.get_by_test_id("person-name-input").fill("Someone else")
    page.get_by_test_id("person-name-input").press("Escape")
    expect(page.get_by_test_id("person-name")).to_have_text("Barack <b>Obama</b>")
    page.get_by_test_id("person-name").click()
    page.get_by_test_id("person-name-input").fill("Barack Obama")
    page.get_by_test_id("person-name-input").press("Enter")
    expect(page.get_by_test_id("person-name")).to_have_text("Barack Obama")
    assert api(stack, "GET", f"/person/{pid}")["display_name"] == "Barack Obama"

    # The People search finds the new name (debounced, `name=`).
    page.get_by_test_id("nav-people").click()
    page.get_by_test_id("people-search").fill("obama")
    expect(page.locator("[data-testid=person-card]")).to_have_count(1)
    expect(page.locator("[data-testid=person-card]")).to_have_attribute("data-person-id", str(pid))
    expect(page.get_by_test_id("people-total")).to_have_text("1")


# ------------------------------------------------------------------ Review

def test_review_confirm_with_the_y_key(page, stack):
    queue = api(stack, "GET", "/review?limit=50")["faces"]
    page.goto("/#/review")
    if not queue:
        expect(page.get_by_test_id("review-empty")).to_be_visible()
        shot(page, "review")
        pytest.skip("the review queue of this library is empty: nothing to confirm")
    first = queue[0]
    card = page.get_by_test_id("review-card")
    expect(card).to_have_attribute("data-face-id", str(first["face_id"]))
    expect(page.get_by_test_id("review-person")).to_have_attribute("data-person-id", str(first["person_id"]))
    if first.get("runner_up_person_id") is not None:
        expect(page.get_by_test_id("review-runner-up")).to_have_attribute("data-person-id", str(first["runner_up_person_id"]))
    expect(page.get_by_test_id("review-gap")).to_contain_text(f"{first['gap']:.3f}")
    wait_images(page, "[data-testid=review-card] img")
    shot(page, "review")

    assert api(stack, "GET", f"/faces/{first['face_id']}")["confirmed"] is False
    page.keyboard.press("y")
    if len(queue) > 1:
        expect(card).not_to_have_attribute("data-face-id", str(first["face_id"]))
    else:
        expect(page.get_by_test_id("review-empty")).to_be_visible()
    face = api(stack, "GET", f"/faces/{first['face_id']}")
    assert face["confirmed"] is True and face["person_id"] == first["person_id"]
    # A confirmed face leaves the queue.
    assert first["face_id"] not in [f["face_id"] for f in api(stack, "GET", "/review?limit=50")["faces"]]


# ------------------------------------------------------------------ Person: merge, move

def test_merge_two_persons_from_the_person_page(page, stack):
    # One-photo strangers of the group photos (the named people of the other folder stay as they are).
    persons = [p for p in all_persons(stack) if not p["hidden"] and p["photo_count"] == 1 and not p.get("display_name")]
    photos = {p["person_id"]: photos_of(stack, p["person_id"]) for p in persons}
    # Two persons never seen in one photo (a merge of two persons of one photo is refused).
    a, b = next((x, y) for x in persons for y in persons
                if x["person_id"] < y["person_id"] and not photos[x["person_id"]] & photos[y["person_id"]])
    a_id, b_id = a["person_id"], b["person_id"]

    page.goto(f"/#/person/{a_id}")
    assert current_person(page) == a_id
    page.get_by_test_id("person-merge").click()
    page.get_by_test_id("picker-search").fill(f"#{b_id}")
    item = page.locator(f"[data-testid=picker-item][data-person-id='{b_id}']")
    expect(item).to_have_count(1)
    item.click()
    expect(page.get_by_test_id("confirm-dialog")).to_be_visible()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("person-counts")).to_contain_text(f"{a['face_count'] + b['face_count']} faces")

    merged = api(stack, "GET", f"/person/{b_id}")
    assert merged["person_id"] == a_id and merged["redirected_from"] == b_id and merged["merged_into"] == a_id
    assert b_id not in [p["person_id"] for p in all_persons(stack)]

    # The absorbed id opens the survivor, under the survivor's URL.
    page.goto(f"/#/person/{b_id}")
    assert current_person(page) == a_id
    expect(page).to_have_url(f"{stack.base}/#/person/{a_id}")


def test_refused_merge_shows_the_reason_and_changes_nothing(page, stack):
    # Two persons of one group photo cannot be one person: the server refuses, the page says why.
    by_photo = {}
    for p in all_persons(stack):
        for ph in photos_of(stack, p["person_id"]):
            by_photo.setdefault(ph, []).append(p)
    pair = next(v[:2] for v in by_photo.values() if len(v) >= 2 and not any(x["hidden"] for x in v[:2]))
    x, y = pair[0]["person_id"], pair[1]["person_id"]
    before = (api(stack, "GET", f"/person/{x}"), api(stack, "GET", f"/person/{y}"))

    page.goto(f"/#/person/{x}")
    page.get_by_test_id("person-merge").click()
    page.get_by_test_id("picker-search").fill(str(y))
    page.locator(f"[data-testid=picker-item][data-person-id='{y}']").click()
    page.get_by_test_id("confirm-ok").click()
    toast = page.locator("[data-testid=toast][data-kind=error]")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("Merge refused")
    after = (api(stack, "GET", f"/person/{x}"), api(stack, "GET", f"/person/{y}"))
    assert [(v["person_id"], v["face_count"], v.get("merged_into")) for v in after] == \
           [(v["person_id"], v["face_count"], v.get("merged_into")) for v in before]


def test_select_faces_and_move_one_to_a_new_person(page, stack):
    pid = api(stack, "GET", "/persons?limit=1")["persons"][0]["person_id"]  # Barack Obama, many faces
    faces = api(stack, "GET", f"/person/{pid}/faces?limit=500")["faces"]
    assert len(faces) >= 3
    page.goto(f"/#/person/{pid}")
    tiles = page.locator("[data-testid=face-tile]")
    expect(tiles).to_have_count(len(faces))
    wait_images(page, "[data-testid=face-tile] img")

    # Click selects, Shift-click selects the range; the action bar appears with the count.
    expect(page.get_by_test_id("face-actions")).to_be_hidden()
    tiles.nth(0).click()
    tiles.nth(2).click(modifiers=["Shift"])
    expect(page.get_by_test_id("selection-count")).to_have_text("3 faces selected")
    expect(page.locator("[data-testid=face-tile].selected")).to_have_count(3)
    shot(page, "person")
    page.get_by_test_id("action-clear").click()
    expect(page.get_by_test_id("face-actions")).to_be_hidden()

    moved = faces[-1]["face_id"]
    page.locator(f"[data-testid=face-tile][data-face-id='{moved}']").click()
    page.get_by_test_id("action-new-person").click()
    expect(page.locator("[data-testid=face-tile]")).to_have_count(len(faces) - 1)
    face = api(stack, "GET", f"/faces/{moved}")
    assert face["person_id"] != pid and face["confirmed"] is True
    new_person = api(stack, "GET", f"/person/{face['person_id']}")
    assert new_person["face_count"] == 1
    expect(page.locator("[data-testid=toast]").last).to_contain_text(f"new person #{face['person_id']}")
    assert api(stack, "GET", f"/person/{pid}")["face_count"] == len(faces) - 1

    # The Photos tab lists the person's photos; one opens the Photo page.
    page.get_by_test_id("tab-photos").click()
    expect(page.locator("[data-testid=photo-tile]")).to_have_count(len(photos_of(stack, pid)))


# ------------------------------------------------------------------ Photo

def test_photo_page_boxes_match_the_detections_and_open_their_person(page, stack):
    photo = next(p for p in harness.all_photos(stack.base) if p["path"].endswith("kit_with_rose.jpg"))
    detail = api(stack, "GET", f"/photo/{photo['photo_id']}")
    dets = detail["detections"]
    assert len(dets) == 2
    page.goto(f"/#/photo/{photo['photo_id']}")
    boxes = page.locator("[data-testid=photo-box]")
    expect(boxes).to_have_count(len(dets))
    wait_images(page, "[data-testid=photo-image]")
    expect(page.get_by_test_id("photo-info")).to_contain_text(detail["filename"])
    expect(page.get_by_test_id("photo-path")).to_have_text(detail["path"])

    # Each box sits where its bbox is on the drawn preview (within 2 px).
    img = page.get_by_test_id("photo-image").bounding_box()
    for det in dets:
        box = page.locator(f"[data-testid=photo-box][data-face-id='{det['embedding_id']}']").bounding_box()
        x1, y1, x2, y2 = det["bbox"]
        sx, sy = img["width"] / detail["width"], img["height"] / detail["height"]
        assert abs(box["x"] - (img["x"] + x1 * sx)) < 2 and abs(box["y"] - (img["y"] + y1 * sy)) < 2, (box, det)
        assert abs(box["width"] - (x2 - x1) * sx) < 2 and abs(box["height"] - (y2 - y1) * sy) < 2, (box, det)
    shot(page, "photo")

    target = api(stack, "GET", f"/person/{dets[0]['person_id']}")["person_id"]  # the survivor, had it been merged
    page.locator(f"[data-testid=photo-box][data-face-id='{dets[0]['embedding_id']}']").click()
    assert current_person(page) == target
    expect(page).to_have_url(f"{stack.base}/#/person/{target}")


# ------------------------------------------------------------------ Jobs

def test_jobs_page_shows_the_finished_jobs_and_refused_ingests(page, stack):
    jobs = api(stack, "GET", "/ingest-jobs")["jobs"]
    page.goto("/#/jobs")
    rows = page.locator("[data-testid=job-row]")
    expect(rows).to_have_count(len(jobs))
    for job in jobs:
        row = page.locator(f"[data-testid=job-row][data-job-id='{job['job_id']}']")
        expect(row).to_have_attribute("data-done", "true")
        total = job["processed"] + job["failed"]
        expect(row.get_by_test_id("job-progress-text")).to_have_text(f"{total} / {total} photos")
        expect(row.get_by_test_id("job-progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("allowed-roots")).to_contain_text(str(FACES))
    shot(page, "jobs")

    # A folder outside the allowed roots: the server's reason is shown and no job is created.
    page.get_by_test_id("ingest-path").fill("/etc")
    page.get_by_test_id("ingest-submit").click()
    toast = page.locator("[data-testid=toast][data-kind=error]")
    expect(toast).to_contain_text("outside the allowed")
    assert len(api(stack, "GET", "/ingest-jobs")["jobs"]) == len(jobs)


# ------------------------------------------------------------------ cross-site writes

def test_cross_site_write_is_refused(browser, stack):
    pid = api(stack, "GET", "/persons?limit=1")["persons"][0]["person_id"]
    before = api(stack, "GET", f"/person/{pid}")
    context = browser.new_context(base_url=stack.base)
    try:
        # What a page on another site can make a browser send: its Origin, no X-Photo-Sorter-Request.
        res = context.request.patch(f"/person/{pid}", data=json.dumps({"display_name": "pwned"}),
                                    headers={"Content-Type": "application/json", "Origin": "http://evil.example"})
        assert res.status == 403, (res.status, res.text())
        assert res.json()["error"] is True and res.json()["reason"]
        # A form post (no custom header possible, urlencoded body) from another site.
        res = context.request.post("/persons/merge", form={"person_ids": str(pid)},
                                   headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert res.status == 403, (res.status, res.text())
        # Same origin but without the marker header, as a browser (Sec-Fetch-Mode) would send it: refused too.
        res = context.request.patch(f"/person/{pid}", data=json.dumps({"display_name": "pwned"}),
                                    headers={"Content-Type": "application/json", "Origin": stack.base,
                                             "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"})
        assert res.status == 403, (res.status, res.text())
        # The page's own way (same origin + marker header + JSON) is accepted.
        res = context.request.patch(f"/person/{pid}", data=json.dumps({"display_name": before.get("display_name")}),
                                    headers={"Content-Type": "application/json", "Origin": stack.base,
                                             "X-Photo-Sorter-Request": "1"})
        assert res.status == 200, (res.status, res.text())
    finally:
        context.close()
    after = api(stack, "GET", f"/person/{pid}")
    assert after.get("display_name") == before.get("display_name") != "pwned"


# ------------------------------------------------------------------ access token

def test_access_token_link_sets_the_cookie_and_a_lost_token_shows_the_token_page(browser, tmp_path):
    """A service started with PHOTO_SORTER_API_TOKEN: the page needs `/?token=…` once (no ML service needed)."""
    token = secrets.token_hex(16)
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    swift = harness.start_swift(harness.find_binary(), str(tmp_path / "t.sqlite"), port, "http://127.0.0.1:9", [str(FACES)],
                                None, tmp_path / "photo-sorter.log", PHOTO_SORTER_API_TOKEN=token)
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    try:
        pg = context.new_page()
        res = pg.goto("/")
        assert res.status == 401  # the server's own "needs its token" page
        pg.goto(f"/?token={token}")
        expect(pg).to_have_url(f"{base}/#/people")  # redirected to / without the token in the address
        expect(pg.get_by_test_id("people-empty")).to_be_visible()  # the API answered: an empty library
        expect(pg.get_by_test_id("token-wall")).to_have_count(0)
        # Without the cookie, the next API call gets 401 and the page says how to get in.
        context.clear_cookies()
        pg.get_by_test_id("nav-jobs").click()
        expect(pg.get_by_test_id("token-wall")).to_be_visible()
        expect(pg.get_by_test_id("token-wall")).to_contain_text("?token=")
    finally:
        context.close()
        swift.stop()
