#!/usr/bin/env python3
"""Writes arcface_reference.json: the ArcFace embedding of one lfw_small photo computed the way insightface
itself does it (FaceAnalysis-free): cv2.imread (BGR), model_zoo.SCRFD with its own default session at its
default 640 x 640 letterbox, then ArcFaceONNX.get (norm_crop + cv2.dnn.blobFromImages with swapRB). From the
same landmarks, the service's embedder (PIL decode, its own sessions, RGB batch) must reproduce it
(tests/test_models.py).

    ml-service/.venv/bin/python ml-service/tests/data/make_arcface_reference.py [FACES_DIR]
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from insightface.app.common import Face
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.scrfd import SCRFD

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from photo_sorter_ml.models import verify_weights  # noqa: E402

PHOTO = "lfw_small/Tom_Hanks/Tom_Hanks_0001.jpg"


def main(faces: Path) -> None:
    files = {f.role: f.path for f in verify_weights("arcface")}
    img = cv2.imread(str(faces / PHOTO))
    detector = SCRFD(model_file=files["detector"])
    boxes, kps = detector.detect(img, input_size=(640, 640))
    centre = np.array([img.shape[1] / 2, img.shape[0] / 2])
    i = int(np.argmin([np.linalg.norm((b[:2] + b[2:4]) / 2 - centre) for b in boxes]))
    face = Face(bbox=boxes[i, :4], kps=kps[i], det_score=boxes[i, 4])
    embedding = ArcFaceONNX(model_file=files["embedding"]).get(img, face)
    embedding = embedding / np.linalg.norm(embedding)
    out = {"photo": PHOTO, "bbox": [round(float(x), 3) for x in boxes[i, :4]],
           "landmarks": [[round(float(x), 4) for x in point] for point in kps[i]],
           "produced_by": "make_arcface_reference.py: insightface 2.1, cv2.imread (BGR), SCRFD with its default "
                          "session at 640 x 640, ArcFaceONNX.get (norm_crop + cv2.dnn.blobFromImages, swapRB), L2",
           "embedding": [round(float(x), 7) for x in embedding]}
    lines = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in out.items())  # one key per line
    (HERE / "arcface_reference.json").write_text("{\n" + lines + "\n}\n")
    print(f"{PHOTO}: {len(boxes)} face(s); wrote {HERE / 'arcface_reference.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2].parent / "shared/testdata/faces")
