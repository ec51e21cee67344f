#!/usr/bin/env python3
"""How face-quality signals relate to identity errors, on faces recorded by record_embeddings.py (--norms).

For each labelled face (the detection nearest the photo centre) of an identity with at least two photos with a
face, its nearest other labelled face of the same set (cosine, another photo) is looked up; an *error* is a
nearest face of another identity. Faces are binned by the box's short side (px, in the photo), the detector's
confidence and the ArcFace embedding's length before L2 normalisation; each bin prints its faces and error rate.
Extra detections (not nearest the centre) are counted per bin too: in the head-crop sets (cfp_dev, fgnet_dev) they
are mostly false detections, the junk a floor should keep from founding persons. `--floor SIGNAL=VALUE` prints how
many labelled and extra faces of each set fall below that floor.

    ml-service/.venv/bin/python bench/accuracy/face_quality.py bench/out/embeddings-arcface-family.json \\
        --sets lfw_small lfw_scale cfp_dev fgnet_dev --floor norm=15 --floor short_side=32
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate_rules import central_face  # noqa: E402

BINS = {
    "short_side": [0, 24, 32, 48, 64, 96, 128, 256],
    "confidence": [0, 0.5, 0.6, 0.7, 0.8, 0.9],
    "norm": [0, 12, 15, 18, 21, 24, 27],
}


def signals(photo: dict, detection: dict) -> dict:
    x1, y1, x2, y2 = detection["bbox"]
    return {"short_side": min(x2 - x1, y2 - y1), "confidence": detection.get("confidence"), "norm": detection.get("norm")}


def nearest_other_errors(embeddings: np.ndarray, labels: list[str]) -> np.ndarray:
    """Per row: True when its nearest other row (cosine on unit vectors) has another label."""
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argmax(sim, axis=1)
    labels_arr = np.asarray(labels)
    return labels_arr[nearest] != labels_arr


def bin_table(values: list[float | None], flags: list[bool], edges: list[float]) -> list[tuple[str, int, float]]:
    """(bin name, count, share of flags) per bin [edge_i, edge_i+1), the last open-ended; None values skipped."""
    out = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        picked = [f for v, f in zip(values, flags) if v is not None and v >= lo and (hi is None or v < hi)]
        name = f"{lo:g}–{hi:g}" if hi is not None else f"≥{lo:g}"
        out.append((name, len(picked), (sum(picked) / len(picked)) if picked else float("nan")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings", type=Path)
    ap.add_argument("--sets", nargs="+", required=True)
    ap.add_argument("--floor", action="append", default=[], help="SIGNAL=VALUE, e.g. norm=15 (repeatable)")
    args = ap.parse_args()
    recorded = json.loads(args.embeddings.read_text())
    floors = [(f.split("=")[0], float(f.split("=")[1])) for f in args.floor]
    for set_name in args.sets:
        photos = [p for p in recorded["photos"] if p["path"].split("/")[0] == set_name and p["detections"]]
        per_identity = Counter(p["path"].split("/")[-2] for p in photos)
        kept = [p for p in photos if per_identity[p["path"].split("/")[-2]] >= 2]
        centrals = [p["detections"][central_face(p)] for p in kept]
        vectors = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in centrals], dtype=np.float64)
        labels = [p["path"].split("/")[-2] for p in kept]
        errors = nearest_other_errors(vectors, labels).tolist()
        sig = [signals(p, d) for p, d in zip(kept, centrals)]
        extras = [signals(p, d) for p in photos for i, d in enumerate(p["detections"]) if i != central_face(p)]
        print(f"\n### {set_name}: {len(kept)} labelled faces of identities with ≥2 photos, nearest-other-face error "
              f"{np.mean(errors):.3f}; {len(extras)} extra detections")
        for name, edges in BINS.items():
            values = [s[name] for s in sig]
            if all(v is None for v in values):
                continue
            extra_counts = [n for _, n, _ in bin_table([s[name] for s in extras], [False] * len(extras), edges)]
            print(f"\n| {name} | labelled faces | NN error | extra detections |\n|---|---|---|---|")
            for (bin_name, n, share), ne in zip(bin_table(values, errors, edges), extra_counts):
                print(f"| {bin_name} | {n} | {share:.3f} | {ne} |" if n else f"| {bin_name} | 0 | – | {ne} |")
        for name, value in floors:
            below = [s[name] is not None and s[name] < value for s in sig]
            all_labelled = [signals(p, p["detections"][central_face(p)]) for p in photos]
            below_all = sum(s[name] is not None and s[name] < value for s in all_labelled)
            below_extra = sum(s[name] is not None and s[name] < value for s in extras)
            err_below = [e for e, b in zip(errors, below) if b]
            print(f"floor {name} < {value:g}: {below_all} of {len(all_labelled)} labelled faces "
                  f"(NN error among the scored ones {np.mean(err_below) if err_below else float('nan'):.3f}), "
                  f"{below_extra} of {len(extras)} extra detections")


if __name__ == "__main__":
    main()
