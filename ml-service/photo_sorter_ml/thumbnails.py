"""Small JPEGs made from an already decoded photo: a square thumbnail per face and a preview of the whole photo.

The Swift service shows them on its people page without reading the photo again: the worker still holds the
orientation-corrected full-resolution RGB array after the analysis, so making them here costs a few
milliseconds instead of another decode. Pure functions (numpy + Pillow); boxes are `[x1, y1, x2, y2]` in
that array's pixel space, the same as the detections' `bbox`.

Speed: `Image.fromarray` on a 24 MP array alone costs ~40 ms (Pillow unpacks RGB into 4-byte pixels) and
`reduce()` as much again. `_shrink_to` first box-averages by a power of two in numpy (vertical pass, a
shift instead of a division) and lets Pillow `reduce()` the already 8x shorter image horizontally; only
the last step (ratio < 2) is a real LANCZOS resize. Results equal `Image.reduce` to within one level.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Defaults of PHOTO_SORTER_ML_THUMBNAIL_SIZE / PHOTO_SORTER_ML_PREVIEW_MAX_SIDE (config.py). 112 px is the
# size of the ArcFace face chip and twice a 56 px avatar (sharp on high-DPI screens), ~4 KB as a JPEG;
# 640 px fills a web page column and is the ArcFace detection size, ~40-60 KB as a JPEG.
DEFAULT_THUMBNAIL_SIZE = 112
DEFAULT_PREVIEW_MAX_SIDE = 640

# The thumbnail square is this many times the face box's longer side: the box is tight around the face
# (brows to chin), so 1.4x adds hair, ears and a bit of neck, which people recognise a face by.
FACE_CONTEXT = 1.4
PAD_RGB = (128, 128, 128)  # neutral grey where the square leaves the photo
THUMBNAIL_QUALITY = 85
PREVIEW_QUALITY = 80
_MAX_SHIFT = 8  # box-average factor <= 256, so a sum of 256 uint8 values fits uint16


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    # A fresh image has no EXIF or ICC data to copy; optimize=False: a second Huffman pass costs more
    # time than the ~5% it saves on images this small.
    im.save(buf, "JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def _shrink_to(region: np.ndarray, out_w: int, out_h: int) -> Image.Image:
    """An H x W x 3 uint8 array (a view is fine) -> a Pillow RGB image of exactly out_w x out_h.

    Downscales by a power-of-two box average first (numpy vertically, Pillow horizontally), so the
    LANCZOS resize that follows only works on an image at most 2x larger than the result.
    """
    h, w = region.shape[:2]
    ratio = min(w / out_w, h / out_h)
    shift = min(_MAX_SHIFT, int(ratio).bit_length() - 1) if ratio >= 2 else 0
    if shift:
        f = 1 << shift
        hq, wq = h // f, w // f
        # Drop the remainder (< f pixels) evenly from both sides: under half an output pixel.
        y0, x0 = (h - hq * f) // 2, (w - wq * f) // 2
        a = region[y0:y0 + hq * f, x0:x0 + wq * f]
        v = a.reshape(hq, f, wq * f * 3).sum(axis=1, dtype=np.uint16)
        v += f >> 1
        v >>= shift
        im = Image.fromarray(v.astype(np.uint8).reshape(hq, wq * f, 3)).reduce((f, 1))
    else:
        im = Image.fromarray(np.ascontiguousarray(region))
    if im.size != (out_w, out_h):
        im = im.resize((out_w, out_h), Image.LANCZOS)
    return im


def _slide_into(start: int, side: int, extent: int, lo: float, hi: float) -> int:
    """Moves a square's start so the square lies inside [0, extent) when it fits, never uncovering [lo, hi)."""
    if side > extent or lo < 0 or hi > extent:
        return start
    return min(max(start, 0), extent - side)


def face_thumbnail(rgb: np.ndarray, box: list[int], size: int = DEFAULT_THUMBNAIL_SIZE) -> bytes:
    """A size x size JPEG (quality 85) of the face in `box`, centred, with some context around it.

    The square's side is FACE_CONTEXT (1.4) x the box's longer side, so every face of a page has the same
    framing whatever the box's aspect. A face near an edge keeps a full picture: the square slides into the
    photo (the face is then off-centre) and shrinks, down to the face itself, where the photo is smaller than
    it. Only what still lies outside (a face larger than the photo's short side, a box outside the photo) is
    neutral grey; the thumbnail is always size x size, never an error.
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, got {size}")
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    longer = max(x2 - x1, y2 - y1, 1.0)
    side = max(1, round(max(longer, min(FACE_CONTEXT * longer, width, height))))
    sx0 = _slide_into(round((x1 + x2 - side) / 2.0), side, width, x1, x2)
    sy0 = _slide_into(round((y1 + y2 - side) / 2.0), side, height, y1, y2)
    ix0, iy0 = max(0, sx0), max(0, sy0)
    ix1, iy1 = min(width, sx0 + side), min(height, sy0 + side)
    canvas = Image.new("RGB", (size, size), PAD_RGB)
    if ix1 > ix0 and iy1 > iy0:
        scale = size / side
        dx0, dy0 = round((ix0 - sx0) * scale), round((iy0 - sy0) * scale)
        dx1 = min(size, max(dx0 + 1, round((ix1 - sx0) * scale)))
        dy1 = min(size, max(dy0 + 1, round((iy1 - sy0) * scale)))
        dx0, dy0 = min(dx0, dx1 - 1), min(dy0, dy1 - 1)
        part = _shrink_to(rgb[iy0:iy1, ix0:ix1], dx1 - dx0, dy1 - dy0)
        if part.size == (size, size):
            canvas = part
        else:
            canvas.paste(part, (dx0, dy0))
    return _jpeg(canvas, THUMBNAIL_QUALITY)


def preview_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The preview's size: longest side max_side, aspect kept, never larger than the photo."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def photo_preview(rgb: np.ndarray, max_side: int = DEFAULT_PREVIEW_MAX_SIDE,
                  base: np.ndarray | None = None) -> tuple[bytes, int, int]:
    """The whole photo as a JPEG (quality 80) whose longest side is at most max_side; never upscaled.

    Returns (jpeg, width, height). 640 px is big enough for a web page and small enough (~50 KB) to travel
    in every callback; 35-50 ms for a 6000 x 4000 photo on one core (see the module docstring).
    `base`, optional, is the same picture already downscaled (the analysis's detection copy): used instead
    of `rgb` when it is at least the preview's size, which makes the preview nearly free (~1 ms).
    """
    if max_side < 1:
        raise ValueError(f"preview max side must be positive, got {max_side}")
    height, width = rgb.shape[:2]
    pw, ph = preview_size(width, height, max_side)
    src = base if base is not None and base.shape[1] >= pw and base.shape[0] >= ph else rgb
    return _jpeg(_shrink_to(src, pw, ph), PREVIEW_QUALITY), pw, ph


def render(rgb: np.ndarray, boxes: list[list[int]], thumb_size: int = DEFAULT_THUMBNAIL_SIZE,
           preview_max_side: int = DEFAULT_PREVIEW_MAX_SIDE, base: np.ndarray | None = None) -> dict:
    """The preview and one thumbnail per box (same order), `base` as in photo_preview:
    {"preview": bytes, "preview_width": int, "preview_height": int, "thumbnails": [bytes, ...]}."""
    preview, pw, ph = photo_preview(rgb, preview_max_side, base)
    return {"preview": preview, "preview_width": pw, "preview_height": ph,
            "thumbnails": [face_thumbnail(rgb, box, thumb_size) for box in boxes]}
