#!/usr/bin/env python3
"""Records the faces the ML service's own pipeline finds in labelled photo trees, for simulate_rules.py.

Runs `photo_sorter_ml.pipeline` (decode -> detect -> align -> embed, the code the service runs) in a process
pool over every photo of the given trees and writes, per photo, its path relative to the faces root
(`<set>/<identity>/<file>`) and its detections (box + base64 float32 embedding) — the format of
`Tests/Fixtures/embeddings.json`.

    ml-service/.venv/bin/python bench/accuracy/record_embeddings.py --model arcface \
        ../shared/testdata/faces/lfw_small ../shared/testdata/lfw_scale --out bench/out/embeddings-arcface.json

A root's folder name is the set name simulate_rules.py's `--sets` takes (`../shared/testdata/hard_faces/fgnet_dev`
-> `fgnet_dev`). Each detection also carries the detector's `confidence`, and with `--norms` the embedding's length
before L2 normalisation (`norm`, the pipeline's `embedding_norm`; for ArcFace a face-quality signal); photos carry the
detection `look`.
Thumbnails are not rendered (PHOTO_SORTER_ML_THUMBNAIL_SIZE=0 unless set): they do not change the faces.
"""
from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


EXTS = {".jpg", ".jpeg", ".png"}


def photos_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTS and "_meta" not in p.parts)


def read_recording(path: Path, model_version: str, folder_hint: str) -> dict:
    """A recording this script wrote, checked to hold `model_version`; exits with the command that records it
    (for `folder_hint`) when it is missing."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: record it with\n  ml-service/.venv/bin/python bench/accuracy/record_embeddings.py "
                         f"--model arcface {folder_hint} --out {path}")
    data = json.loads(path.read_text())
    if data.get("model") != model_version:
        raise SystemExit(f"{path} holds model {data.get('model')!r}, expected {model_version!r}")
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", type=Path, nargs="+", help="labelled trees <set>/<identity>/<photo>")
    ap.add_argument("--model", default="arcface", help="arcface or dlib (PHOTO_SORTER_ML_MODEL)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--norms", action="store_true", help="also record each embedding's length before L2 normalisation")
    args = ap.parse_args()

    os.environ["PHOTO_SORTER_ML_MODEL"] = args.model
    os.environ.setdefault("PHOTO_SORTER_ML_THUMBNAIL_SIZE", "0")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from photo_sorter_ml.config import Settings
    from photo_sorter_ml.pipeline import PipelineParams, analyse_in_worker, init_worker, params_dict

    params = params_dict(PipelineParams.from_settings(Settings.from_env()))
    jobs = [(root.resolve(), path) for root in args.roots for path in photos_of(root.resolve())]
    started = time.perf_counter()
    photos, model_version = [], None
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=init_worker, initargs=(params,)) as pool:
        results = pool.map(analyse_in_worker, [str(p) for _, p in jobs], [p.name for _, p in jobs], chunksize=8)
        for (root, path), result in zip(jobs, results):
            if not result.get("ok"):
                print(f"failed: {path}: {result.get('error')}", file=sys.stderr)
                continue
            model_version = result["model_version"]
            photos.append({
                "path": str(path.relative_to(root.parent)),
                "width": result["width"], "height": result["height"],
                "look": result.get("detect", {}).get("look"),
                "detections": [{"bbox": d["bbox"], "embedding": base64.b64encode(d["embedding"]).decode(),
                                "confidence": d.get("confidence"),
                                **({"norm": d["embedding_norm"]} if args.norms and "embedding_norm" in d else {})}
                               for d in result["detections"]],
            })
            if len(photos) % 500 == 0:
                print(f"{len(photos)}/{len(jobs)} photos", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": model_version, "photos": photos}, separators=(",", ":")))
    print(f"{len(photos)} photos, {sum(len(p['detections']) for p in photos)} faces, {model_version}, "
          f"{time.perf_counter() - started:.0f}s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
