"""Image decoding: any supported file -> orientation-corrected RGB uint8 array.

The content decides the decoder, not the extension (a JPEG named .png, a WebP named .jpg are common): JPEG, PNG,
WebP, GIF, BMP, TIFF and HEIF/AVIF (pillow-heif) go to Pillow; camera RAW goes to rawpy (embedded JPEG preview when
it is large enough) when the content is a TIFF container with a RAW extension or a CR2, or when Pillow cannot
identify the file but rawpy can. Handles EXIF orientation, alpha (composited on white), greyscale, 16-bit, palette
and CMYK. Every problem with the file itself raises `DecodeError` with a precise, human-readable message and a
`kind` the HTTP layer maps to a status code. Pillow's EXIF and XMP come along for the date taken (`taken_date`).
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF/AVIF support
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # pragma: no cover - in requirements.txt; without it such files are not images
    pass

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey half-image

RAW_EXTENSIONS = {".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf",
                  ".rw2", ".pef", ".srw", ".raw", ".3fr", ".erf", ".kdc", ".mrw", ".x3f"}
# An embedded RAW preview smaller than this (longest side) is not used: demosaic instead.
RAW_PREVIEW_MIN_SIDE = 1000
# Bytes read from the start of a file to recognise its content (the text check looks at all of them).
HEAD_BYTES = 1024
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
PILLOW_CONTENT = {"jpeg", "png", "webp", "gif", "bmp", "tiff", "heif"}


class DecodeError(Exception):
    """A problem with the file itself. kind: missing | unreadable | empty | not_image | corrupt | too_large."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Decoded:
    rgb: np.ndarray  # H x W x 3 uint8, orientation-corrected, full resolution
    width: int
    height: int
    format: str
    orientation: int  # EXIF orientation that was applied (1 = none)
    # EXIF (with its Exif IFD) and XMP packet as Pillow read them with the pixels; exif is None where the decoder
    # reads no metadata (rawpy).
    exif: Image.Exif | None = None
    xmp: bytes | None = None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DecodeError(
            "too_large",
            f"decompression bomb: image is {width}x{height} = {width * height} pixels, "
            f"over the limit of {max_pixels} (PHOTO_SORTER_ML_MAX_PIXELS)")


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Alpha is composited on white; 16-bit is scaled, not clipped."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im)
        if mode == "I":
            a = a.astype(np.int64)
            hi = int(a.max()) if a.size else 0
            shift = 8 if hi > 255 else 0
            a = np.clip(a >> shift, 0, 255)
        else:
            a = a.astype(np.uint16) >> 8
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        hi = float(a.max()) if a.size else 1.0
        scale = 255.0 if hi <= 1.0 else (255.0 / 65535.0 if hi > 255 else 1.0)
        return Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return im.convert("RGB")
    return im.convert("RGB")


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file are: an image format in PILLOW_CONTENT, "cr2", "video", "text", or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "cr2" if head[8:10] == b"CR" else "tiff"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "webp", b"AVI ": "video"}.get(head[8:12])
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"  # Matroska / WebM
    if len(head) >= 12 and head[4:8] == b"ftyp":
        size = int.from_bytes(head[0:4], "big")
        brands = [head[8:12]] + [head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
        if head[8:12] == b"crx ":
            return None  # Canon CR3: rawpy's, found by the fallback
        return "heif" if any(b in HEIF_BRANDS for b in brands) else "video"
    return "text" if _is_text(head) else None


def _is_text(head: bytes) -> bool:
    """Valid UTF-8 (a character cut at the end is allowed) without control characters other than \\t \\n \\f \\r."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3 or e.reason != "unexpected end of data":
            return False
        text = head[:e.start].decode("utf-8")
    return not any((ord(c) < 0x20 and c not in "\t\n\x0c\r") or c == "\x7f" for c in text)


def _decode_raw(source, name: str, max_pixels: int) -> Decoded:
    try:
        import rawpy
    except ImportError as e:  # pragma: no cover
        raise DecodeError("not_image", f"RAW support is not installed (rawpy): {e}") from None
    try:
        raw_ctx = rawpy.imread(source if isinstance(source, str) else io.BytesIO(source))
    except Exception as e:
        raise DecodeError("corrupt", f"not a readable RAW file ({name}): {type(e).__name__}: {e}") from None
    with raw_ctx as raw:
        # The embedded JPEG preview is already demosaiced, white-balanced and usually full size: use it
        # when it is big enough (fast), otherwise demosaic.
        try:
            thumb = raw.extract_thumb()
        except Exception:
            thumb = None
        if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
            try:
                im = Image.open(io.BytesIO(thumb.data))
                if max(im.size) >= RAW_PREVIEW_MIN_SIDE:
                    _check_pixels(im.width, im.height, max_pixels)
                    im.load()
                    orientation = im.getexif().get(0x0112, 1)
                    im = ImageOps.exif_transpose(im)
                    rgb = np.asarray(_to_rgb(im))
                    return Decoded(rgb, rgb.shape[1], rgb.shape[0], "RAW-preview", orientation)
            except DecodeError:
                raise
            except Exception:
                pass
        sizes = raw.sizes
        _check_pixels(sizes.width, sizes.height, max_pixels)
        try:
            rgb = raw.postprocess(use_camera_wb=True, output_bps=8, no_auto_bright=False)
        except Exception as e:
            raise DecodeError("corrupt", f"RAW demosaic failed ({name}): {type(e).__name__}: {e}") from None
        # LibRaw applies the camera's flip itself.
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        return Decoded(rgb, rgb.shape[1], rgb.shape[0], "RAW", 1)


def read_head(source: str | bytes, name: str) -> bytes:
    """The first HEAD_BYTES of a path (str) or of in-memory bytes. DecodeError when there is no file to read: missing,
    unreadable, a directory, empty."""
    if isinstance(source, str):
        try:
            st = os.stat(source)
        except FileNotFoundError:
            raise DecodeError("missing", f"file not found: {source}") from None
        except PermissionError:
            raise DecodeError("unreadable", f"permission denied: {source}") from None
        except OSError as e:
            raise DecodeError("unreadable", f"cannot stat {source}: {e.strerror or e}") from None
        if os.path.isdir(source):
            raise DecodeError("not_image", f"is a directory, not an image file: {source}")
        if st.st_size == 0:
            raise DecodeError("empty", f"empty file (0 bytes): {source}")
        try:
            with open(source, "rb") as f:
                return f.read(HEAD_BYTES)
        except PermissionError:
            raise DecodeError("unreadable", f"permission denied: {source}") from None
        except OSError as e:
            raise DecodeError("unreadable", f"cannot read {source}: {e.strerror or e}") from None
    if len(source) == 0:
        raise DecodeError("empty", f"empty file (0 bytes): {name}")
    return bytes(source[:HEAD_BYTES])


def extension(source: str | bytes, name: str) -> str:
    """The lower-case extension of a path, or of the name given to in-memory bytes."""
    return os.path.splitext(source if isinstance(source, str) else name)[1].lower()


def refuse(content: str | None, ext: str, name: str) -> None:
    """DecodeError not_image for content that is no image at all (sniff: "video", "text")."""
    says = f", the extension says {ext}" if ext else ""
    if content == "video":
        raise DecodeError("not_image", f"not an image (content is a video{says}): {name}")
    if content == "text":
        raise DecodeError("not_image", f"not an image (content is text{says}): {name}")


def decode(source: str | bytes, max_pixels: int, name: str | None = None) -> Decoded:
    """Decodes a path (str) or in-memory bytes. Raises DecodeError for every file problem."""
    name = name or (source if isinstance(source, str) else "upload")
    head = read_head(source, name)
    ext = extension(source, name)
    content = sniff(head)
    if content == "cr2" or (content == "tiff" and ext in RAW_EXTENSIONS):
        try:
            return _decode_raw(source, name, max_pixels)
        except DecodeError as raw_error:
            if raw_error.kind != "corrupt":
                raise
            try:  # a plain TIFF under a RAW name
                return _decode_pillow(source, name, max_pixels)
            except DecodeError:
                raise raw_error from None
    if content in PILLOW_CONTENT:
        return _decode_pillow(source, name, max_pixels)
    refuse(content, ext, name)
    # No known signature: Pillow reads some formats without one, rawpy most camera RAWs.
    try:
        return _decode_pillow(source, name, max_pixels)
    except DecodeError as e:
        if e.kind != "not_image":
            raise
    try:
        return _decode_raw(source, name, max_pixels)
    except DecodeError:
        if ext in RAW_EXTENSIONS:
            raise
        raise DecodeError("not_image", f"not an image (unrecognised file format): {name}") from None


def _decode_pillow(source: str | bytes, name: str, max_pixels: int) -> Decoded:
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(source if isinstance(source, str) else io.BytesIO(source))
    except UnidentifiedImageError:
        raise DecodeError("not_image", f"not an image (unrecognised file format): {name}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError("too_large", f"decompression bomb: {e} (PHOTO_SORTER_ML_MAX_PIXELS={max_pixels})") from None
    except PermissionError:
        raise DecodeError("unreadable", f"permission denied: {name}") from None
    except OSError as e:
        raise DecodeError("unreadable", f"cannot read {name}: {e}") from None

    try:
        with im:
            _check_pixels(im.width, im.height, max_pixels)
            fmt = im.format or "unknown"
            # Pixels first: reading EXIF can decode the image (a PNG's eXIf chunk may follow IDAT), and a failure
            # there must not leave half-decoded pixels for a later load() to return as if they were whole.
            try:
                im.load()
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
                raise DecodeError("corrupt", f"corrupt {fmt} image: {e}: {name}") from None
            try:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
                im2 = ImageOps.exif_transpose(im)
            except Exception:  # broken EXIF on whole pixels: keep them as stored
                im2, orientation = im, 1
            try:
                exif = im.getexif()
                exif.get_ifd(ExifTags.IFD.Exif)  # read now: a TIFF's comes from the file, closed on return
            except Exception:  # broken EXIF: no date from it
                exif = Image.Exif()
            xmp = im.info.get("xmp")
            rgb_im = _to_rgb(im2)
            rgb = np.asarray(rgb_im, dtype=np.uint8)
            if rgb.ndim != 3 or rgb.shape[2] != 3:
                raise DecodeError("corrupt", f"unexpected pixel layout {rgb.shape} after decoding: {name}")
            return Decoded(np.ascontiguousarray(rgb), rgb.shape[1], rgb.shape[0], fmt, orientation, exif,
                           xmp if isinstance(xmp, bytes) else None)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError("too_large", f"out of memory decoding {name}") from None
    except Exception as e:
        raise DecodeError("corrupt", f"cannot decode {name}: {type(e).__name__}: {e}") from None


def downscale_for_detection(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Returns (image, scale) with scale = detect_px / original_px (1.0 when no resize is needed)."""
    h, w = rgb.shape[:2]
    longest = max(h, w)
    if max_side <= 0 or longest <= max_side:
        return rgb, 1.0
    scale = max_side / float(longest)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    im = Image.fromarray(rgb)
    # reduce() by an integer factor first (fast box filter), then an exact bilinear resize.
    factor = int(longest // max_side)
    if factor >= 2:
        im = im.reduce(factor)
    im = im.resize((nw, nh), Image.BILINEAR)
    return np.asarray(im), nw / float(w)
