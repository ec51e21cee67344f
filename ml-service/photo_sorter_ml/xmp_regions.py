"""Face names other tools stored as XMP face regions: where to find them, how to read them, which face each one names.

Sources, first with a region wins: the sidecar `photo.jpg.xmp` (digiKam, darktable), `photo.xmp` / `photo.XMP`
(Lightroom), then the packet embedded in the photo (decode.Decoded.xmp). Formats: MWG regions (Lightroom, digiKam,
Picasa, Apple), else Microsoft Photo regions (Windows Photo Gallery; digiKam writes both). Boxes are normalised to the
photo as displayed, EXIF orientation applied, as those tools and photo-sorter's writer store them.

Parsing is python-xmp-toolkit's (exempi, the Adobe XMP Toolkit). A packet that names neither region namespace is not
parsed at all; a garbled, oversized or too deeply nested one is logged and read as having no regions.
"""
from __future__ import annotations

import logging
import os
import xml.parsers.expat
from dataclasses import dataclass
from typing import Literal

from libxmp import XMPError, XMPMeta

log = logging.getLogger("photo_sorter_ml.xmp_regions")

MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
ST_AREA = "http://ns.adobe.com/xmp/sType/Area#"
ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
MP = "http://ns.microsoft.com/photo/1.2/"
MPRI = "http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
MPREG = "http://ns.microsoft.com/photo/1.2/t/Region#"
# Exempi's own prefix for each namespace (registering returns the one it uses), for its path expressions.
_P = {ns: XMPMeta.register_namespace(ns, prefix).rstrip(":") for ns, prefix in
      ((MWG_RS, "mwg-rs"), (ST_AREA, "stArea"), (ST_DIM, "stDim"), (MP, "MP"), (MPRI, "MPRI"), (MPREG, "MPReg"))}
_MWG_LIST = f"{_P[MWG_RS]}:Regions/{_P[MWG_RS]}:RegionList"
_MP_LIST = f"{_P[MP]}:RegionInfo/{_P[MPRI]}:Regions"

# A packet without one of these namespace URIs has no regions: camera packets are not parsed.
_MARKERS = (MWG_RS.encode(), MPRI.encode())
# Real packets are kilobytes (a JPEG segment holds 64 KiB); exempi crashes the process on nesting some 20,000 deep
# (measured), so deeper packets than any region list needs (about 8 levels) are refused before it sees them.
MAX_PACKET_BYTES = 4 << 20
MAX_DEPTH = 64
MAX_REGIONS = 256  # read of one list; a photo has a few dozen faces at most


@dataclass(frozen=True)
class NamedRegion:
    """A named face region: `box` (x1, y1, x2, y2) normalised to the photo as displayed."""
    name: str
    box: tuple[float, float, float, float]
    source: Literal["sidecar", "embedded"]
    format: Literal["mwg", "mp"]


@dataclass
class Regions:
    """The face regions of the first XMP source that had regions. `ignored`: unnamed, non-face or unusable ones."""
    source: Literal["sidecar", "embedded"]
    path: str | None  # the sidecar's
    named: list[NamedRegion]
    ignored: int


def sidecars(path: str) -> list[str]:
    """Candidate sidecar names of the photo at `path`, in order of precedence."""
    stem = os.path.splitext(path)[0]
    return list(dict.fromkeys([path + ".xmp", stem + ".xmp", stem + ".XMP"]))


def read_regions(path: str, embedded: bytes | None) -> Regions | None:
    """The face regions of the photo at `path` (its embedded packet: `embedded`); None when no source has any.
    One open attempt per sidecar name; never raises for a bad sidecar or packet (a warning is logged)."""
    for candidate in sidecars(path):
        try:
            with open(candidate, "rb") as f:
                packet = f.read(MAX_PACKET_BYTES + 1)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("cannot read XMP sidecar %s: %s", candidate, e.strerror or e)
            continue
        regions = regions_in(packet, "sidecar", candidate)
        if regions is not None:
            return regions
    return regions_in(embedded, "embedded", path) if embedded else None


def regions_in(packet: bytes, source: Literal["sidecar", "embedded"], where: str) -> Regions | None:
    """The regions of one XMP packet (`where` names it in warnings); None when it has none or cannot be read."""
    if not any(marker in packet for marker in _MARKERS):
        return None
    if len(packet) > MAX_PACKET_BYTES:
        log.warning("XMP of %s ignored: over %d bytes", where, MAX_PACKET_BYTES)
        return None
    packet = packet.strip(b"\x00 \t\r\n").removeprefix(b"\xef\xbb\xbf")
    problem = _unsafe(packet)
    if problem:
        log.warning("XMP of %s ignored: %s", where, problem)
        return None
    meta = XMPMeta()
    try:
        meta.parse_from_str(packet.decode("utf-8", "replace"))
    except XMPError as e:
        log.warning("XMP of %s ignored: exempi cannot parse it: %s", where, e)
        return None
    named, ignored = _mwg(meta, source)
    if not named and not ignored:
        named, ignored = _mp(meta, source)
    if not named and not ignored:
        return None
    return Regions(source, where if source == "sidecar" else None, named, ignored)


def _unsafe(packet: bytes) -> str | None:
    """Why exempi must not be given `packet` (a DTD, nesting deeper than MAX_DEPTH, not XML), or None."""
    depth = 0

    def start(*_):
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} elements")

    def end(_):
        nonlocal depth
        depth -= 1

    def doctype(*_):
        raise ValueError("has a DTD")

    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler, parser.StartDoctypeDeclHandler = start, end, doctype
    try:
        parser.Parse(packet, True)
    except ValueError as e:
        return str(e)
    except xml.parsers.expat.ExpatError as e:
        return f"not well-formed XML: {e}"
    return None


def _get(meta: XMPMeta, ns: str, path: str) -> str | None:
    try:
        return meta.get_property(ns, path)
    except XMPError:  # exempi's answer for a property that is not there
        return None


def _number(meta: XMPMeta, ns: str, path: str) -> float | None:
    try:
        return float(_get(meta, ns, path) or "")
    except ValueError:
        return None


def _mwg(meta: XMPMeta, source) -> tuple[list[NamedRegion], int]:
    rs, area, dim = _P[MWG_RS], _P[ST_AREA], _P[ST_DIM]
    count = min(meta.count_array_items(MWG_RS, _MWG_LIST), MAX_REGIONS)
    applied_w = _number(meta, MWG_RS, f"{rs}:Regions/{rs}:AppliedToDimensions/{dim}:w")
    applied_h = _number(meta, MWG_RS, f"{rs}:Regions/{rs}:AppliedToDimensions/{dim}:h")
    named, ignored = [], 0
    for i in range(1, count + 1):
        item = f"{_MWG_LIST}[{i}]"
        name = (_get(meta, MWG_RS, f"{item}/{rs}:Name") or "").strip()
        kind = (_get(meta, MWG_RS, f"{item}/{rs}:Type") or "Face").strip()
        x, y, w, h = (_number(meta, MWG_RS, f"{item}/{rs}:Area/{area}:{k}") for k in "xywh")
        unit = (_get(meta, MWG_RS, f"{item}/{rs}:Area/{area}:unit") or "normalized").strip().lower()
        if unit == "pixel" and applied_w and applied_h and None not in (x, y, w, h):
            x, y, w, h = x / applied_w, y / applied_h, w / applied_w, h / applied_h
        elif unit != "normalized":
            x = None
        if not name or kind.lower() != "face" or None in (x, y, w, h) or w <= 0 or h <= 0:
            ignored += 1
            continue
        named.append(NamedRegion(name, (x - w / 2, y - h / 2, x + w / 2, y + h / 2), source, "mwg"))
    return named, ignored


def _mp(meta: XMPMeta, source) -> tuple[list[NamedRegion], int]:
    reg = _P[MPREG]
    named, ignored = [], 0
    for i in range(1, min(meta.count_array_items(MP, _MP_LIST), MAX_REGIONS) + 1):
        item = f"{_MP_LIST}[{i}]"
        name = (_get(meta, MP, f"{item}/{reg}:PersonDisplayName") or "").strip()
        try:
            x, y, w, h = (float(v) for v in (_get(meta, MP, f"{item}/{reg}:Rectangle") or "").split(","))
        except ValueError:
            x = y = w = h = 0.0
        if not name or w <= 0 or h <= 0:
            ignored += 1
            continue
        named.append(NamedRegion(name, (x, y, x + w, y + h), source, "mp"))
    return named, ignored


def turned_box(box: tuple[float, float, float, float], quarter_turns: int) -> tuple[float, float, float, float]:
    """A normalised box of the displayed photo in that photo turned counter-clockwise by `quarter_turns`
    (face_finder.turned): one turn takes the point (x, y) to (y, 1 - x)."""
    x1, y1, x2, y2 = box
    for _ in range(quarter_turns % 4):
        x1, y1, x2, y2 = y1, 1.0 - x2, y2, 1.0 - x1
    return x1, y1, x2, y2


def pixel_box(box: tuple[float, float, float, float], width: int, height: int) -> list[int] | None:
    """A normalised box in pixels, clipped to the image as the detections' boxes are; None when nothing is left."""
    x1, x2 = (max(0, min(round(v * width), width - 1)) for v in (box[0], box[2]))
    y1, y2 = (max(0, min(round(v * height), height - 1)) for v in (box[1], box[3]))
    return [x1, y1, x2, y2] if x1 < x2 and y1 < y2 else None


def iou(a, b) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# People draw looser boxes than the detector. On dlib_faces' 43 hand-drawn face boxes (_meta/dlib_faces/*.xml),
# SCRFD's box has IoU 0.60-0.71 (5th percentile-median) with the face's own box; drawn 1.5x as wide and high around the
# same centre, every box still has IoU >= 0.37 with its face, while the nearest other face in these group photos
# never reaches 0.16. Looser regions (1.75x and more) fall under 0.3: they get a second chance when the detector,
# asked again inside the region (face_finder.face_in_region), finds the face already detected.
MATCH_IOU = 0.3


def match(regions: list[list[int] | None], faces: list[list[int]], threshold: float = MATCH_IOU) -> dict[int, int]:
    """Region index -> face index, one to one, the pairs with the largest IoU (>= threshold) first."""
    pairs = sorted(((iou(r, f), i, j) for i, r in enumerate(regions) if r is not None
                    for j, f in enumerate(faces)), reverse=True)
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in matched and j not in taken:
            matched[i] = j
            taken.add(j)
    return matched
