"""Generates the bad-input corpus: one named file or folder per kind of bad input, plus control photos.

    ml-service/.venv/bin/python bench/reliability/make_corpus.py DIR [--big-dir-entries N] [--outside DIR2]

Every top-level entry of DIR starts with a two-digit kind number and a dash ("07-truncated.jpg"), so a result
can be traced back to its kind even when the name itself is the bad input. The image kinds are variants of a
real face photo (../shared/testdata/faces, PHOTO_SORTER_FACES_DIR overrides), so a face is found where one is
expected. The manifest (printed, and written to DIR/.corpus-manifest.json, which the scanner skips as hidden)
lists for every kind its entries and the expected outcome:

- `processed_faces` / `processed_no_faces`: the photo ends PROCESSED, with / without a face;
- `failed`: the photo ends FAILED and `last_error` matches `reason` (a regular expression, case-insensitive);
- `not_queued`: the entry is listed as not queued, its reason matching `reason`;
- `ignored`: hidden, neither a photo nor a not-queued entry.

The control photos' kind has `control: true`; an EXIF orientation kind gives the `upright_size` its photo must
have once turned; the big directory's kind lists its two photos as entries and its empty files under `bulk`.
A kind with an `action` needs the test to act at the right moment: `delete_after_scan` (delete the file once the
scan has stored it, before analysis), `rewrite_during_analysis` (rewrite it in place while it is analysed).
The unreadable kinds only hold when the pipeline runs as a user other than root.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MANIFEST = ".corpus-manifest.json"
# EXIF orientation n -> the transpose that stores an upright picture so that applying n shows it upright again.
STORE_FOR_ORIENTATION = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                         6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def faces_dir() -> Path:
    env = os.environ.get("PHOTO_SORTER_FACES_DIR")
    return Path(env).resolve() if env else (REPO.parent / "shared" / "testdata" / "faces").resolve()


def _jpeg(im: Image.Image, **opts) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=opts.pop("quality", 90), **opts)
    return buf.getvalue()


def _png(im: Image.Image, **opts) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **opts)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_raw(width: int, height: int, bit_depth: int, colour_type: int, rows) -> bytes:
    """A PNG from an iterable of raw scanlines (filter byte 0 is added), compressed as a stream."""
    comp = zlib.compressobj(9)
    idat = bytearray()
    for row in rows:
        idat += comp.compress(b"\x00" + row)
    idat += comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(idat)) + _png_chunk(b"IEND", b"")


def _with_idat_byte_flipped(png: bytes) -> bytes:
    """The PNG with the middle byte of its first IDAT chunk's data inverted (the chunk's CRC left as it was)."""
    i = 8
    while png[i + 4:i + 8] != b"IDAT":
        i += 12 + struct.unpack(">I", png[i:i + 4])[0]
    out = bytearray(png)
    out[i + 8 + struct.unpack(">I", png[i:i + 4])[0] // 2] ^= 0xFF
    return bytes(out)


def _with_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with the frame size in its SOF header replaced (the pixel data stays that of the real size)."""
    i = 2
    while i < len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[:i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]
        i += 2 + length
    raise ValueError("no SOF marker")


def _scan_data_offset(jpeg: bytes) -> int:
    """Offset of the entropy-coded data after the first SOS header."""
    i = 2
    while i < len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker == 0xDA:
            return i + 2 + length
        i += 2 + length
    raise ValueError("no SOS marker")


def _with_exif_orientation(im: Image.Image, orientation: int) -> bytes:
    stored = im if STORE_FOR_ORIENTATION[orientation] is None else im.transpose(STORE_FOR_ORIENTATION[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _jpeg(stored, exif=exif.tobytes())


def build(root: Path, big_dir_entries: int = 100_000, outside: Path | None = None) -> dict:
    """Writes the corpus into `root` (created; must be empty or missing) and returns the manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    outside = Path(outside) if outside else root.parent / f"{root.name}-outside"
    outside.mkdir(parents=True, exist_ok=True)
    faces = faces_dir() / "face_recognition_examples"
    base = Image.open(faces / "obama" / "obama.jpg").convert("RGB")
    base = base.resize((600, round(600 * base.height / base.width)), Image.LANCZOS)
    base_jpeg = _jpeg(base)
    kinds: list[dict] = []

    def write(name: str | bytes, data: bytes) -> str:
        """Writes root/name; returns the name as str (bytes that are not UTF-8 as surrogate escapes)."""
        name = os.fsdecode(name)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        return name

    def kind(name: str, entries: list, expect: str, reason: str | None = None, **extra) -> None:
        kinds.append({"kind": name, "entries": entries, "expect": expect, "reason": reason, **extra})

    # --- controls: real photos beside the bad inputs
    for i, src in enumerate([faces / "biden" / "biden.jpg", faces / "kit_harington" / "john1.jpeg",
                             faces / "rose_leslie" / "img1.jpg"]):
        shutil.copyfile(src, root / f"00-control-{i}{src.suffix}")
    kind("control photos (real faces)", [f"00-control-{i}{s}" for i, s in enumerate([".jpg", ".jpeg", ".jpg"])],
         "processed_faces", control=True)

    # --- file contents
    kind("zero-byte file", [write("01-zero-byte.jpg", b"")], "not_queued", r"empty")
    kind("truncated JPEG (first 40 %)", [write("02-truncated.jpg", base_jpeg[:len(base_jpeg) * 2 // 5])],
         "failed", r"truncat")
    kind("JPEG with 64 KiB of garbage after EOI", [write("03-garbage-after-eoi.jpg",
                                                          base_jpeg + os.urandom(65536))], "processed_faces")
    kind("JPEG decompression bomb (SOF says 30000x30000)",
         [write("04-bomb-30000x30000.jpg", _with_sof_size(base_jpeg, 30000, 30000))], "failed",
         r"decompression bomb")
    kind("PNG decompression bomb (30000x30000, 1-bit, ~110 KB)",
         [write("05-bomb-30000x30000.png", _png_raw(30000, 30000, 1, 0, (bytes(3750) for _ in range(30000))))],
         "failed", r"decompression bomb")
    kind("JPEG named .png", [write("06-jpeg-named.png", base_jpeg)], "processed_faces")
    kind("PNG named .jpg", [write("07-png-named.jpg", _png(base))], "processed_faces")
    webp = io.BytesIO()
    base.save(webp, "WEBP", quality=90)
    kind("WebP named .jpg", [write("08-webp-named.jpg", webp.getvalue())], "processed_faces")
    kind("text file named .jpg", [write("09-text-named.jpg", b"this is not a photo\n" * 10)], "not_queued",
         r"not an image|not a supported image")
    kind("HEIC that is not (text)", [write("10-not-heic.heic", b"definitely not HEIF\n" * 10)], "not_queued",
         r"HEIF.*not an image")
    kind("JPEG named .heic", [write("11-jpeg-named.heic", base_jpeg)], "processed_faces")
    kind("RAW (.cr2) that is not (text)", [write("12-not-raw.cr2", b"not a camera raw file\n" * 10)], "not_queued",
         r"CR2.*not an image")
    kind("RAW (.nef) with a TIFF header and garbage", [write("13-tiff-garbage.nef",
                                                               b"II*\x00\x08\x00\x00\x00" + os.urandom(4096))],
         "failed", r"not a readable RAW file")
    kind("CMYK JPEG", [write("14-cmyk.jpg", _jpeg(base.convert("CMYK")))], "processed_faces")
    rgb16 = (np.asarray(base, dtype=np.uint16) * 257).astype(">u2")
    kind("16-bit RGB PNG", [write("15-rgb16.png", _png_raw(base.width, base.height, 16, 2,
                                                          (r.tobytes() for r in rgb16)))], "processed_faces")
    grey16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(">u2")
    kind("16-bit greyscale PNG", [write("16-grey16.png", _png_raw(base.width, base.height, 16, 0,
                                                                  (r.tobytes() for r in grey16)))], "processed_faces")
    kind("greyscale JPEG", [write("17-grey.jpg", _jpeg(base.convert("L")))], "processed_faces")
    palette = base.quantize(255)
    kind("palette PNG with a transparent colour", [write("18-palette-transparent.png",
                                                         _png(palette, transparency=0))], "processed_faces")
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size).point(lambda v: 128 + v // 2))
    kind("RGBA PNG (alpha channel)", [write("19-rgba.png", _png(rgba))], "processed_faces")
    for n in range(1, 9):
        kind(f"EXIF orientation {n}", [write(f"2{n - 1}-exif-orientation-{n}.jpg", _with_exif_orientation(base, n))],
             "processed_faces", upright_size=[base.width, base.height])
    big_exif = Image.Exif()
    big_exif[0x010E] = "x" * 65000  # ImageDescription: the APP1 segment near its 64 KiB maximum
    kind("huge EXIF block (64 KiB APP1)", [write("28-huge-exif.jpg", _jpeg(base, exif=big_exif.tobytes()))],
         "processed_faces")
    kind("2 MiB ICC profile (junk, in 33 APP2 segments)",
         [write("29-huge-icc.jpg", _jpeg(base, icc_profile=os.urandom(2 << 20)))], "processed_faces")
    kind("1x1 image", [write("30-1x1.png", _png(Image.new("RGB", (1, 1), (200, 150, 100))))], "processed_no_faces")
    kind("20000x10 image", [write("31-20000x10.png", _png(Image.new("RGB", (20000, 10), (90, 120, 200))))],
         "processed_no_faces")
    kind("progressive JPEG", [write("32-progressive.jpg", _jpeg(base, progressive=True))], "processed_faces")
    corrupt = bytearray(base_jpeg)
    start = _scan_data_offset(base_jpeg)
    for off in range(start + 2000, start + 2400, 7):  # bit errors in the entropy-coded data
        corrupt[off] ^= 0x5A if corrupt[off] not in (0xFF, 0xA5) else 0
    kind("JPEG with bit errors in the scan data", [write("33-bit-errors.jpg", bytes(corrupt))], "failed",
         r"corrupt|broken")
    png = _png(base)
    kind("truncated PNG (first half)", [write("34-truncated.png", png[:len(png) // 2])], "failed", r"truncat")
    kind("PNG with one byte flipped inside IDAT", [write("51-corrupt-idat.png", _with_idat_byte_flipped(png))],
         "failed", r"corrupt PNG")

    # --- names
    kind("name with spaces", [write("35-name with  spaces .jpg", base_jpeg)], "processed_faces")
    kind("name with a newline", [write("36-new\nline.jpg", base_jpeg)], "processed_faces")
    kind("name that is not UTF-8 (Latin-1 bytes)", [write(b"37-latin1-\xe9t\xe9.jpg", base_jpeg)], "not_queued",
         r"utf-?8")
    long_name = "38-" + "x" * (255 - len("38-") - len(".jpg")) + ".jpg"
    kind("255-byte name", [write(long_name, base_jpeg)], "processed_faces")
    kind("folder named like a photo (dir.jpg/)", [write("39-folder.jpg/inside.jpg", base_jpeg)], "processed_faces")
    kind("hidden file", [write(".40-hidden.jpg", base_jpeg)], "ignored")

    # --- file types and permissions
    os.mkfifo(root / "41-fifo.jpg")
    kind("FIFO named .jpg", ["41-fifo.jpg"], "not_queued", r"fifo|not a regular file")
    os.symlink("42-loop-b.jpg", root / "42-loop-a.jpg")
    os.symlink("42-loop-a.jpg", root / "42-loop-b.jpg")
    kind("symlink loop", ["42-loop-a.jpg", "42-loop-b.jpg"], "not_queued", r"symlink loop")
    (outside / "outside.jpg").write_bytes(base_jpeg)
    os.symlink(outside / "outside.jpg", root / "43-link-outside.jpg")
    kind("symlink out of the allowed roots", ["43-link-outside.jpg"], "not_queued", r"outside")
    os.symlink("does-not-exist.jpg", root / "44-broken-link.jpg")
    kind("broken symlink", ["44-broken-link.jpg"], "not_queued", r"broken symlink")
    os.symlink("00-control-0.jpg", root / "45-link-inside.jpg")
    kind("symlink to a photo inside the roots", ["45-link-inside.jpg"], "processed_faces")
    write("46-unreadable.jpg", base_jpeg)
    os.chmod(root / "46-unreadable.jpg", 0)
    kind("unreadable file (mode 000)", ["46-unreadable.jpg"], "not_queued", r"permission denied")
    write("47-unreadable-dir/inside.jpg", base_jpeg)
    os.chmod(root / "47-unreadable-dir", 0)
    kind("unreadable directory (mode 000)", ["47-unreadable-dir"], "not_queued", r"permission denied")

    # --- timing
    kind("file deleted between scan and analysis", [write("48-deleted.jpg", base_jpeg)], "failed",
         r"file not found", action="delete_after_scan")
    big = base.resize((6000, round(6000 * base.height / base.width)), Image.BICUBIC)
    kind("file that changes while being analysed (6000 px, rewritten in place)",
         [write("49-changing.jpg", _jpeg(big, quality=95))], "failed", r"changed while being analysed",
         action="rewrite_during_analysis")

    # --- a directory with many entries: zero-byte files (a failed copy) around two real photos
    big_dir = root / "50-big-dir"
    big_dir.mkdir()
    for i in range(big_dir_entries):
        os.close(os.open(big_dir / f"e{i:06d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    write("50-big-dir/~face-a.jpg", base_jpeg)
    write("50-big-dir/~face-b.jpg", _jpeg(base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    kind(f"directory with {big_dir_entries} entries (zero-byte files) and 2 photos",
         ["50-big-dir/~face-a.jpg", "50-big-dir/~face-b.jpg"], "processed_faces",
         bulk={"dir": "50-big-dir", "count": big_dir_entries, "expect": "not_queued", "reason": r"empty"})

    manifest = {"root": str(root.resolve()), "outside": str(outside.resolve()), "big_dir_entries": big_dir_entries,
                "kinds": kinds}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--big-dir-entries", type=int, default=100_000, help="zero-byte files in 50-big-dir/")
    ap.add_argument("--outside", type=Path, help="where the target of the out-of-roots symlink goes "
                                                 "(default: DIR-outside beside DIR)")
    args = ap.parse_args()
    manifest = build(args.dir, args.big_dir_entries, args.outside)
    json.dump(manifest, sys.stdout, indent=1)
    bad = sum(not k.get("control") for k in manifest["kinds"])
    print(f"\n{bad} kinds of bad input and the control photos in {manifest['root']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
