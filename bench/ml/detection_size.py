#!/usr/bin/env python3
"""The detection copy's longest side (PHOTO_SORTER_ML_DETECT_MAX_SIDE): which faces the whole pipeline still finds,
and the detector's time, per size.

    ml-service/.venv/bin/python bench/ml/detection_size.py --sizes 640 512 416 320 [--json OUT]

Runs `pipeline.analyse` (decode, detection with its second looks, embedding, thumbnails) in this process, one
thread, default ArcFace configuration except the size, on
- dlib_faces/_group: the 43 hand-labelled faces (found = a detection at IoU >= 0.3, as tests/test_accuracy.py
  counts them), detections matching no label, and the faces in bald_guys.jpg (1986 x 1545, small faces);
- dlib_faces/_noface: faces found (every one false);
- each `--tree` (default hard_faces/fgnet_dev and cfp_dev: close-ups, profiles): photos with no face found;
- photos of ../shared/testdata/faces longer than the smallest size (the only ones a smaller copy changes): the
  detection step's ms per photo (`timings.detect_ms`, second looks included).
Only photos longer than a size are detected differently at that size: 250 px LFW crops are not affected.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ml-service"))
sys.path.insert(0, str(REPO / "ml-service/tests"))

from photo_sorter_ml.config import Settings  # noqa: E402
from photo_sorter_ml.decode import decode  # noqa: E402
from photo_sorter_ml.pipeline import PipelineParams, analyse  # noqa: E402
from photo_sorter_ml.xmp_regions import iou  # noqa: E402
from test_accuracy import labelled_boxes  # noqa: E402  (the labelled boxes of dlib_faces, as the test reads them)

EXTS = {".jpg", ".jpeg", ".png"}
FACES = REPO.parent / "shared/testdata/faces"
HARD = REPO.parent / "shared/testdata/hard_faces"


def photos_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTS)


def measure(size: int, trees: list[Path], large: list[Path]) -> dict:
    params = PipelineParams.from_settings(Settings(model="arcface", detect_max_side=size, thumbnail_size=0))
    models = params.load_models()

    def faces_of(path: Path) -> list[list[int]]:
        r = analyse(str(path), path.name, models, params)
        return [d["bbox"] for d in r.get("detections") or []]

    truth = labelled_boxes(FACES)
    found = total = unmatched = 0
    for name, boxes in truth.items():
        detections = faces_of(FACES / "dlib_faces/_group" / name)
        used = set()
        for box in boxes:
            scores = [(iou(box, d), j) for j, d in enumerate(detections) if j not in used]
            best, j = max(scores, default=(0.0, None))
            total += 1
            if best >= 0.3:
                found += 1
                used.add(j)
        unmatched += len(detections) - len(used)
    row = {"size": size, "labelled_found": found, "labelled": total, "unmatched_detections": unmatched,
           "bald_guys_faces": len(faces_of(FACES / "dlib_faces/_group/bald_guys.jpg")),
           "noface_faces": sum(len(faces_of(p)) for p in photos_in(FACES / "dlib_faces/_noface"))}
    for tree in trees:
        paths = photos_in(tree)
        row[f"{tree.name}_no_face"] = sum(1 for p in paths if not faces_of(p))
        row[f"{tree.name}_photos"] = len(paths)
    detect_ms = [analyse(str(p), p.name, models, params)["timings"]["detect_ms"] for p in large]
    row["large_photos"] = len(large)
    row["large_detect_ms_mean"] = sum(detect_ms) / max(1, len(detect_ms))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[640, 512, 416, 320])
    ap.add_argument("--tree", type=Path, action="append", help="labelled tree where every photo shows a face "
                    "(repeatable; default hard_faces/fgnet_dev and cfp_dev)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    trees = args.tree or [HARD / "fgnet_dev", HARD / "cfp_dev"]
    smallest = min(args.sizes)
    large = [p for p in photos_in(FACES) if max(decode(str(p), 100_000_000).rgb.shape[:2]) > smallest]
    rows = []
    for size in args.sizes:
        rows.append(measure(size, trees, large))
        print(json.dumps(rows[-1]), flush=True)
    keys = [k for k in rows[0] if k != "size"]
    print("\n| measured | " + " | ".join(str(r["size"]) for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) else str(r[k]) for r in rows) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
