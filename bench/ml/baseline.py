#!/usr/bin/env python3
"""Plain face_recognition-style baseline: one process, one photo at a time, full-resolution decode,
HOG with one upsample, 5-point landmarks and ResNet descriptor per face. Runs under whatever dlib the
interpreter has (the prebuilt dlib-bin wheel, or the source build for comparison).

    python baseline.py OUT.json PHOTO...
"""
import json
import os
import sys
import time

import dlib
import face_recognition_models
import numpy as np
from PIL import Image, ImageOps


def main(out, paths):
    models = os.path.join(os.path.dirname(face_recognition_models.__file__), "models")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
    encoder = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))
    rows = []
    t_start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        image = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        t1 = time.perf_counter()
        rects = detector(image, 1)
        t2 = time.perf_counter()
        for rect in rects:
            shape = predictor(image, rect)
            v = np.asarray(encoder.compute_face_descriptor(image, shape), dtype=np.float32)
            v /= np.linalg.norm(v)
        t3 = time.perf_counter()
        rows.append({"path": path, "faces": len(rects), "decode_ms": (t1 - t0) * 1e3, "detect_ms": (t2 - t1) * 1e3,
                     "embed_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3})
    wall = time.perf_counter() - t_start
    info = {"dlib": dlib.__version__, "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
            "avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)), "processes": 1}
    with open(out, "w") as f:
        json.dump({"wall_s": wall, "rows": rows, "info": info}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
