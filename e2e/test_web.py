"""End-to-end: the people web page in a real browser (headless Chromium from Debian, driven by Playwright).

The real ML service and the real `photo-sorter serve` run on a private SQLite database; two small fixture folders
are ingested through the API (`face_recognition_examples`: named people photographed several times, and
`dlib_faces`: group photos, whose many one-photo strangers give the review queue close calls). Every correction is
made by clicking or typing in the page and then checked through the HTTP API, never through the page itself.

Screenshots of each page (1280x800) go to e2e/out/web/ (git-ignored).

Needs: Playwright for Python (e2e/requirements.txt, in ml-service/.venv) and /usr/bin/chromium
(Debian's `chromium`; `playwright install` is never used). Photos: ../shared/testdata/faces
(PHOTO_SORTER_FACES_DIR overrides). Binary: $PHOTO_SORTER_BIN, else .build/debug, else .build/release.
Run: ml-service/.venv/bin/python -m pytest e2e/test_web.py -q
The tests of one module share one library and run in file order (each builds on the corrections before it).
"""
from __future__ import annotations

import json
import os
import re
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
UNSURE_PHOTO = FACES / "lfw_small" / "Halle_Berry" / "Halle_Berry_0006.jpg"  # a small face behind her: unsure
CHROMIUM = os.environ.get("PHOTO_SORTER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
OUT = harness.REPO / "e2e" / "out" / "web"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 20_000

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - reported as a skip reason below
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(not (EXAMPLES.is_dir() and GROUPS.is_dir()), reason=f"test photos not found at {FACES}"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -r e2e/requirements.txt)"),
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
    return api(stack, "GET", "/persons?limit=500&hidden=any&min_photos=1")["persons"]


def photos_of(stack, pid: int) -> set[int]:
    return {p["photo_id"] for p in api(stack, "GET", f"/person/{pid}/photos?limit=500")["photos"]}


# ------------------------------------------------------------------ dates as the page writes them

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WALL_CLOCK = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$")
SOURCES = {"exif": "from EXIF", "xmp": "from XMP", "mtime": "file date (no date in the photo)"}


def taken_text(text: str) -> str:
    """'2019-06-01T14:03:22+02:00' -> '1 June 2019, 14:03 (+02:00)': the date as written, in the photo's wall clock."""
    m = WALL_CLOCK.match(text)
    assert m, f"not an ISO 8601 wall clock: {text!r}"
    year, month, day, hour, minute, zone = m.groups()
    out = f"{int(day)} {MONTHS[int(month) - 1]} {year}" + (f", {hour}:{minute}" if hour else "")
    if zone == "Z":
        out += " (UTC)"
    elif zone:
        digits = zone[1:].replace(":", "")
        out += f" ({zone[0]}{digits[:2]}:{digits[2:] or '00'})"
    return out


def years_text(first, last) -> str:
    a, b = (first or "")[:4], (last or "")[:4]
    return (a or b) if not (a and b) or a == b else f"{a}–{b}"


def json_route(pg, pattern, change):
    """Answers the page's requests matching `pattern` with the service's own answer, changed by `change(data, url)`."""
    def handle(route):
        res = route.fetch()
        data = res.json()
        route.fulfill(response=res, json=change(data, route.request.url))
    pg.route(pattern, handle)


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


def test_people_page_leaves_out_one_photo_people_until_switched(page, stack):
    """By default the page lists the people seen in 2 or more photos and says how many it leaves out; its one switch
    lists everyone (the group photos' one-photo strangers too) and stays on across a reload."""
    standard = api(stack, "GET", "/persons?limit=500")
    everyone = api(stack, "GET", "/persons?limit=500&min_photos=1")
    below = standard["below_min_photos"]
    assert below > 0 and everyone["total"] == standard["total"] + below, (standard["total"], below, everyone["total"])
    page.goto("/#/people")
    switch = page.get_by_test_id("people-show-one-photo")
    total, note = page.get_by_test_id("people-total"), page.get_by_test_id("people-below-min")
    cards = page.locator("[data-testid=person-card]")
    expect(switch).not_to_be_checked()
    expect(total).to_have_text(str(standard["total"]))
    expect(note).to_have_text(f"Not shown: {below} {'person' if below == 1 else 'people'} seen in only one photo.")
    expect(cards).to_have_count(min(standard["total"], 120))
    assert "1 photo" not in page.locator("[data-testid=person-card] .card-meta").all_text_contents()

    page.get_by_text("Show people with one photo").click()  # the label toggles the switch
    expect(switch).to_be_checked()
    expect(total).to_have_text(str(everyone["total"]))
    expect(note).to_be_hidden()
    expect(cards).to_have_count(min(everyone["total"], 120))
    ids = [int(x) for x in cards.evaluate_all("els => els.map(e => e.dataset.personId)")]
    assert ids == [p["person_id"] for p in everyone["persons"][:120]]
    assert page.locator("[data-testid=person-card] .card-meta", has_text="1 photo").count() > 0
    wait_images(page, "[data-testid=person-card] img")
    shot(page, "people-with-one-photo")

    page.reload()  # the browser remembers the choice
    expect(page.get_by_test_id("people-show-one-photo")).to_be_checked()
    expect(page.get_by_test_id("people-total")).to_have_text(str(everyone["total"]))
    page.get_by_test_id("people-show-one-photo").uncheck()
    expect(page.get_by_test_id("people-total")).to_have_text(str(standard["total"]))
    expect(page.get_by_test_id("people-below-min")).to_be_visible()


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

def review_until(page, face_id: int):
    """Skips (S) cards on the Review page until the card of `face_id` is shown; returns the card."""
    card = page.get_by_test_id("review-card")
    for _ in range(60):
        expect(card).to_be_visible()
        shown = card.get_attribute("data-face-id")
        if shown == str(face_id):
            return card
        page.keyboard.press("s")
        expect(card).not_to_have_attribute("data-face-id", shown)
    raise AssertionError(f"face {face_id} never came up for review")


def first_question(stack, kind: str):
    return next((f for f in api(stack, "GET", "/review?limit=50")["faces"] if f["question"]["kind"] == kind), None)


def give_company(stack, item) -> None:
    """Moves the face of a one-photo stranger (never in a photo with it) into the person of `item`, a face alone in
    its person: that face then has company, and its question becomes one about its own person."""
    pid = item["person_id"]
    mine = photos_of(stack, pid)
    stranger = next(p for p in all_persons(stack)
                    if p["photo_count"] == 1 and not p["hidden"] and not p.get("display_name")
                    and p["person_id"] not in (pid, item["runner_up_person_id"])
                    and not photos_of(stack, p["person_id"]) & mine)
    face = api(stack, "GET", f"/person/{stranger['person_id']}/faces")["faces"][0]
    api(stack, "POST", "/faces/move", {"face_ids": [face["face_id"]], "to_person_id": pid})


def test_review_same_person_question_takes_the_face_out_with_the_n_key(page, stack):
    """A face in a person with other faces is asked about that person; No (the N key) takes it out of the person,
    and a face left alone that way is then asked about its runner-up instead."""
    item = first_question(stack, "same_person")
    if item is None:
        # Every close call of this library is a face alone in its person: give one of them company.
        lone = first_question(stack, "runner_up")
        if lone is None:
            pytest.skip("this library has no close call to review")
        give_company(stack, lone)
        item = next(f for f in api(stack, "GET", "/review?limit=50")["faces"] if f["face_id"] == lone["face_id"])
    assert item["question"] == {"kind": "same_person", "person_id": item["person_id"]}, item
    page.goto("/#/review")
    review_until(page, item["face_id"])
    question = page.get_by_test_id("review-question")
    expect(question).to_have_attribute("data-kind", "same_person")
    expect(question).to_have_attribute("data-person-id", str(item["person_id"]))
    expect(page.locator("[data-testid=review-person].asked")).to_have_attribute("data-person-id", str(item["person_id"]))
    if item.get("runner_up_person_id") is not None:
        expect(page.get_by_test_id("review-runner-up")).to_have_attribute("data-person-id", str(item["runner_up_person_id"]))
    expect(page.get_by_test_id("review-gap")).to_contain_text(f"{item['gap']:.3f}")
    expect(page.get_by_test_id("review-effects")).to_contain_text("No takes it out")
    expect(page.get_by_test_id("review-no")).to_contain_text("No, take it out")
    wait_images(page, "[data-testid=review-card] img")
    shot(page, "review")

    page.keyboard.press("n")
    expect(page.locator("[data-testid=toast]").last).to_contain_text(f"Face #{item['face_id']}")
    face = api(stack, "GET", f"/faces/{item['face_id']}")
    assert face["person_id"] != item["person_id"] and face["confirmed"] is False, face
    now = [f for f in api(stack, "GET", "/review?limit=50")["faces"] if f["face_id"] == item["face_id"]]
    assert all(f["question"] != item["question"] for f in now), now
    if api(stack, "GET", f"/person/{face['person_id']}")["face_count"] == 1 and face.get("runner_up_person_id"):
        assert [f["question"] for f in now] == [{"kind": "runner_up", "person_id": face["runner_up_person_id"]}], now


def test_review_runner_up_question_moves_the_face_or_records_not_them(page, stack):
    """A face alone in its person is asked about its runner-up: Yes (a click) moves it there, No (the N key)
    records that it is not the runner-up, which then no longer comes up for it."""
    item = first_question(stack, "runner_up")
    page.goto("/#/review")
    if item is None:
        shot(page, "review-runner-up")
        pytest.skip("no face of this library is alone in its person with a runner-up")
    runner_up = item["question"]["person_id"]
    assert runner_up == item["runner_up_person_id"] and api(stack, "GET", f"/person/{item['person_id']}")["face_count"] == 1
    name = api(stack, "GET", f"/person/{runner_up}").get("display_name") or f"person #{runner_up}"
    review_until(page, item["face_id"])
    question = page.get_by_test_id("review-question")
    expect(question).to_have_attribute("data-kind", "runner_up")
    expect(question).to_have_attribute("data-person-id", str(runner_up))
    expect(question).to_have_text(f"Is this {name}?")
    expect(page.locator("[data-testid=review-runner-up].asked")).to_have_attribute("data-person-id", str(runner_up))
    expect(page.get_by_test_id("review-person")).to_contain_text("only this face")
    expect(page.get_by_test_id("review-effects")).to_contain_text(f"Yes moves this face to {name}")
    expect(page.get_by_test_id("review-yes")).to_contain_text("Yes, move it")
    wait_images(page, "[data-testid=review-card] img")
    shot(page, "review-runner-up")

    before = api(stack, "GET", f"/person/{runner_up}")["face_count"]
    page.get_by_test_id("review-yes").click()
    expect(page.locator("[data-testid=toast]").last).to_contain_text(f"moved to #{runner_up}")
    face = api(stack, "GET", f"/faces/{item['face_id']}")
    assert face["person_id"] == runner_up and face["confirmed"] is True, face
    assert api(stack, "GET", f"/person/{runner_up}")["face_count"] == before + 1
    assert api(stack, "GET", f"/person/{item['person_id']}")["merged_into"] == runner_up  # the emptied person redirects

    # No (the N key), on the next face alone in its person.
    other = first_question(stack, "runner_up")
    assert other is not None, "a second face alone in its person with a runner-up (the one the test before took out)"
    not_them = other["question"]["person_id"]
    review_until(page, other["face_id"])
    page.keyboard.press("n")
    expect(page.locator("[data-testid=toast]").last).to_contain_text(f"is not #{not_them}")
    face = api(stack, "GET", f"/faces/{other['face_id']}")
    assert face["person_id"] == other["person_id"] and face.get("runner_up_person_id") is None, face
    assert all(not (f["face_id"] == other["face_id"] and f["question"]["person_id"] == not_them)
               for f in api(stack, "GET", "/review?limit=500")["faces"])


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


def test_photo_page_draws_an_unsorted_face_dashed_with_no_person_link(page, stack):
    """A face too unsure to start a person (the small face behind Halle Berry, ArcFace norm 14.2) is drawn on its
    photo, dashed, labelled "unsorted", and links to no person."""
    job = api(stack, "POST", "/ingest-folder", {"path": str(UNSURE_PHOTO.parent), "recursive": False})["jobId"]
    deadline = time.monotonic() + 300
    while not (status := api(stack, "GET", f"/ingest-status/{job}"))["done"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    photo = next(p for p in harness.all_photos(stack.base) if p["path"].endswith(UNSURE_PHOTO.name))
    detail = api(stack, "GET", f"/photo/{photo['photo_id']}")
    unsorted = [d for d in detail["detections"] if d["person_id"] is None]
    assert len(unsorted) == 1, detail["detections"]
    page.goto(f"/#/photo/{detail['photo_id']}")
    expect(page.locator("[data-testid=photo-box]")).to_have_count(len(detail["detections"]))
    wait_images(page, "[data-testid=photo-image]")
    box = page.locator(f"[data-testid=photo-box][data-face-id='{unsorted[0]['embedding_id']}']")
    expect(box).to_have_class(re.compile(r"\bunsorted\b"))
    expect(box).to_have_text("unsorted")
    assert box.get_attribute("href") is None
    assert box.evaluate("el => getComputedStyle(el).borderTopStyle") == "dashed"
    sorted_ids = {d["person_id"] for d in detail["detections"] if d["person_id"] is not None}
    expect(page.locator("[data-testid=photo-person-chip]")).to_have_count(len(sorted_ids))
    shot(page, "photo-unsorted")


# ------------------------------------------------------------------ dates: Photos tab by year, "With…", card years

def shown_photos(pg) -> list[tuple[int, str]]:
    """The Photos tab's tiles in page order, each with the year heading it is under."""
    return [tuple(x) for x in pg.evaluate("""() => {
      let year = null;
      const out = [];
      for (const el of document.querySelectorAll('[data-testid=photos-year], [data-testid=photo-tile]')) {
        if (el.dataset.testid === 'photos-year') year = el.dataset.year;
        else out.push([Number(el.dataset.photoId), year]);
      }
      return out;
    }""")]


def year_runs(photos: list[dict]) -> list[str]:
    runs = []
    for p in photos:
        year = (p.get("taken_at") or "")[:4]
        if not runs or runs[-1] != year:
            runs.append(year)
    return runs


def test_person_photos_tab_is_newest_first_under_year_headings(page, stack):
    pid = api(stack, "GET", "/persons?limit=1")["persons"][0]["person_id"]
    photos = api(stack, "GET", f"/person/{pid}/photos?order=taken_desc&limit=500")["photos"]
    assert len(photos) >= 2 and all(p["taken_at"] for p in photos), photos
    years = year_runs(photos)
    assert years == sorted(set(years), reverse=True), years  # newest first: each year once, descending

    page.goto(f"/#/person/{pid}")
    page.get_by_test_id("tab-photos").click()
    expect(page.locator("[data-testid=photo-tile]")).to_have_count(len(photos))
    expect(page.locator("[data-testid=photos-year]")).to_have_text(years)
    # The API's order, each photo under the heading of the year it was taken.
    assert shown_photos(page) == [(p["photo_id"], p["taken_at"][:4]) for p in photos]
    expect(page.get_by_test_id("with-chips")).to_be_hidden()
    wait_images(page, "[data-testid=photo-tile] img")
    shot(page, "person-photos-by-year")


def test_person_photos_tab_year_headings_across_pages(page, stack):
    """Years that the test photos do not have (until their EXIF dates are read they carry the file's date): the
    service's photos with other dates, answered in two pages. A year that goes on across a page boundary gets one
    heading; an undated photo comes last under "No date"."""
    pid = api(stack, "GET", "/persons?limit=1")["persons"][0]["person_id"]
    ids = [p["photo_id"] for p in api(stack, "GET", "/photos?limit=6")["photos"]]
    dates = ["2021-08-14T10:00:00+02:00", "2021-03-02T09:30:00", "2019-12-31T23:59:00",
             "2019-06-01T14:03:22+02:00", "2015-07-04T12:00:00", None][:len(ids)]
    assert len(ids) == 6
    fake = [dict(api(stack, "GET", f"/photo/{i}"), taken_at=d, taken_at_source="exif" if d else None)
            for i, d in zip(ids, dates)]
    asked = []

    def pages(data, url):
        asked.append(url)
        if "after=" not in url:
            return {"photos": fake[:3], "next_after": f"2019-12-31T23:59:00,{ids[2]}", "next_after_id": ids[2]}
        assert f"after=2019-12-31T23%3A59%3A00%2C{ids[2]}" in url, url
        return {"photos": fake[3:], "next_after": None, "next_after_id": None}

    json_route(page, re.compile(rf"/person/{pid}/photos\?"), pages)
    page.goto(f"/#/person/{pid}")
    page.get_by_test_id("tab-photos").click()
    expect(page.locator("[data-testid=photo-tile]")).to_have_count(6)
    expect(page.locator("[data-testid=photos-year]")).to_have_text(["2021", "2019", "2015", "No date"])
    assert shown_photos(page) == [(i, (d or "")[:4]) for i, d in zip(ids, dates)]
    assert len(asked) == 2 and all("order=taken_desc" in u for u in asked), asked
    wait_images(page, "[data-testid=photo-tile] img")
    page.screenshot(path=str(OUT / "person-photos-years-across-pages.png"), full_page=True)


def test_with_picker_narrows_to_the_photos_of_everyone_chosen(page, stack):
    group = next(p for p in harness.all_photos(stack.base) if p["path"].endswith("obama_and_biden.jpg"))
    in_group = {api(stack, "GET", f"/person/{d['person_id']}")["person_id"]  # survivors, had one been merged
                for d in api(stack, "GET", f"/photo/{group['photo_id']}")["detections"]}
    assert len(in_group) >= 2, in_group
    a, b = sorted(in_group, key=lambda pid: -api(stack, "GET", f"/person/{pid}")["photo_count"])[:2]
    if not api(stack, "GET", f"/person/{b}").get("display_name"):
        api(stack, "PATCH", f"/person/{b}", {"display_name": "Joe Biden"}, headers={"X-Photo-Sorter-Request": "1"})
    b_name = api(stack, "GET", f"/person/{b}")["display_name"]
    everyone = api(stack, "GET", f"/person/{a}/photos?order=taken_desc&limit=500")["photos"]
    both = api(stack, "GET", f"/photos?persons={a},{b}&match=all&order=taken_desc&limit=500")["photos"]
    assert group["photo_id"] in [p["photo_id"] for p in both] and len(both) < len(everyone), (both, everyone)
    tiles = page.locator("[data-testid=photo-tile]")
    chips = page.locator("[data-testid=with-chip]")

    page.goto(f"/#/person/{a}")
    page.get_by_test_id("tab-photos").click()
    expect(tiles).to_have_count(len(everyone))
    expect(page.get_by_test_id("with-clear")).to_be_hidden()

    # Pick by name.
    page.get_by_test_id("with-add").click()
    expect(page.get_by_test_id("picker")).to_be_visible()
    page.get_by_test_id("picker-search").fill(b_name.split()[-1])
    page.locator(f"[data-testid=picker-item][data-person-id='{b}']").click()
    expect(chips).to_have_count(1)
    expect(chips).to_have_attribute("data-person-id", str(b))
    expect(chips).to_contain_text(b_name)
    expect(tiles).to_have_count(len(both))
    assert shown_photos(page) == [(p["photo_id"], p["taken_at"][:4]) for p in both]
    expect(page.locator("[data-testid=photos-year]")).to_have_text(year_runs(both))
    expect(page.get_by_test_id("photos-summary")).to_contain_text(f"{len(both)} photo")
    expect(page.get_by_test_id("photos-summary")).to_contain_text(b_name)
    expect(page.get_by_test_id("photos-empty")).to_be_hidden()
    wait_images(page, "[data-testid=photo-tile] img")
    shot(page, "person-photos-with")

    # A third person never in a photo with both: nothing left, and the page says so. Picked with the keyboard
    # (an id, then Enter); the person of the page and the one already chosen are not offered.
    persons = [p for p in all_persons(stack) if not p["hidden"] and p["person_id"] not in (a, b)]
    c = next(p["person_id"] for p in persons
             if not api(stack, "GET", f"/photos?persons={a},{b},{p['person_id']}&match=all&limit=10")["photos"])
    page.get_by_test_id("with-add").click()
    page.get_by_test_id("picker-search").fill(f"#{b}")
    expect(page.get_by_test_id("picker")).to_contain_text("No one matches.")
    page.get_by_test_id("picker-search").fill(f"#{c}")
    expect(page.locator("[data-testid=picker-item]")).to_have_count(1)
    expect(page.locator("[data-testid=picker-item]")).to_have_attribute("data-person-id", str(c))
    page.get_by_test_id("picker-search").press("Enter")
    expect(chips).to_have_count(2)
    expect(page.get_by_test_id("photos-empty")).to_be_visible()
    expect(page.get_by_test_id("photos-empty")).to_contain_text("No photos of")
    expect(page.get_by_test_id("photos-empty")).to_contain_text(b_name)
    expect(tiles).to_have_count(0)
    expect(page.locator("[data-testid=photos-year]")).to_have_count(0)
    shot(page, "person-photos-with-nothing")

    # Removing a chip with the keyboard: back to the photos of the two; focus stays on the chips.
    page.locator(f"[data-testid=with-chip][data-person-id='{c}'] [data-testid=with-chip-remove]").focus()
    page.keyboard.press("Enter")
    expect(chips).to_have_count(1)
    expect(tiles).to_have_count(len(both))
    expect(page.get_by_test_id("photos-empty")).to_be_hidden()
    expect(page.locator(f"[data-testid=with-chip][data-person-id='{b}'] [data-testid=with-chip-remove]")).to_be_focused()

    # The choice is kept while visiting a photo and coming back.
    tiles.first.click()
    expect(page.get_by_test_id("photo-info")).to_be_visible()
    page.get_by_test_id("back").click()
    expect(chips).to_have_count(1)
    expect(tiles).to_have_count(len(both))

    # Removing the last one shows every photo again.
    page.locator("[data-testid=with-chip-remove]").click()
    expect(chips).to_have_count(0)
    expect(tiles).to_have_count(len(everyone))
    assert shown_photos(page) == [(p["photo_id"], p["taken_at"][:4]) for p in everyone]
    expect(page.get_by_test_id("photos-summary")).to_be_hidden()
    expect(page.get_by_test_id("with-add")).to_be_focused()


def test_people_cards_show_the_years_their_photos_span(page, stack):
    listed = api(stack, "GET", "/persons?limit=120")["persons"]
    page.goto("/#/people")
    cards = page.locator("[data-testid=person-card]")
    expect(cards).to_have_count(len(listed))
    shown = cards.evaluate_all(
        "els => els.map(e => [Number(e.dataset.personId), e.querySelector('[data-testid=person-years]')?.textContent ?? null])")
    expected = [[p["person_id"], years_text(p.get("first_taken"), p.get("last_taken")) or None] for p in listed]
    assert shown == expected
    assert any(years for _, years in expected), listed  # the test photos are dated (by file time at least)
    top = listed[0]
    page.goto(f"/#/person/{top['person_id']}")
    expect(page.get_by_test_id("person-counts").get_by_test_id("person-years")).to_contain_text(
        years_text(top["first_taken"], top["last_taken"]))

    # Spans the test photos do not have: several years, one year, none.
    spans = [("2009-05-01T10:00:00", "2024-02-03T18:30:00", "2009–2024"), ("2019-01-02T08:00:00", "2019-12-30T20:00:00", "2019"),
             (None, None, None)]

    def change(data, url):
        for p, (first, last, _) in zip(data["persons"], spans):
            p["first_taken"], p["last_taken"] = first, last
        return data

    json_route(page, re.compile(r"/persons\?"), change)
    page.goto("/#/people")
    expect(cards).to_have_count(len(listed))
    for p, (_, _, text) in zip(listed, spans):
        card = page.locator(f"[data-testid=person-card][data-person-id='{p['person_id']}']")
        if text:
            expect(card.get_by_test_id("person-years")).to_have_text(text)
        else:
            expect(card.get_by_test_id("person-years")).to_have_count(0)
    wait_images(page, "[data-testid=person-card] img")
    shot(page, "people-years")


def test_photo_page_shows_when_it_was_taken_and_from_where(page, stack):
    photo = next(p for p in harness.all_photos(stack.base) if p["path"].endswith("obama_and_biden.jpg"))
    detail = api(stack, "GET", f"/photo/{photo['photo_id']}")
    assert detail["taken_at"] and detail["taken_at_source"] in SOURCES, detail
    page.goto(f"/#/photo/{photo['photo_id']}")
    taken = page.get_by_test_id("photo-taken")
    expect(taken).to_have_text(f"{taken_text(detail['taken_at'])} · {SOURCES[detail['taken_at_source']]}")
    expect(page.locator("[data-testid=photo-info] dt", has_text="Taken")).to_have_count(1)
    expect(taken.locator("time")).to_have_attribute("datetime", detail["taken_at"])
    wait_images(page, "[data-testid=photo-image]")
    shot(page, "photo-taken")

    # The other sources and forms, answered for this photo.
    cases = [("2019-06-01T14:03:22+02:00", "exif", "1 June 2019, 14:03 (+02:00) · from EXIF"),
             ("2009-12-24T08:05:00Z", "xmp", "24 December 2009, 08:05 (UTC) · from XMP"),
             ("2021-03-07T23:41:09", "mtime", "7 March 2021, 23:41 · file date (no date in the photo)"),
             (None, None, "—")]
    for when, source, text in cases:
        page.unroute_all()
        json_route(page, re.compile(rf"/photo/{photo['photo_id']}$"),
                   lambda data, url, when=when, source=source: dict(data, taken_at=when, taken_at_source=source))
        page.reload()
        expect(taken).to_have_text(text)
        if source == "exif":
            wait_images(page, "[data-testid=photo-image]")
            shot(page, "photo-taken-exif")


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
