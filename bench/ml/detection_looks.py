#!/usr/bin/env python3
"""Which faces the detector finds, and at what cost: the first look alone against `face_finder.find_faces`
(second looks where the first found nothing, sideways photos turned upright), with the single second looks that
were considered, on labelled photo trees where every photo shows a face and on photos without people.

    ml-service/.venv/bin/python bench/ml/detection_looks.py ../shared/testdata/hard_faces/fgnet_dev \
        ../shared/testdata/hard_faces/cfp_dev ../shared/testdata/faces/lfw_small [--json OUT]

Per tree: photos with no face found by the first look and by find_faces; how many of the first look's misses each
single alternative finds; photos find_faces turned (these trees are upright, so every turn is a mistake); detector
milliseconds per photo (one thread). Photos without people: scikit-image's sample photos that show no person plus
dlib_faces/_noface, each also turned by 1-3 quarter turns; every face found there is a false face. Scans (`--scans
TREE`): a sample of the tree's photos turned by 1, 2 and 3 quarter turns, as a print scanned sideways or upside
down with no EXIF orientation; how many find_faces finds and turns back upright.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ml-service"))

from photo_sorter_ml.decode import decode, downscale_for_detection  # noqa: E402
from photo_sorter_ml.face_finder import SECOND_LOOKS, Look, _detect, find_faces, turned  # noqa: E402
from photo_sorter_ml.models import load_models  # noqa: E402

EXTS = {".jpg", ".jpeg", ".png"}
# Single second looks considered (README of face_finder: the chosen ones are SECOND_LOOKS).
ALTERNATIVES = (Look("padded-full-size", 0.5, 0), Look("at-160", 0.0, 160)) + SECOND_LOOKS
NO_PEOPLE = ["brick.png", "cell.png", "chelsea.png", "chessboard_RGB.png", "clock_motion.png", "coffee.png", "coins.png",
             "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "logo.png",
             "microaneurysms.png", "moon.png", "motorcycle_left.png", "page.png", "phantom.png", "retina.jpg",
             "rocket.jpg", "text.png"]


def detection_copy(path: Path) -> np.ndarray:
    return downscale_for_detection(decode(str(path), 100_000_000).rgb, 640)[0]


def measure_tree(detector, root: Path) -> dict:
    photos = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTS and "_" not in p.parent.name[:1])
    first_ms = finder_ms = 0.0
    misses, still, turned_photos = [], [], []
    found_by: dict[str, int] = {}
    for path in photos:
        image = detection_copy(path)
        t0 = time.perf_counter()
        first = detector.detect(image, 0)
        t1 = time.perf_counter()
        found = find_faces(detector, image, 0)
        t2 = time.perf_counter()
        first_ms += (t1 - t0) * 1000
        finder_ms += (t2 - t1) * 1000
        if not first:
            misses.append((path, image))
        if not found.faces:
            still.append(str(path.relative_to(root)))
        else:
            found_by[found.look] = found_by.get(found.look, 0) + 1
        if found.quarter_turns:
            turned_photos.append(str(path.relative_to(root)))
    alternatives = {look.name: sum(bool(_detect(detector, image, look, 0)) for _, image in misses) for look in ALTERNATIVES}
    return {"tree": root.name, "photos": len(photos), "first_look_no_face": len(misses), "no_face": len(still),
            "no_face_photos": still, "found_by_look": found_by, "alternatives_on_misses": alternatives,
            "turned": turned_photos, "first_look_ms": first_ms / max(1, len(photos)), "find_faces_ms": finder_ms / max(1, len(photos))}


def measure_no_people(detector, noface_dir: Path) -> dict:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    photos = [data / name for name in NO_PEOPLE] + sorted(noface_dir.glob("*"))
    false_faces, first_ms, ms = [], 0.0, 0.0
    for path in photos:
        image = detection_copy(path)
        for turns in range(4):
            t0 = time.perf_counter()
            detector.detect(turned(image, turns), 0)
            t1 = time.perf_counter()
            found = find_faces(detector, turned(image, turns), 0)
            first_ms += (t1 - t0) * 1000
            ms += (time.perf_counter() - t1) * 1000
            if found.faces:
                false_faces.append(f"{path.name} turned {turns}: {len(found.faces)} via {found.look}")
    return {"photos": len(photos), "inputs": 4 * len(photos), "false_faces": false_faces,
            "first_look_ms": first_ms / (4 * len(photos)), "find_faces_ms": ms / (4 * len(photos))}


def measure_scans(detector, root: Path, sample: int) -> dict:
    photos = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTS)
    photos = [photos[i * len(photos) // sample] for i in range(min(sample, len(photos)))]  # spread over the tree
    outcome: dict[str, dict[str, int]] = {}
    for path in photos:
        image = detection_copy(path)
        for turns in (1, 2, 3):
            found = find_faces(detector, turned(image, turns), 0)
            kind = "none" if not found.faces else "upright" if (found.quarter_turns + turns) % 4 == 0 else "not upright"
            row = outcome.setdefault(f"turned {turns}", {"upright": 0, "not upright": 0, "none": 0})
            row[kind] += 1
    return {"tree": root.name, "photos": len(photos), "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--noface", type=Path, default=REPO.parent / "shared/testdata/faces/dlib_faces/_noface")
    parser.add_argument("--scans", type=Path, help="a tree whose photos are turned to play sideways scans")
    parser.add_argument("--scan-sample", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    detector = load_models("arcface").detector
    report = {"trees": [], "date": time.strftime("%Y-%m-%d")}
    for tree in args.trees:
        row = measure_tree(detector, tree)
        report["trees"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "no_face_photos"}), flush=True)
    report["no_people"] = measure_no_people(detector, args.noface)
    print(json.dumps(report["no_people"]), flush=True)
    if args.scans:
        report["scans"] = measure_scans(detector, args.scans, args.scan_sample)
        print(json.dumps(report["scans"]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
