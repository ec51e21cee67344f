"""Model interfaces. The pipeline only sees these; dlib lives in dlib_models.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass
class Detection:
    """A face box in the coordinates of the image given to the detector (floats, right/bottom inclusive)."""
    left: float
    top: float
    right: float
    bottom: float
    confidence: float

    def scaled(self, factor: float) -> "Detection":
        return Detection(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor,
                         self.confidence)


class FaceDetector(Protocol):
    name: str  # e.g. "hog"

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]: ...


class FaceEmbedder(Protocol):
    name: str  # e.g. "dlib-resnet-v1"
    aligner: str  # e.g. "5pt"
    dim: int

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, one row per face (aligned on `rgb`, full resolution)."""
        ...
