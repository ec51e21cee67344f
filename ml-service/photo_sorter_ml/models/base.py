"""Model interfaces. The pipeline only sees these; the models live in arcface_models.py and dlib_models.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass
class Detection:
    """A face box in the coordinates of the image given to the detector (floats, right/bottom inclusive).

    `landmarks` (5 x 2: eyes, nose tip, mouth corners) come with detectors that find them (SCRFD); the ArcFace
    embedder aligns on them (on a face without them, such as a box drawn by hand, from the box), the dlib embedder
    finds its own and ignores them.
    """
    left: float
    top: float
    right: float
    bottom: float
    confidence: float
    landmarks: np.ndarray | None = None

    def scaled(self, factor: float) -> "Detection":
        return Detection(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor,
                         self.confidence, None if self.landmarks is None else self.landmarks * factor)

    def shifted(self, dx: float, dy: float) -> "Detection":
        return Detection(self.left + dx, self.top + dy, self.right + dx, self.bottom + dy, self.confidence,
                         None if self.landmarks is None else self.landmarks + np.array([dx, dy], np.float32))


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        """Faces in `rgb` (H x W x 3 uint8); `upsample` doubles the scanned size per step (small photos)."""
        ...


class FaceEmbedder(Protocol):
    dim: int

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, one row per face (aligned on `rgb`, full resolution)."""
        ...
