"""Decoder unit tests on generated images (no models needed)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from photo_sorter_ml.decode import DecodeError, decode, downscale_for_detection


def _gradient(w=64, h=48):
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], axis=2).astype(np.uint8)


def test_png_alpha_composited_on_white(tmp_path):
    a = np.zeros((40, 60, 4), np.uint8)
    a[..., 0] = 200  # red, fully transparent on the left half
    a[:, 30:, 3] = 255
    p = tmp_path / "alpha.png"
    Image.fromarray(a, "RGBA").save(p)
    d = decode(str(p), 10**8)
    assert d.rgb.shape == (40, 60, 3) and d.rgb.dtype == np.uint8
    assert (d.rgb[:, :30] == 255).all(), "transparent pixels must become white"
    assert (d.rgb[:, 30:] == [200, 0, 0]).all()


def test_greyscale_and_16bit(tmp_path):
    g = tmp_path / "grey.png"
    Image.fromarray(np.full((10, 20), 77, np.uint8), "L").save(g)
    d = decode(str(g), 10**8)
    assert d.rgb.shape == (10, 20, 3) and (d.rgb == 77).all()

    p16 = tmp_path / "grey16.png"
    Image.fromarray(np.full((10, 20), 40000, np.uint16)).save(p16)
    assert Image.open(p16).mode.startswith("I")
    d = decode(str(p16), 10**8)
    assert d.rgb.dtype == np.uint8 and (d.rgb == 40000 >> 8).all(), "16-bit must be scaled, not clipped"


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(p, quality=95)
    assert Image.open(p).mode == "CMYK"
    d = decode(str(p), 10**8)
    assert d.rgb.shape == (48, 64, 3)
    assert np.abs(d.rgb.astype(int) - _gradient().astype(int)).mean() < 20


def test_exif_orientation_applied(tmp_path):
    up = _gradient(80, 40)
    stored = Image.fromarray(up).transpose(Image.Transpose.ROTATE_90)  # orientation 6 = rotate CW to display
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    stored.save(p, exif=exif, quality=98)
    d = decode(str(p), 10**8)
    assert (d.width, d.height) == (80, 40) and d.orientation == 6
    assert np.abs(d.rgb.astype(int) - up.astype(int)).mean() < 6


def test_heic(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    p = tmp_path / "x.heic"
    Image.fromarray(_gradient()).save(p, format="HEIF", quality=95)
    d = decode(str(p), 10**8)
    assert d.format.upper().startswith("HEIF") or d.format.upper() == "HEIC"
    assert d.rgb.shape == (48, 64, 3)
    assert np.abs(d.rgb.astype(int) - _gradient().astype(int)).mean() < 12


@pytest.mark.parametrize("content,kind,needle", [
    (b"", "empty", "empty file (0 bytes)"),
    (b"hello, this is not an image\n", "not_image", "not an image"),
])
def test_bad_files(tmp_path, content, kind, needle):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == kind and needle in e.value.message


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_gradient(400, 300)).save(buf, "JPEG", quality=95)
    p = tmp_path / "trunc.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == "corrupt" and "truncated" in e.value.message


def test_corrupt_png_is_an_error_not_black_pixels(tmp_path):
    """One byte flipped inside IDAT: Pillow's getexif() on a PNG decodes the pixels and fails; a load() after that
    returned the half-decoded image as if whole."""
    buf = io.BytesIO()
    Image.fromarray(_gradient(400, 300)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    assert decode(bytes(png), 10**8).rgb.shape == (300, 400, 3)
    i = 8  # after the signature: walk the chunks (length, type, data, CRC) to the first IDAT
    while png[i + 4:i + 8] != b"IDAT":
        i += 12 + struct.unpack(">I", png[i:i + 4])[0]
    png[i + 8 + struct.unpack(">I", png[i:i + 4])[0] // 2] ^= 0xFF
    p = tmp_path / "corrupt.png"
    p.write_bytes(bytes(png))
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == "corrupt" and "corrupt PNG image" in e.value.message and "corrupt.png" in e.value.message


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError) as e:
        decode(str(tmp_path / "nope.jpg"), 10**8)
    assert e.value.kind == "missing" and "file not found" in e.value.message


def bomb_png(path, w=30000, h=30000):
    """A PNG header announcing w x h pixels (no pixel data needed to trip the limit)."""
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb(tmp_path):
    p = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10_000_000)
    assert e.value.kind == "too_large" and "decompression bomb" in e.value.message
    # Between the limit and Pillow's 2x hard limit too:
    p2 = bomb_png(tmp_path / "bomb2.png", 4000, 3000)
    with pytest.raises(DecodeError) as e:
        decode(str(p2), 10_000_000)
    assert "decompression bomb" in e.value.message and "12000000" in e.value.message


def test_downscale_maps_scale():
    img = np.zeros((1545, 1986, 3), np.uint8)
    small, scale = downscale_for_detection(img, 1000)
    assert max(small.shape[:2]) == 1000 and abs(scale - 1000 / 1986) < 1e-3
    same, s1 = downscale_for_detection(img[:500, :500], 1000)
    assert s1 == 1.0 and same.shape == (500, 500, 3)


def _encoded(fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(_gradient()).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,name,pillow_format,tolerance", [
    ("JPEG", "really-a-jpeg.png", "JPEG", 12),
    ("WEBP", "really-a-webp.jpg", "WEBP", 0),
    ("WEBP", "plain.webp", "WEBP", 0),
    ("PNG", "png-named.nef", "PNG", 0),
    ("GIF", "anim.gif", "GIF", 80),
    ("BMP", "scan.bmp", "BMP", 0),
    ("TIFF", "scan.tif", "TIFF", 0),
    ("PNG", "no-extension", "PNG", 0),
])
def test_content_decides_the_decoder_whatever_the_extension(tmp_path, fmt, name, pillow_format, tolerance):
    kw = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    p = tmp_path / name
    p.write_bytes(_encoded(fmt, **kw))
    d = decode(str(p), 10**8)
    assert d.format == pillow_format
    assert d.rgb.shape == (48, 64, 3)
    assert np.abs(d.rgb.astype(int) - _gradient().astype(int)).mean() <= tolerance
    from_bytes = decode(p.read_bytes(), 10**8, name=name)
    assert from_bytes.format == pillow_format


def test_heic_named_jpg_goes_to_pillow_heif(tmp_path):
    pytest.importorskip("pillow_heif")
    p = tmp_path / "iphone.jpg"
    Image.fromarray(_gradient()).save(p, format="HEIF", quality=95)
    d = decode(str(p), 10**8)
    assert d.rgb.shape == (48, 64, 3)


@pytest.mark.parametrize("name", ["fake.heic", "fake.nef", "fake.cr2", "notes.txt"])
def test_text_under_any_name_is_not_an_image(tmp_path, name):
    p = tmp_path / name
    p.write_text("this is a text file, not a photo\n")
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == "not_image" and "content is text" in e.value.message, e.value.message


def test_video_is_not_an_image(tmp_path):
    p = tmp_path / "clip.jpg"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64))
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == "not_image" and "video" in e.value.message


def test_unrecognised_binary_is_not_an_image_and_a_broken_raw_is_corrupt(tmp_path):
    junk = bytes(range(256)) * 4
    p = tmp_path / "junk.jpg"
    p.write_bytes(junk)
    with pytest.raises(DecodeError) as e:
        decode(str(p), 10**8)
    assert e.value.kind == "not_image" and "unrecognised" in e.value.message
    pytest.importorskip("rawpy")
    raw = tmp_path / "junk.nef"
    raw.write_bytes(junk)
    with pytest.raises(DecodeError) as e:
        decode(str(raw), 10**8)
    assert e.value.kind == "corrupt" and "RAW" in e.value.message


def test_plain_tiff_under_a_raw_name_falls_back_to_pillow(tmp_path):
    pytest.importorskip("rawpy")
    p = tmp_path / "scan.nef"
    p.write_bytes(_encoded("TIFF"))
    d = decode(str(p), 10**8)
    assert d.format == "TIFF" and d.rgb.shape == (48, 64, 3)
