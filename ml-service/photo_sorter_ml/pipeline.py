"""The per-photo pipeline, run inside worker processes: decode (date, XMP face regions) -> detect -> name -> align ->
embed -> thumbnails.

Each worker process loads the models once (`init_worker`, the pool initializer) and then handles one
photo at a time. The result is a plain dict (picklable, raw bytes): not a wire shape. The main process, which holds
the person-dump cache, adds suggestions and turns it into `schemas.Analysis` (`service.Service.analysis`).
"""
from __future__ import annotations

import atexit
import logging
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from .config import Settings
from .decode import DecodeError, Decoded, decode, downscale_for_detection
from . import xmp_regions
from .face_finder import face_in_region, find_faces, turned
from .lifeline import watch_parent
from .models import Detection, FaceDetector, Models, load_models, model_spec, unit_rows
from .models.runtimes import DEFAULT_RUNTIME
from .taken_date import read_taken, taken_from
from .thumbnails import DEFAULT_PREVIEW_MAX_SIDE, DEFAULT_THUMBNAIL_SIZE, render

log = logging.getLogger("photo_sorter_ml.pipeline")


@dataclass
class PipelineParams:
    model: str
    model_dir: str | None
    detector: str
    upsample: int
    detect_max_side: int
    upsample_max_side: int
    max_pixels: int
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE  # 0: no thumbnails and no preview in analyses
    preview_max_side: int = DEFAULT_PREVIEW_MAX_SIDE
    runtime: str = DEFAULT_RUNTIME
    compile_cache: str | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> "PipelineParams":
        return cls(model=s.model, model_dir=s.model_dir, detector=s.detector, upsample=s.upsample,
                   detect_max_side=s.detect_max_side, upsample_max_side=s.upsample_max_side,
                   max_pixels=s.max_pixels, thumbnail_size=s.thumbnail_size, preview_max_side=s.preview_max_side,
                   runtime=s.runtime, compile_cache=s.compile_cache)

    def load_models(self) -> Models:
        return load_models(self.model, self.detector, self.model_dir, self.runtime, self.compile_cache)


_MODELS: Models | None = None
_PARAMS: PipelineParams | None = None
_LOAD_ERROR: str | None = None


def init_worker(params: dict) -> None:
    """Pool initializer: load the models once per process; exit with the ML service (no orphaned workers). A loading
    failure is kept for `ping` to raise: raised here, it would only break the pool, without the reason."""
    global _MODELS, _PARAMS, _LOAD_ERROR
    watch_parent(os.getppid(), lambda: os._exit(0), "ML pool worker")
    # A spawned worker that is told to stop ends with a full interpreter shutdown (module teardown, the runtimes'
    # destructors): 70-210 ms that the service's shutdown, and so `sort`'s exit, waits for. It has nothing left to
    # write by then (its results go through a pipe, written before the next job is taken), so it leaves at once.
    atexit.register(os._exit, 0)
    _PARAMS = PipelineParams(**params)
    try:
        _MODELS = _PARAMS.load_models()
    except Exception as e:
        _LOAD_ERROR = f"{type(e).__name__}: {e}"


def ping() -> dict:
    """Used at start-up to make sure every worker has its models loaded."""
    if _LOAD_ERROR:
        raise RuntimeError(_LOAD_ERROR)
    return {"pid": os.getpid(), "loaded": _MODELS is not None,
            "model_version": _MODELS.version if _MODELS else None}


def _clip_box(d, scale: float, width: int, height: int) -> list[int] | None:
    inv = 1.0 / scale
    x1 = int(round(d.left * inv))
    y1 = int(round(d.top * inv))
    x2 = int(round(d.right * inv))
    y2 = int(round(d.bottom * inv))
    x1, x2 = max(0, min(x1, width - 1)), max(0, min(x2, width - 1))
    y1, y2 = max(0, min(y1, height - 1)), max(0, min(y2, height - 1))
    if x1 >= x2 or y1 >= y2:
        return None
    return [x1, y1, x2, y2]


def _file_state(path: str) -> tuple | None:
    """(size, mtime, inode) of the file at `path`, None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _taken(img: Decoded, source: str | bytes, name: str | None) -> dict | None:
    """When the photo was taken, from the metadata decode() read with the pixels, or from the file's own tags where
    the decoder reads none (RAW)."""
    taken = read_taken(source, name) if img.exif is None else taken_from(img.exif, img.xmp)
    return asdict(taken) if taken else None


# A face the detector finds again inside a named region is the detected face it overlaps this much.
SAME_FACE_IOU = 0.5


def _name_faces(regions: xmp_regions.Regions, detector: FaceDetector, rgb: np.ndarray, quarter_turns: int,
                boxes: list[list[int]]) -> tuple[dict[int, str], list[tuple[Detection, list[int], float, str]], dict]:
    """Names from XMP regions for the detected faces `boxes` of the upright `rgb` (face index -> name); the named
    regions no detected face fills, as faces to add (face to embed, region box, confidence, name); the counts of the
    analysis' `xmp`. A region on no detected face is looked at again by the detector: a face found there is aligned
    on its landmarks (or, when it is an already detected face, named), else the region is embedded from its box."""
    height, width = rgb.shape[:2]
    region_boxes = [xmp_regions.pixel_box(xmp_regions.turned_box(r.box, quarter_turns), width, height)
                    for r in regions.named]
    matched = xmp_regions.match(region_boxes, boxes)
    names = {j: regions.named[i].name for i, j in matched.items()}
    drawn, ignored = [], regions.ignored
    for i, (region, box) in enumerate(zip(regions.named, region_boxes)):
        if i in matched:
            continue
        if box is None:  # outside the photo
            ignored += 1
            continue
        face = face_in_region(detector, rgb, box)
        if face is not None:
            found = [face.left, face.top, face.right, face.bottom]
            same = max(range(len(boxes)), key=lambda j: xmp_regions.iou(found, boxes[j]), default=None)
            if same is not None and xmp_regions.iou(found, boxes[same]) >= SAME_FACE_IOU:
                if same in names:  # a second region on a named face
                    ignored += 1
                else:
                    names[same] = region.name
                continue
        drawn.append((face or Detection(*box, 0.0), box, face.confidence if face else 0.0, region.name))
    counts = {"source": regions.source, "path": regions.path, "named_regions": len(regions.named),
              "matched": len(names), "drawn": len(drawn), "ignored": ignored}
    return names, drawn, counts


def analyse(source: str | bytes, name: str | None = None, models: Models | None = None,
            params: PipelineParams | None = None) -> dict:
    """Analyses one image. Never raises for problems with the file: returns {"ok": False, ...} instead; a file
    whose size, mtime or inode differs after decoding from before is such a problem (error_kind "changed")."""
    params = params or _PARAMS or PipelineParams.from_settings(Settings())
    models = models or _MODELS or params.load_models()
    t0 = time.perf_counter()
    before = _file_state(source) if isinstance(source, str) else None
    try:
        img = decode(source, params.max_pixels, name=name)
        taken = _taken(img, source, name)
        regions = xmp_regions.read_regions(source, img.xmp) if isinstance(source, str) else None
        error = None
    except DecodeError as e:
        error = e
    if before is not None and _file_state(source) != before:
        # The pixels may mix two versions (or the decode failed on a half-written file): neither is the photo.
        error = DecodeError("changed", f"file changed while being analysed (its size or modification time changed "
                                       f"during decoding); ingest it again once it is complete: {name or source}")
    if error is not None:
        return {"ok": False, "error_kind": error.kind, "error": error.message,
                "timings": {"decode_ms": (time.perf_counter() - t0) * 1000.0}}
    t1 = time.perf_counter()

    det_img, scale = downscale_for_detection(img.rgb, params.detect_max_side)
    upsample = params.upsample if max(det_img.shape[:2]) <= params.upsample_max_side else 0
    found = find_faces(models.detector, det_img, upsample, second_looks=model_spec(params.model).second_looks)
    # A photo found lying on its side is analysed, drawn and rendered upright from here on.
    rgb, det_img = turned(img.rgb, found.quarter_turns), turned(det_img, found.quarter_turns)
    width, height = int(rgb.shape[1]), int(rgb.shape[0])
    faces, boxes = [], []
    for d in found.faces:
        box = _clip_box(d, scale, width, height)
        if box is None:
            continue
        faces.append(d.scaled(1.0 / scale))
        boxes.append((box, d.confidence))
    names, xmp, detected = {}, None, len(boxes)
    if regions is not None:
        names, drawn, xmp = _name_faces(regions, models.detector, rgb, found.quarter_turns, [b for b, _ in boxes])
        for face, box, confidence, region_name in drawn:
            names[len(boxes)] = region_name
            faces.append(face)
            boxes.append((box, confidence))
    t2 = time.perf_counter()

    vectors, norms = unit_rows(models.embedder.embed(rgb, faces))
    t3 = time.perf_counter()

    # `embedding_norm`: the embedder's output length before normalising (ArcFace: low on an unsure face).
    detections = [
        {"bbox": box, "embedding": np.ascontiguousarray(vectors[i], dtype="<f4").tobytes(), "confidence": conf,
         "embedding_norm": float(norms[i])}
        for i, (box, conf) in enumerate(boxes)
    ]
    for i, xmp_name in names.items():
        detections[i]["xmp_name"] = xmp_name
    for det in detections[detected:]:  # the named regions no detected face filled
        det["source"] = "xmp_region"
    images: dict = {}
    if params.thumbnail_size > 0:
        try:
            images = render(rgb, [box for box, _ in boxes], params.thumbnail_size, params.preview_max_side,
                            base=det_img)
        except Exception:  # the analysis stands without its pictures
            log.exception("making thumbnails failed for %s", name or "image")
            images = {}
        for det, thumb in zip(detections, images.get("thumbnails", ())):
            det["thumbnail"] = thumb
    t4 = time.perf_counter()

    result = {
        "ok": True,
        "width": width,
        "height": height,
        "quarter_turns": found.quarter_turns,
        "taken": taken,
        "detections": detections,
        "detect": {"scale": scale, "upsample": upsample, "size": [int(det_img.shape[1]), int(det_img.shape[0])],
                   "look": found.look},
        "model_version": models.version,
        "timings": {
            "decode_ms": (t1 - t0) * 1000.0,
            "detect_ms": (t2 - t1) * 1000.0,
            "embed_ms": (t3 - t2) * 1000.0,
            "total_ms": (t4 - t0) * 1000.0,
        },
    }
    if xmp is not None:
        result["xmp"] = xmp
    if params.thumbnail_size > 0:
        result["timings"]["thumbs_ms"] = (t4 - t3) * 1000.0
    if images:
        result.update(preview=images["preview"], preview_width=images["preview_width"],
                      preview_height=images["preview_height"])
    return result


def _guarded(verb: str, name: str | None, run, **empty) -> dict:
    """Runs a pool job; a problem that is not the file's becomes a failure result, never a crash of the worker.
    `empty` are the keys a failure result carries besides ok/error (e.g. `timings`)."""
    try:
        return run()
    except MemoryError:
        return {"ok": False, "error_kind": "too_large", "error": f"out of memory {verb} {name or 'image'}", **empty}
    except Exception as e:  # a bug or a model error: still a result
        log.exception("failed %s %s", verb, name)
        return {"ok": False, "error_kind": "internal", "error": f"internal error: {type(e).__name__}: {e}", **empty}


def analyse_in_worker(source: str | bytes, name: str | None = None) -> dict:
    """Entry point for the process pool."""
    return _guarded("analysing", name, lambda: analyse(source, name), timings={})


def render_photo(source: str, name: str | None, boxes: list[list[int]], params: PipelineParams | None = None,
                 quarter_turns: int = 0) -> dict:
    """Decodes a photo as `analyse` does, turns it as its analysis did (`quarter_turns`, counter-clockwise) and
    makes its preview and one thumbnail per box (POST /render).

    Boxes are clipped to the image; a box with nothing inside the image is an error (kind "bad_box").
    The thumbnail size is the configured one, or the default when thumbnails are off in analyses: a
    render was asked for explicitly. Never raises for problems with the file: {"ok": False, ...}.
    """
    params = params or _PARAMS or PipelineParams.from_settings(Settings())
    t0 = time.perf_counter()
    try:
        img = decode(source, params.max_pixels, name=name)
    except DecodeError as e:
        return {"ok": False, "error_kind": e.kind, "error": e.message}
    rgb = turned(img.rgb, quarter_turns)
    width, height = int(rgb.shape[1]), int(rgb.shape[0])
    t1 = time.perf_counter()
    clipped = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        c = [max(0, min(x1, width)), max(0, min(y1, height)), max(0, min(x2, width)), max(0, min(y2, height))]
        if c[0] >= c[2] or c[1] >= c[3]:
            return {"ok": False, "error_kind": "bad_box",
                    "error": f"box {i} {[x1, y1, x2, y2]} lies outside the {width}x{height} image"}
        clipped.append(c)
    out = render(rgb, clipped, params.thumbnail_size or DEFAULT_THUMBNAIL_SIZE, params.preview_max_side)
    t2 = time.perf_counter()
    return {"ok": True, "width": width, "height": height, **out,
            "timings": {"decode_ms": (t1 - t0) * 1000.0, "thumbs_ms": (t2 - t1) * 1000.0}}


def render_in_worker(source: str, name: str | None, boxes: list[list[int]], quarter_turns: int = 0) -> dict:
    """Entry point for the process pool (POST /render)."""
    return _guarded("rendering", name, lambda: render_photo(source, name, boxes, quarter_turns=quarter_turns))


def params_dict(p: PipelineParams) -> dict:
    return asdict(p)
