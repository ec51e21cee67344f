#!/usr/bin/env python3
"""Computes the real dlib embeddings that the Swift tests' fake ML service replays.

Run once (output is committed): detect (HOG, one upsample) -> 5-point landmarks -> ResNet 128-d
descriptor, L2-normalised, for every photo under the given test-data sets. Paths are stored relative
to the faces root so the fixture works wherever `../shared` is checked out.

    python scripts/make-embedding-fixture.py ../shared/testdata/faces Tests/Fixtures/embeddings.json
"""
import base64
import json
import os
import sys

import dlib
import face_recognition_models
import numpy as np
from PIL import Image, ImageOps

SETS = ("face_recognition_examples", "dlib_faces", "lfw_small")
EXTS = {".jpg", ".jpeg", ".png"}


def main(root: str, out: str) -> None:
    models = os.path.join(os.path.dirname(face_recognition_models.__file__), "models")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
    encoder = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))
    photos = []
    for set_name in SETS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, set_name)):
            dirnames[:] = sorted(d for d in dirnames if d != "_meta")
            for name in sorted(filenames):
                if os.path.splitext(name)[1].lower() not in EXTS:
                    continue
                path = os.path.join(dirpath, name)
                image = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
                detections = []
                for rect in detector(image, 1):
                    shape = predictor(image, rect)
                    vector = np.asarray(encoder.compute_face_descriptor(image, shape), dtype="<f4")
                    vector /= np.linalg.norm(vector)
                    detections.append({
                        "bbox": [rect.left(), rect.top(), rect.right(), rect.bottom()],
                        "embedding": base64.b64encode(vector.tobytes()).decode(),
                    })
                photos.append({"path": os.path.relpath(path, root), "detections": detections})
                print(f"{len(photos):4d} {os.path.relpath(path, root)}: {len(detections)} faces", file=sys.stderr)
    with open(out, "w") as f:
        json.dump({"model": "dlib_face_recognition_resnet_model_v1", "photos": photos}, f, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
