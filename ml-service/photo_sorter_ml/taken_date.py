"""When a photo was taken, from its metadata: EXIF DateTimeOriginal, else DateTimeDigitized (each with its
OffsetTime* tag), else XMP photoshop:DateCreated, else xmp:CreateDate. A value that is blank, zero, impossible or
outside 1826...2100 is skipped for the next one.

`read_taken` is the light read of a file: its header and metadata, never its pixels. TIFF-structured files (TIFF
and the RAWs built on it: DNG, NEF, CR2, ARW, PEF, ORF, RW2, ...) by their IFD0 and Exif IFD, PNG by its eXIf and
iTXt chunks wherever they lie, the rest (JPEG, WebP, HEIF/AVIF, GIF, BMP) by Pillow's header parse. `taken_from`
takes what `decode` already read with the pixels.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO
from xml.etree import ElementTree

from PIL import ExifTags, Image, UnidentifiedImageError

from .decode import DecodeError, extension, read_head, refuse, sniff

DATE_ORIGINAL, OFFSET_ORIGINAL = 0x9003, 0x9011
DATE_DIGITIZED, OFFSET_DIGITIZED = 0x9004, 0x9012
XMP_TAG = 700  # TIFF XMLPacket
XMP_DATES = ("{http://ns.adobe.com/photoshop/1.0/}DateCreated", "{http://ns.adobe.com/xap/1.0/}CreateDate")
YEARS = range(1826, 2101)
# TIFF magic numbers: TIFF and most RAWs (42), Olympus ORF ("RO", "RS"), Panasonic RW2 (0x55).
TIFF_MAGIC = {42, 0x4F52, 0x5352, 0x55}
# A PNG metadata chunk larger than this (or inflating to more) is skipped, as Pillow's MAX_TEXT_CHUNK does.
MAX_CHUNK = 1 << 20

_EXIF_DATE = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_XMP_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?)?)?)?")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


@dataclass(frozen=True)
class TakenDate:
    local: str  # wall-clock time, YYYY-MM-DDTHH:MM:SS
    offset: str | None  # +HH:MM / -HH:MM from UTC, None when the photo does not say
    source: str  # "exif" | "xmp"


def taken_from(exif: Image.Exif | None, xmp: bytes | None) -> TakenDate | None:
    """The first valid date in the EXIF, then in the XMP packet, in the order above."""
    return (exif is not None and _from_exif(exif)) or (xmp is not None and _from_xmp(xmp)) or None


def read_taken(source: str | bytes, name: str | None = None) -> TakenDate | None:
    """When the photo at a path (or in bytes) was taken; None when it carries no valid date. DecodeError when it is no
    readable image (missing, unreadable, empty, a directory, not an image). Broken metadata is no date, not an error."""
    name = name or (source if isinstance(source, str) else "upload")
    head = read_head(source, name)
    try:
        with open(source, "rb") if isinstance(source, str) else io.BytesIO(source) as f:
            if _tiff_header(head):
                exif = _tiff_exif(f, head)
                return taken_from(exif, None if exif is None else _bytes(exif.get(XMP_TAG)))
            content = sniff(head)
            if content == "png":
                return taken_from(*_png_metadata(f))
            refuse(content, extension(source, name), name)
            return _pillow(f, source, name)
    except OSError as e:
        raise DecodeError("unreadable", f"cannot read {name}: {e.strerror or e}") from None


def _pillow(f: BinaryIO, source: str | bytes, name: str) -> TakenDate | None:
    """Pillow's header parse: JPEG's markers before the scan, WebP's and HEIF's containers (pillow-heif opener)."""
    try:
        im = Image.open(f)
    except UnidentifiedImageError:
        if _is_raw(source):
            return None  # a RAW that is no TIFF (CR3, RAF, X3F, ...): no date read from it
        raise DecodeError("not_image", f"not an image (unrecognised file format): {name}") from None
    except Image.DecompressionBombError as e:
        raise DecodeError("too_large", f"decompression bomb: {e}") from None
    with im:
        try:
            exif = im.getexif()
        except Exception:  # Pillow raises many kinds on broken EXIF: no date from it
            exif = None
        xmp = im.info.get("xmp")
        return taken_from(exif, xmp if isinstance(xmp, bytes) else None)


def _is_raw(source: str | bytes) -> bool:
    """Whether LibRaw recognises the file (its metadata parse only, nothing unpacked)."""
    try:
        import rawpy

        with rawpy.imread(source if isinstance(source, str) else io.BytesIO(source)):
            return True
    except Exception:  # ImportError, or LibRaw's errors for a file it does not know
        return False


def _tiff_header(head: bytes) -> bool:
    if head[:2] not in (b"II", b"MM") or len(head) < 8:
        return False
    return int.from_bytes(head[2:4], "little" if head[:2] == b"II" else "big") in TIFF_MAGIC


def _tiff_exif(f: BinaryIO, head: bytes) -> Image.Exif | None:
    """IFD0 of a TIFF-structured file read as EXIF, without opening it as an image: Pillow cannot decode most RAWs'
    pixels, and their tags are all that is wanted. Its Exif IFD is read from `f` when asked for."""
    exif = Image.Exif()
    exif.endian = "<" if head[:2] == b"II" else ">"
    try:
        exif.load_from_fp(f, int.from_bytes(head[4:8], "little" if exif.endian == "<" else "big"))
    except Exception:  # Pillow raises many kinds on broken IFDs: no date from them
        return None
    return exif


def _png_metadata(f: BinaryIO) -> tuple[Image.Exif | None, bytes | None]:
    """EXIF and XMP of a PNG from its eXIf and iTXt "XML:com.adobe.xmp" chunks, before or after the image data (which
    is skipped unread: Pillow reads chunks after IDAT only by decoding it)."""
    exif = xmp = None
    f.seek(8)
    while len(header := f.read(8)) == 8:
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            break
        if kind not in (b"eXIf", b"iTXt") or length > MAX_CHUNK:
            f.seek(length + 4, io.SEEK_CUR)
            continue
        data = f.read(length)
        f.seek(4, io.SEEK_CUR)  # CRC
        if kind == b"eXIf" and exif is None:
            exif = Image.Exif()
            try:
                exif.load(data)
            except Exception:  # Pillow raises many kinds on broken EXIF: no date from it
                exif = None
        elif kind == b"iTXt" and xmp is None:
            xmp = _itxt_xmp(data)
    return exif, xmp


def _itxt_xmp(data: bytes) -> bytes | None:
    """The text of an iTXt chunk keyed XML:com.adobe.xmp (keyword, flag, method, language, translated keyword)."""
    key, _, rest = data.partition(b"\0")
    if key != b"XML:com.adobe.xmp" or len(rest) < 2:
        return None
    compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]
    if not compressed:
        return text
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(text, MAX_CHUNK)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else text


def _bytes(value) -> bytes | None:
    """A TIFF tag's value as bytes: XMLPacket is BYTE by the book, ASCII (a str to Pillow) in some files."""
    return value if isinstance(value, bytes) else value.encode() if isinstance(value, str) else None


def _from_exif(exif: Image.Exif) -> TakenDate | None:
    try:
        ifds = [exif.get_ifd(ExifTags.IFD.Exif), exif]  # TIFF/EP keeps the dates in IFD0
    except Exception:  # a broken Exif IFD pointer
        ifds = [exif]
    for date_tag, offset_tag in ((DATE_ORIGINAL, OFFSET_ORIGINAL), (DATE_DIGITIZED, OFFSET_DIGITIZED)):
        for ifd in ifds:
            m = _EXIF_DATE.match(_text(ifd.get(date_tag)))
            local = m and _local(*m.groups())
            if local:
                return TakenDate(local, _offset(_text(ifd.get(offset_tag))), "exif")
    return None


def _from_xmp(packet: bytes) -> TakenDate | None:
    """The first valid photoshop:DateCreated, then xmp:CreateDate, as an attribute or an element. The standard
    library's parser does not fetch external entities, and expat (2.4.1+) refuses entity expansion bombs."""
    try:
        root = ElementTree.fromstring(packet.strip(b"\0 \t\r\n"))
    except (ElementTree.ParseError, LookupError, ValueError):  # malformed, or an encoding Python does not know
        return None
    elements = list(root.iter())
    for key in XMP_DATES:
        for element in elements:
            m = _XMP_DATE.fullmatch(_text(element.text if element.tag == key else element.get(key)))
            if not m:
                continue
            year, month, day, hour, minute, second, zone = m.groups()
            local = _local(year, month or 1, day or 1, hour or 0, minute or 0, second or 0)
            if local:
                return TakenDate(local, "+00:00" if zone == "Z" else _offset(zone or ""), "xmp")
    return None


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip(" \0\t\r\n") if isinstance(value, str) else ""


def _local(*parts) -> str | None:
    """YYYY-MM-DDTHH:MM:SS when the parts make a real time in YEARS, else None."""
    try:
        t = datetime(*map(int, parts))
    except ValueError:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S") if t.year in YEARS else None


def _offset(value: str) -> str | None:
    """+HH:MM / -HH:MM when `value` is an offset from UTC that exists (-12:00 ... +14:00), else None."""
    m = _OFFSET.fullmatch(value)
    if not m or int(m[2]) > 14 or int(m[3]) > 59:
        return None
    return f"{m[1]}{m[2]}:{m[3]}"
