"""The date taken (taken_date.py) on real files written by Pillow and pillow-heif: every format and source, the order
of the sources, broken values skipped, no pixel decoding, file problems; and the analysis reading the same date from
what decode() read with the pixels."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from photo_sorter_ml import pipeline
from photo_sorter_ml.decode import DecodeError, Decoded, decode
from photo_sorter_ml.taken_date import TakenDate, read_taken, taken_from

ORIGINAL = TakenDate("2019-06-01T14:03:22", "+02:00", "exif")
ADOBE = {"x": "adobe:ns:meta/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
         "photoshop": "http://ns.adobe.com/photoshop/1.0/", "xmp": "http://ns.adobe.com/xap/1.0/"}


def exif(original=None, offset=None, digitized=None, offset_digitized=None) -> Image.Exif:
    """EXIF with these Exif IFD tags (DateTimeOriginal, OffsetTimeOriginal, DateTimeDigitized, OffsetTimeDigitized)
    and IFD0's DateTime, which is no date taken (the file's last change)."""
    e = Image.Exif()
    e[0x0132] = "2024:01:01 00:00:00"
    ifd = e.get_ifd(0x8769)
    for tag, value in ((0x9003, original), (0x9011, offset), (0x9004, digitized), (0x9012, offset_digitized)):
        if value is not None:
            ifd[tag] = value
    return e


def xmp(created=None, create_date=None, elements=False) -> bytes:
    """An XMP packet with photoshop:DateCreated and xmp:CreateDate, as attributes or as elements."""
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in ADOBE.items() if k not in ("x", "rdf"))
    values = [(k, v) for k, v in (("photoshop:DateCreated", created), ("xmp:CreateDate", create_date)) if v is not None]
    if elements:
        body = f"<rdf:Description {ns}>" + "".join(f"<{k}>{v}</{k}>" for k, v in values) + "</rdf:Description>"
    else:
        body = f"<rdf:Description {ns} " + " ".join(f'{k}="{v}"' for k, v in values) + "/>"
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="{ADOBE["x"]}">'
            f'<rdf:RDF xmlns:rdf="{ADOBE["rdf"]}">{body}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()


def photo(path, fmt=None, **kw):
    Image.new("RGB", (64, 48), (200, 120, 40)).save(path, fmt, **kw)
    return path


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i < len(png):
        length, kind = struct.unpack(">I4s", png[i:i + 8])
        out.append((kind, png[i + 8:i + 8 + length]))
        i += 12 + length
    return out


def png_of(parts: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                                         for k, d in parts)


# --- EXIF: which tag, which offset ------------------------------------------------------------------

def test_jpeg_date_time_original_with_its_offset(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif("2019:06:01 14:03:22", "+02:00", "2020:01:01 10:00:00", "-05:00"))
    assert read_taken(str(p)) == ORIGINAL


def test_date_time_digitized_with_its_offset_when_there_is_no_original(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif(None, "+02:00", "2020:01:01 10:00:00", "-05:30"))
    assert read_taken(str(p)) == TakenDate("2020-01-01T10:00:00", "-05:30", "exif")


def test_no_offset_tag_or_a_blank_or_impossible_one_is_a_null_offset(tmp_path):
    for i, offset in enumerate([None, "      ", "   :  ", "+25:00", "+02:75", "0200"]):
        p = photo(tmp_path / f"o{i}.jpg", exif=exif("2019:06:01 14:03:22", offset))
        assert read_taken(str(p)) == TakenDate("2019-06-01T14:03:22", None, "exif"), offset


@pytest.mark.parametrize("broken", ["0000:00:00 00:00:00", "", "    :  :     :  :  ", "2019:02:30 10:00:00",
                                    "2019:06:01 25:00:00", "1825:12:31 23:59:59", "2101:01:01 00:00:00", "yesterday"])
def test_a_broken_date_is_skipped_for_the_next_source(tmp_path, broken):
    p = photo(tmp_path / "a.jpg", exif=exif(broken, "+02:00", "2020:01:01 10:00:00"))
    assert read_taken(str(p)) == TakenDate("2020-01-01T10:00:00", None, "exif")
    p = photo(tmp_path / "b.jpg", exif=exif(broken, "+02:00", broken), xmp=xmp(create_date="2018-03-04T05:06:07"))
    assert read_taken(str(p)) == TakenDate("2018-03-04T05:06:07", None, "xmp")
    p = photo(tmp_path / "c.jpg", exif=exif(broken, "+02:00", broken))
    assert read_taken(str(p)) is None


def test_subseconds_and_years_at_the_ends_of_the_range(tmp_path):
    for i, (value, local) in enumerate([("2019:06:01 14:03:22.123", "2019-06-01T14:03:22"),
                                        ("1826:01:01 00:00:00", "1826-01-01T00:00:00"),
                                        ("2100:12:31 23:59:59", "2100-12-31T23:59:59")]):
        p = photo(tmp_path / f"{i}.jpg", exif=exif(value))
        assert read_taken(str(p)) == TakenDate(local, None, "exif")


def test_ifd0_date_time_alone_is_no_date(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif())
    assert read_taken(str(p)) is None


# --- XMP --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("packet,expected", [
    (xmp(created="2019-06-01T14:03:22+02:00"), TakenDate("2019-06-01T14:03:22", "+02:00", "xmp")),
    (xmp(create_date="2019-06-01T14:03:22.45Z"), TakenDate("2019-06-01T14:03:22", "+00:00", "xmp")),
    (xmp(create_date="2019-06-01T14:03-07:00", elements=True), TakenDate("2019-06-01T14:03:00", "-07:00", "xmp")),
    (xmp(created="2019"), TakenDate("2019-01-01T00:00:00", None, "xmp")),
    (xmp(created="2019-06", elements=True), TakenDate("2019-06-01T00:00:00", None, "xmp")),
    (xmp(created="2019-06-01"), TakenDate("2019-06-01T00:00:00", None, "xmp")),
    (xmp(created="2019-06-01", create_date="2020-01-01T00:00:00"), TakenDate("2019-06-01T00:00:00", None, "xmp")),
    (xmp(created="0000-00-00", create_date="2020-01-01T00:00:00", elements=True),
     TakenDate("2020-01-01T00:00:00", None, "xmp")),
    (xmp(created="2019:06:01 14:03:22"), None),
    (xmp(), None),
])
def test_jpeg_with_only_xmp(tmp_path, packet, expected):
    p = photo(tmp_path / "a.jpg", xmp=packet)
    assert b"http://ns.adobe.com/xap/1.0/\x00" in p.read_bytes()  # the APP1 XMP segment
    assert read_taken(str(p)) == expected


def test_exif_comes_before_xmp(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif("2019:06:01 14:03:22", "+02:00"), xmp=xmp(created="2001-01-01"))
    assert read_taken(str(p)) == ORIGINAL


@pytest.mark.parametrize("packet", [
    b"<x:xmpmeta",  # cut short
    b"\x00\x01 not xml",
    # an entity expansion bomb: expat refuses it
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(8))
    + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&i;</x:xmpmeta>',
])
def test_malformed_xmp_is_no_date(packet):
    assert taken_from(None, packet) is None


# --- formats ----------------------------------------------------------------------------------------

def test_png_exif_chunk_and_itxt_xmp(tmp_path):
    p = photo(tmp_path / "a.png", exif=exif("2019:06:01 14:03:22", "+02:00"))
    assert b"eXIf" in p.read_bytes()
    assert read_taken(str(p)) == ORIGINAL
    for zip_ in (False, True):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp(created="2019-06-01T14:03:22+02:00").decode(), zip=zip_)
        p = photo(tmp_path / f"x{zip_}.png", pnginfo=info)
        assert read_taken(str(p)) == TakenDate("2019-06-01T14:03:22", "+02:00", "xmp")


def test_png_exif_after_the_image_data_is_read_without_decoding_it_and_beats_xmp_before(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp(created="2001-01-01").decode())
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, "PNG", exif=exif("2019:06:01 14:03:22", "+02:00"), pnginfo=info)
    parts = chunks(buf.getvalue())
    exif_chunk = next(c for c in parts if c[0] == b"eXIf")
    parts.remove(exif_chunk)
    parts.insert(-1, exif_chunk)  # just before IEND
    assert [k for k, _ in parts][-3:] == [b"IDAT", b"eXIf", b"IEND"]
    p = tmp_path / "late.png"
    p.write_bytes(png_of(parts))
    assert read_taken(str(p)) == ORIGINAL
    d = decode(str(p), 10**8)  # Pillow reads the chunks after IDAT with the pixels
    assert taken_from(d.exif, d.xmp) == ORIGINAL
    broken = [(k, b"\x00" * len(v) if k == b"IDAT" else v) for k, v in parts]  # pixels no decoder can read
    p.write_bytes(png_of(broken))
    with pytest.raises(DecodeError):
        decode(str(p), 10**8)
    assert read_taken(str(p)) == ORIGINAL


@pytest.mark.parametrize("fmt,suffix", [("TIFF", "tif"), ("WEBP", "webp"), ("HEIF", "heic"), ("AVIF", "avif")])
def test_tiff_webp_heic_avif(tmp_path, fmt, suffix):
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    e = exif("2019:06:01 14:03:22", "+02:00")
    kw = {"tiffinfo": {0x8769: dict(e.get_ifd(0x8769))}} if fmt == "TIFF" else {"exif": e}
    p = photo(tmp_path / f"a.{suffix}", fmt, **kw)
    assert read_taken(str(p)) == ORIGINAL
    packet = xmp(created="2019-06-01T14:03:22+02:00")
    kw = {"tiffinfo": {700: packet}} if fmt == "TIFF" else {"xmp": packet}
    p = photo(tmp_path / f"x.{suffix}", fmt, **kw)
    assert read_taken(str(p)) == TakenDate("2019-06-01T14:03:22", "+02:00", "xmp")


def _tiff_raw(path, magic: bytes | None = None, endian="<", ifd0_date=False):
    """A TIFF-structured RAW stand-in Pillow cannot open: CFA photometric (32803), lossless-JPEG compression (7),
    strips cut off; optionally another magic (ORF "IIRO", RW2 "IIU\\0") and DateTimeOriginal in IFD0 (TIFF/EP)."""
    info = {0x9003: "2019:06:01 14:03:22"} if ifd0_date else {0x8769: {0x9003: "2019:06:01 14:03:22", 0x9011: "+02:00"}}
    buf = io.BytesIO()
    Image.new("I;16B" if endian == ">" else "L", (64, 48)).save(buf, "TIFF", tiffinfo=info)  # I;16B: "MM" order
    data = bytearray(buf.getvalue())
    offset = struct.unpack(endian + "I", data[4:8])[0]
    (count,) = struct.unpack(endian + "H", data[offset:offset + 2])
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack(endian + "HH", data[entry:entry + 4])
        if tag in (259, 262) and kind == 3:  # compression, photometric (SHORT, value in the entry)
            data[entry + 8:entry + 10] = struct.pack(endian + "H", 7 if tag == 259 else 32803)
    if magic:
        data[:4] = magic
    path.write_bytes(bytes(data[: len(data) - 1000]))
    return path


@pytest.mark.parametrize("name,magic,endian", [("a.dng", None, "<"), ("a.nef", None, ">"), ("a.orf", b"IIRO", "<"),
                                               ("a.rw2", b"IIU\x00", "<")])
def test_tiff_structured_raw_by_its_tags_where_pillow_cannot_open_it(tmp_path, name, magic, endian):
    p = _tiff_raw(tmp_path / name, magic, endian)
    with pytest.raises(Exception):
        Image.open(p).load()
    assert read_taken(str(p)) == ORIGINAL
    assert read_taken(p.read_bytes(), name) == ORIGINAL


def test_the_analysis_dates_a_raw_by_its_tiff_tags(tmp_path):
    """rawpy reads no metadata (decode() leaves exif None): the analysis reads the RAW's own tags."""
    p = _tiff_raw(tmp_path / "a.nef")
    decoded = Decoded(np.zeros((48, 64, 3), np.uint8), 64, 48, "RAW", 1)
    assert pipeline._taken(decoded, str(p), "a.nef") == {"local": "2019-06-01T14:03:22", "offset": "+02:00",
                                                          "source": "exif"}


def test_tiff_ep_date_in_ifd0(tmp_path):
    p = _tiff_raw(tmp_path / "a.dng", ifd0_date=True)
    assert read_taken(str(p)) == TakenDate("2019-06-01T14:03:22", None, "exif")


def test_jpeg_date_is_read_without_decoding_the_pixels(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif("2019:06:01 14:03:22", "+02:00"))
    data = p.read_bytes()
    p.write_bytes(data[:data.index(b"\xff\xda") + 20])  # cut off just after the start of the scan
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == "corrupt"
    assert read_taken(str(p)) == ORIGINAL


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif"), ("WEBP", "webp"),
                                        ("GIF", "gif"), ("BMP", "bmp"), ("HEIF", "heic")])
def test_a_photo_without_a_date_is_none(tmp_path, fmt, suffix):
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    p = photo(tmp_path / f"a.{suffix}", fmt)
    assert read_taken(str(p)) is None
    d = decode(str(p), 10**8)
    assert taken_from(d.exif, d.xmp) is None


@pytest.mark.parametrize("fmt,suffix,kw", [
    ("JPEG", "jpg", {"exif": exif("2019:06:01 14:03:22", "+02:00")}),
    ("JPEG", "jpg", {"xmp": xmp(created="2019-06-01T14:03:22+02:00")}),
    ("PNG", "png", {"exif": exif("2019:06:01 14:03:22", "+02:00")}),
    ("WEBP", "webp", {"exif": exif("2019:06:01 14:03:22", "+02:00")}),
    ("TIFF", "tif", {"tiffinfo": {0x8769: {0x9003: "2019:06:01 14:03:22", 0x9011: "+02:00"}}}),
    ("TIFF", "tif", {"tiffinfo": {700: xmp(created="2019-06-01T14:03:22+02:00")}}),
    ("HEIF", "heic", {"exif": exif("2019:06:01 14:03:22", "+02:00")}),
])
def test_the_analysis_reads_the_same_date_from_what_decode_read(tmp_path, fmt, suffix, kw):
    """decode() keeps Pillow's EXIF and XMP: the analysis dates a photo as /taken-dates does, without reading the
    file again (a TIFF's Exif IFD is read before decode closes it)."""
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    p = photo(tmp_path / f"a.{suffix}", fmt, **kw)
    d = decode(str(p), 10**8)
    assert taken_from(d.exif, d.xmp) == read_taken(str(p)) is not None
    assert taken_from(d.exif, d.xmp).local == "2019-06-01T14:03:22"


# --- not a photo --------------------------------------------------------------------------------------

def test_bytes_are_read_like_the_file(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif("2019:06:01 14:03:22", "+02:00"))
    assert read_taken(p.read_bytes(), "upload.jpg") == ORIGINAL


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,kind,needle", [
    (lambda d: d / "missing.jpg", "missing", "file not found"),
    (lambda d: d, "not_image", "is a directory"),
    (lambda d: _write(d / "zero.jpg", b""), "empty", "empty file (0 bytes)"),
    (lambda d: _write(d / "notes.jpg", b"just text\n"), "not_image", "content is text"),
    (lambda d: _write(d / "junk.cr3", bytes(range(256)) * 4), "not_image", "unrecognised"),
    (lambda d: _write(d / "clip.jpg", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)), "not_image",
     "video"),
])
def test_a_file_that_is_no_readable_image_is_a_decode_error(tmp_path, make, kind, needle):
    with pytest.raises(DecodeError) as e:
        read_taken(str(make(tmp_path)))
    assert e.value.kind == kind and needle in e.value.message, e.value.message


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_is_no_date_not_an_error(tmp_path):
    p = photo(tmp_path / "a.jpg", exif=exif("2019:06:01 14:03:22", "+02:00"), xmp=xmp(created="2018-01-01"))
    data = bytearray(p.read_bytes())
    start = data.index(b"Exif\x00\x00") + 6
    data[start + 4:start + 8] = b"\xff\xff\xff\x7f"  # IFD0 far beyond the segment
    p.write_bytes(bytes(data))
    assert read_taken(str(p)) == TakenDate("2018-01-01T00:00:00", None, "xmp")
