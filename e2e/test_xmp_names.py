"""Face names from XMP, end to end through `photo-sorter sort` with the real ML service: names written by other tools
(a digiKam sidecar, a Lightroom sidecar, a Picasa region inside the JPEG, a region drawn where no face was found)
name persons and pull in the person's other photos; `photo-sorter xmp write` writes every named face back into
sidecars, without touching a photo's bytes, and exiftool and exiv2 read them; sorting the same folder into an empty
database then puts the same names on the same faces (the round trip).

Photos come from ../shared/testdata/faces, copied into a temporary folder at test time; the regions are made with
exiftool around the faces a first, throwaway sort found.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXAMPLES = harness.faces_dir() / "face_recognition_examples"
PHOTOS = {"obama.jpg": "obama/obama.jpg", "obama2.jpg": "obama/obama2.jpg", "obama3.jpg": "obama/obama3.jpg",
          "biden.jpg": "biden/biden.jpg", "biden2.jpg": "biden/biden2.jpg", "kit_with_rose.jpg": "_group/kit_with_rose.jpg"}

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None or shutil.which("exiv2") is None,
                                reason="exiftool and exiv2 (Debian libimage-exiftool-perl, exiv2) are the peer tools")


def sort(folder: Path, database: Path, work: Path, name: str) -> dict:
    rc, summary, _ = harness.run_sort(harness.find_binary(prefer_release=True), folder, str(database),
                                      work / f"{name}.json", work / f"{name}.log", timeout=900)
    assert rc == 0 and summary is not None, (work / f"{name}.log").read_text()[-3000:]
    return summary


def faces(database: Path) -> list[dict]:
    """Every face: its photo's file name, box, the photo's size, and its person's name."""
    with sqlite3.connect(database) as db:
        rows = db.execute("""
            SELECT ph.filename, e.bbox_x1, e.bbox_y1, e.bbox_x2, e.bbox_y2, ph.width, ph.height, p.display_name, e.confirmed
            FROM embeddings e JOIN photos ph ON ph.id = e.photo_id JOIN persons p ON p.id = e.person_id
            ORDER BY ph.filename, e.face_index""").fetchall()
    return [{"photo": r[0], "box": r[1:5], "size": r[5:7], "name": r[7], "confirmed": bool(r[8])} for r in rows]


def region(face: dict, grow: float = 1.2) -> str:
    """An exiftool MWG RegionList item around `face`, a little looser than the detector's box, as people draw them."""
    (x1, y1, x2, y2), (w, h) = face["box"], face["size"]
    cx, cy, rw, rh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) * grow / w, (y2 - y1) * grow / h
    return f"{{Area={{X={cx:.4f},Y={cy:.4f},W={rw:.4f},H={rh:.4f},Unit=normalized}},Name={{NAME}},Type=Face}}"


def exiftool(*args) -> None:
    subprocess.run(["exiftool", "-q", "-overwrite_original", *map(str, args)], check=True, capture_output=True)


def names_by_face(database: Path) -> dict:
    return {(f["photo"], tuple(f["box"])): f["name"] for f in faces(database) if f["name"]}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    work = tmp_path_factory.mktemp("xmp-work")
    folder = tmp_path_factory.mktemp("xmp-photos")
    for name, relative in PHOTOS.items():
        shutil.copyfile(EXAMPLES / relative, folder / name)
    sort(folder, work / "look.sqlite", work, "look")
    found = {}
    for face in faces(work / "look.sqlite"):
        found.setdefault(face["photo"], []).append(face)
    # digiKam: MWG + Microsoft regions and a tag, in photo.jpg.xmp.
    obama = found["obama.jpg"][0]
    (x1, y1, x2, y2), (ow, oh) = obama["box"], obama["size"]
    exiftool("-o", folder / "obama.jpg.xmp",
             f"-XMP-mwg-rs:RegionInfo={{AppliedToDimensions={{W={ow},H={oh},Unit=pixel}},RegionList=[{region(obama).replace('{NAME}', 'Barack Obama')}]}}",
             f"-XMP-MP:RegionInfoMP={{Regions=[{{PersonDisplayName=Barack Obama,Rectangle={x1 / ow:.4f}\\, {y1 / oh:.4f}\\, {(x2 - x1) / ow:.4f}\\, {(y2 - y1) / oh:.4f}}}]}}",
             "-XMP-digiKam:TagsList=People/Barack Obama")
    # Lightroom: photo.xmp with MWG regions and a hierarchical keyword; a second region drawn where no face is.
    biden = found["biden.jpg"][0]
    exiftool("-o", folder / "biden.xmp",
             f"-XMP-mwg-rs:RegionInfo={{RegionList=[{region(biden).replace('{NAME}', 'Joe Biden')}]}}",
             "-XMP-lr:HierarchicalSubject=People|Joe Biden")
    exiftool("-o", folder / "biden2.jpg.xmp",
             "-XMP-mwg-rs:RegionInfo={RegionList=[{Area={X=0.08,Y=0.08,W=0.12,H=0.12,Unit=normalized},Name=Drawn Person,Type=Face}]}")
    # Picasa: the region inside the JPEG, on one of the photo's two faces.
    rose = max(found["kit_with_rose.jpg"], key=lambda f: f["box"][0])
    exiftool(f"-XMP-mwg-rs:RegionInfo={{RegionList=[{region(rose).replace('{NAME}', 'Rose Leslie')}]}}", folder / "kit_with_rose.jpg")
    database = work / "library.sqlite"
    summary = sort(folder, database, work, "sort")
    yield {"work": work, "folder": folder, "database": database, "summary": summary, "rose": rose}


def test_names_from_other_tools_name_persons_and_pull_in_their_other_photos(library):
    summary, by_face = library["summary"], faces(library["database"])
    assert summary["xmp_names"]["applied"] == 4 and summary["xmp_names"]["conflicts"] == 0, summary["xmp_names"]
    photos_of = {}
    for face in by_face:
        photos_of.setdefault(face["name"], set()).add(face["photo"])
    assert photos_of["Barack Obama"] == {"obama.jpg", "obama2.jpg", "obama3.jpg"}, "the other photos of a named person carry the name"
    assert photos_of["Joe Biden"] >= {"biden.jpg"}
    assert photos_of["Rose Leslie"] == {"kit_with_rose.jpg"}
    drawn = [f for f in by_face if f["name"] == "Drawn Person"]
    assert len(drawn) == 1 and drawn[0]["photo"] == "biden2.jpg" and drawn[0]["confirmed"], "a drawn region is a face of its own"
    named = [f for f in by_face if f["photo"] in ("obama.jpg", "biden.jpg") or f["name"] == "Rose Leslie"]
    assert all(f["confirmed"] for f in named), "a face named in XMP is confirmed"


def test_xmp_write_writes_names_back_that_exiftool_and_exiv2_read_and_never_touches_a_photo(library):
    folder, database, work = library["folder"], library["database"], library["work"]
    with sqlite3.connect(database) as db:  # a name given in photo-sorter travels too
        kit = db.execute("""SELECT e.person_id FROM embeddings e JOIN photos ph ON ph.id = e.photo_id
                            WHERE ph.filename = 'kit_with_rose.jpg' AND e.bbox_x1 <> ?""", (library["rose"]["box"][0],)).fetchone()[0]
    rc, _ = harness.run_cli([harness.find_binary(prefer_release=True), "people", "rename", kit, "Kit Harington", "--database",
                             database], work / "rename.log")
    assert rc == 0, (work / "rename.log").read_text()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.jpg")}
    rc, _ = harness.run_cli([harness.find_binary(prefer_release=True), "xmp", "write", "--database", database], work / "write.log")
    assert rc == 0, (work / "write.log").read_text()
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.jpg")} == before
    sidecar = folder / "kit_with_rose.jpg.xmp"
    read = json.loads(subprocess.run(["exiftool", "-j", "-struct", "-XMP-mwg-rs:RegionInfo", "-XMP-dc:Subject", str(sidecar)],
                                     check=True, capture_output=True, text=True).stdout)[0]
    assert sorted(r["Name"] for r in read["RegionInfo"]["RegionList"]) == ["Kit Harington", "Rose Leslie"]
    assert set(read["Subject"]) >= {"Kit Harington", "Rose Leslie"}
    exiv2 = subprocess.run(["exiv2", "-px", str(folder / "obama.jpg.xmp")], check=True, capture_output=True, text=True).stdout
    assert "Barack Obama" in exiv2 and "mwg-rs:RegionList" in exiv2
    kept = subprocess.run(["exiftool", "-s3", "-XMP-digiKam:TagsList", str(folder / "obama.jpg.xmp")], capture_output=True, text=True).stdout
    assert "People/Barack Obama" in kept, "an existing sidecar's own tags stay"


def test_sorting_again_into_an_empty_database_puts_the_same_names_on_the_same_faces(library):
    assert (library["folder"] / "kit_with_rose.jpg.xmp").is_file(), "runs after the write test"
    first = names_by_face(library["database"])
    again = library["work"] / "again.sqlite"
    summary = sort(library["folder"], again, library["work"], "again")
    assert summary["xmp_names"]["conflicts"] == 0, summary["xmp_names"]
    assert names_by_face(again) == first
