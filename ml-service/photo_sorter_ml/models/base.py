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
        """(n, dim) float32, the model's raw output, one row per face (aligned on `rgb`, full resolution); not
        normalised: `unit_rows` makes the unit vectors that are compared and sent, and keeps each row's length
        (ArcFace: low on an unsure face)."""
        ...


def unit_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`raw` (n, dim) embeddings as L2-normalised little-endian float32 rows, and each row's L2 norm before
    normalising (float32, n). A zero row stays zero (its norm 0 is divided as 1)."""
    vectors = np.asarray(raw, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    return (vectors / np.where(norms == 0, 1.0, norms)[:, None]).astype("<f4"), norms.astype(np.float32)
