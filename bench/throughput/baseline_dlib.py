#!/usr/bin/env python3
"""Single-process baseline: the same dlib models, one photo at a time (what `face_recognition` does).

For each photo: load it full-resolution as RGB (PIL, like face_recognition.load_image_file), HOG face
detector with one upsample, 5-point landmarks, ResNet 128-d descriptor (no jitter). Run with the ML
service's venv, which has dlib and the model files:

    ml-service/.venv/bin/python bench/throughput/baseline_dlib.py --list photos.txt [--json out.json]

Prints (and optionally writes) {"photos", "faces", "errors", "seconds", "model_load_seconds"}.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

from baseline_io import read_list, report


def model_paths() -> tuple[str, str]:
    """(5-point landmark model, ResNet model) from $PHOTO_SORTER_ML_MODELS_DIR or face_recognition_models."""
    names = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
    dirs = []
    if os.environ.get("PHOTO_SORTER_ML_MODELS_DIR"):
        dirs.append(os.environ["PHOTO_SORTER_ML_MODELS_DIR"])
    try:
        import face_recognition_models  # type: ignore
        dirs.append(os.path.join(os.path.dirname(face_recognition_models.__file__), "models"))
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    dirs += glob.glob(os.path.join(here, "..", "..", "ml-service", "**", "models"), recursive=True)
    for d in dirs:
        paths = tuple(os.path.join(d, n) for n in names)
        if all(os.path.isfile(p) for p in paths):
            return paths  # type: ignore[return-value]
    sys.exit(f"dlib model files {names} not found (looked in {dirs}); set PHOTO_SORTER_ML_MODELS_DIR")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", required=True, help="file with one photo path per line")
    ap.add_argument("--json", help="write the result here too")
    args = ap.parse_args()

    import dlib
    import numpy as np
    from PIL import Image

    paths = read_list(args.list)
    t0 = time.perf_counter()
    landmarks_path, resnet_path = model_paths()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(landmarks_path)
    encoder = dlib.face_recognition_model_v1(resnet_path)
    load_s = time.perf_counter() - t0

    faces = errors = 0
    t1 = time.perf_counter()
    for p in paths:
        try:
            img = np.array(Image.open(p).convert("RGB"))
            for rect in detector(img, 1):
                shape = predictor(img, rect)
                np.array(encoder.compute_face_descriptor(img, shape, 1))
                faces += 1
        except Exception as e:  # noqa: BLE001 - count and go on, like a batch job would
            errors += 1
            print(f"baseline: {p}: {e}", file=sys.stderr)
    seconds = time.perf_counter() - t1
    out = {"photos": len(paths), "faces": faces, "errors": errors, "seconds": round(seconds, 3),
           "model_load_seconds": round(load_s, 3), "dlib": getattr(dlib, "__version__", "?")}
    report(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
