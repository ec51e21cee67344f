"""Finding photos through the real ML service and the real Swift service: each photo's date comes from its EXIF
(with offset), its XMP, or its file's time; "these people together" (`match=all`) and "any of them" on real group
photos; the CLI's `photos --with NAME` and `export --with`; and a library sorted before dates were read gets them
at the next scan without a new analysis.

Photos come from ../shared/testdata/faces/face_recognition_examples, copied into a temporary folder at test time
and given their dates there (Pillow writes the EXIF and XMP).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXAMPLES = harness.faces_dir() / "face_recognition_examples"
XMP_DATE = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            b'<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            b'photoshop:DateCreated="2011-07-04T09:15:00+01:00"/></rdf:RDF></x:xmpmeta>')
FILE_TIME = datetime.datetime(2015, 3, 4, 12, 30, 0)  # local time of this machine

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"{EXAMPLES} not present")


def exif(date: str, offset: str | None = None) -> Image.Exif:
    e = Image.Exif()
    e[0x0110] = "photo-sorter test"  # a main-IFD tag: Pillow's PNG writer skips an EXIF whose main IFD is empty
    ifd = e.get_ifd(0x8769)
    ifd[0x9003] = date
    if offset:
        ifd[0x9011] = offset
    return e


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The folder, its stack, and every photo by file name (GET /photo/{id})."""
    folder = tmp_path_factory.mktemp("find")
    with Image.open(EXAMPLES / "_group" / "obama_and_biden.jpg") as im:
        im.convert("RGB").save(folder / "obama_and_biden.jpg", exif=exif("2012:11:06 21:30:00", "-05:00"), quality=95)
    with Image.open(EXAMPLES / "obama" / "obama.jpg") as im:
        im.convert("RGB").save(folder / "obama.jpg", exif=exif("2009:01:20 12:00:00"), quality=95)
    with Image.open(EXAMPLES / "biden" / "biden.jpg") as im:
        im.convert("RGB").save(folder / "biden.png", exif=exif("2010:05:01 08:00:00", "+02:00"))
    with Image.open(EXAMPLES / "obama" / "obama2.jpg") as im:
        im.convert("RGB").save(folder / "obama2.jpg", xmp=XMP_DATE, quality=95)
    shutil.copyfile(EXAMPLES / "biden" / "biden2.jpg", folder / "biden2.jpg")
    stamp = FILE_TIME.timestamp()
    os.utime(folder / "biden2.jpg", (stamp, stamp))
    for name in ("kit_with_rose.jpg", "two_people.jpg"):
        shutil.copyfile(EXAMPLES / "_group" / name, folder / name)
    for source, name in ((EXAMPLES / "kit_harington" / "john1.jpeg", "kit1.jpg"), (EXAMPLES / "rose_leslie" / "img1.jpg", "rose1.jpg")):
        shutil.copyfile(source, folder / name)
    stack = harness.Stack(tmp_path_factory.mktemp("find-stack"), allowed_roots=[folder])
    try:
        status = stack.wait_job(stack.ingest(folder), timeout=600)
        assert status["failed"] == 0 and status["processed"] == 9, status
        yield folder, stack
    finally:
        stack.stop()


def photos_by_name(stack) -> dict:
    return {Path(p["path"]).name: p for p in harness.all_photos(stack.base)}


def every_page(stack, path: str) -> list[dict]:
    photos, after = [], None
    while True:
        page = stack.get(path + "&limit=2" + (f"&after={after}" if after else ""))
        photos += page["photos"]
        after = page.get("next_after")
        if not after:
            return photos


def test_each_photo_is_dated_from_exif_xmp_or_its_file(library):
    _, stack = library
    photos = photos_by_name(stack)
    assert (photos["obama_and_biden.jpg"]["taken_at"], photos["obama_and_biden.jpg"]["taken_at_source"]) == ("2012-11-06T21:30:00-05:00", "exif")
    assert (photos["obama.jpg"]["taken_at"], photos["obama.jpg"]["taken_at_source"]) == ("2009-01-20T12:00:00", "exif")
    assert (photos["biden.png"]["taken_at"], photos["biden.png"]["taken_at_source"]) == ("2010-05-01T08:00:00+02:00", "exif")
    assert (photos["obama2.jpg"]["taken_at"], photos["obama2.jpg"]["taken_at_source"]) == ("2011-07-04T09:15:00+01:00", "xmp")
    file_dated = photos["biden2.jpg"]
    assert file_dated["taken_at_source"] == "mtime"
    assert file_dated["taken_at"].startswith(FILE_TIME.strftime("%Y-%m-%dT%H:%M:%S")), file_dated["taken_at"]


def test_together_finds_only_photos_with_all_of_them_and_any_finds_each_once(library):
    _, stack = library
    photos = harness.all_photos(stack.base)
    for group in ("obama_and_biden.jpg", "kit_with_rose.jpg"):
        a, b = next(p for p in photos if Path(p["path"]).name == group)["person_ids"][:2]
        both = {p["photo_id"] for p in photos if a in p["person_ids"] and b in p["person_ids"]}
        either = {p["photo_id"] for p in photos if a in p["person_ids"] or b in p["person_ids"]}
        assert len(both) < len(either), f"{group}: the folder holds photos of only one of them"
        for order in ("id", "taken", "taken_desc"):
            together = every_page(stack, f"/photos?persons={a},{b}&match=all&order={order}")
            assert {p["photo_id"] for p in together} == both, (group, order)
            anyone = every_page(stack, f"/photos?persons={a},{b}&match=any&order={order}")
            assert sorted(p["photo_id"] for p in anyone) == sorted(either), (group, order)
        newest_first = [p["taken_at"][:19] for p in every_page(stack, f"/photos?persons={a},{b}&match=any&order=taken_desc")]
        assert newest_first == sorted(newest_first, reverse=True)


def test_a_year_on_one_person_and_who_is_in_a_set(library):
    _, stack = library
    photos = photos_by_name(stack)
    obama = photos["obama.jpg"]["person_ids"][0]
    in_2009 = every_page(stack, f"/person/{obama}/photos?from=2009-01-01&to=2009-12-31&order=taken")
    assert [Path(p["path"]).name for p in in_2009] == ["obama.jpg"]
    person = stack.get(f"/person/{obama}")
    taken = sorted(p["taken_at"][:19] for p in photos.values() if obama in p["person_ids"])
    assert (person["first_taken"], person["last_taken"]) == (taken[0], taken[-1]) and taken[0] == "2009-01-20T12:00:00"
    party = [photos[n]["photo_id"] for n in ("obama_and_biden.jpg", "kit_with_rose.jpg")]
    people = stack.get("/photos/people?ids=" + ",".join(map(str, party)))
    expected = {pid for n in ("obama_and_biden.jpg", "kit_with_rose.jpg") for pid in photos[n]["person_ids"]}
    assert {p["person_id"] for p in people["persons"]} == expected
    assert people["photos"] == 2 and people["photos_with_people"] == 2


def cli(stack, *argv) -> tuple[int, str, str]:
    proc = subprocess.run([str(harness.find_binary()), *argv, "--database", str(stack.database)],
                          capture_output=True, text=True, timeout=300, env=harness.base_env())
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_finds_by_name_and_export_writes_only_the_photos_found(library, tmp_path):
    _, stack = library
    photos = photos_by_name(stack)
    obama, biden = photos["obama_and_biden.jpg"]["person_ids"][:2]
    for person, name in ((obama, "Obama Test"), (biden, "Biden Test")):
        code, _, err = cli(stack, "people", "rename", str(person), name)
        assert code == 0, err
    code, out, err = cli(stack, "photos", "--with", "obama test", "--with", "Biden Test", "--year", "2012")
    assert code == 0, err
    assert [Path(p["path"]).name for p in json.loads(out)["photos"]] == ["obama_and_biden.jpg"]
    code, out, err = cli(stack, "photos", "--with", "Nobody Test")
    assert code == 2 and "Nobody Test" in err

    target = tmp_path / "export"
    code, out, err = cli(stack, "export", str(target), "--with", "Obama Test", "--with", str(biden))
    assert code == 0, err
    written = {d.name: sorted(f.name for f in d.iterdir()) for d in target.iterdir() if d.is_dir()}
    both = sorted(n for n, p in photos.items() if obama in p["person_ids"] and biden in p["person_ids"])
    assert "obama_and_biden.jpg" in both and len(both) < len([p for p in photos.values() if obama in p["person_ids"]])
    assert written == {"Obama Test": both, "Biden Test": both}, written


def test_next_scan_dates_photos_sorted_before_without_analysing_them_again(library):
    folder, stack = library
    before = photos_by_name(stack)
    with sqlite3.connect(stack.database) as db:  # as a library sorted by an earlier version
        db.execute("UPDATE photos SET taken_at = '1999-01-01T00:00:00', taken_offset = NULL, taken_at_source = NULL")
        db.execute("UPDATE photo_persons SET taken_at = '1999-01-01T00:00:00'")
    status = stack.wait_job(stack.ingest(folder), timeout=600)
    assert status["queued"] == 0, status
    after = photos_by_name(stack)
    for name, photo in after.items():
        assert (photo["taken_at"], photo["taken_at_source"]) == (before[name]["taken_at"], before[name]["taken_at_source"]), name
    obama = before["obama.jpg"]["person_ids"][0]
    assert every_page(stack, f"/person/{obama}/photos?to=1999-12-31&order=taken") == []
