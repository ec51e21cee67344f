#!/usr/bin/env python3
r"""A tree of N tiny, valid, distinct JPEGs for scan/ingest benchmarks (issue 12: a million photos on one machine).

    ml-service/.venv/bin/python bench/scale/generate_tree.py DIR --files N [--per-folder 200] [--seed S] [--force]

Layout like a camera import: `DIR/2015/01/day-01/IMG_0000001.jpg`, `--per-folder` files in each leaf folder, one
day per leaf folder from 2015-01-01 on (files numbered 1..N across the tree). What a scan sees is what it sees in
a real library: folders, names, stat and the first bytes of each file; not the pixels.

Each file is one of 16 small Pillow JPEGs (16x16, a different colour each, made once) with a COM segment right
after SOI that holds the file's number and a per-run token, so every file's bytes (and its sample hash, the first
64 KiB) differ; each is ~0.5-0.6 KB and decodes. The bytes are written directly (no encoder per file):
a million files take a minute or two, mostly the file system.

`DIR/.photo-sorter-scale-tree` marks a generated tree (a hidden file: the scanner skips it). A non-empty DIR is
refused (exit 2) unless --force, and --force only works on a DIR with that marker: it deletes the files and folders
this script makes (`YYYY/MM/day-DD/IMG_*.jpg`), leaves anything else, and generates again.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import re
import sys
import time
from pathlib import Path

MARKER = ".photo-sorter-scale-tree"
START = datetime.date(2015, 1, 1)
GENERATED = re.compile(r"^\d{4}/\d{2}/day-\d{2}(/IMG_\d+\.jpg)?$")
TEMPLATES = 16


class Refusal(Exception):
    pass


def templates(seed: int) -> list[bytes]:
    from PIL import Image
    out = []
    for t in range(TEMPLATES):
        img = Image.new("RGB", (16, 16))
        px = img.load()
        for y in range(16):
            for x in range(16):
                px[x, y] = ((t * 16 + x * 8 + seed) % 256, (y * 16 + t * 5) % 256, (x * y + t * 37) % 256)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        data = buf.getvalue()
        assert data[:2] == b"\xff\xd8"
        out.append(data)
    return out


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The JPEG with a COM segment (FF FE, big-endian length incl. itself) right after SOI."""
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def clean(root: Path) -> tuple[int, list[str]]:
    """Deletes what a previous run generated under `root`; returns (files deleted, other entries left)."""
    removed, others = 0, []
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel_dir = os.path.relpath(dirpath, root)
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            if rel == MARKER:
                continue
            m = GENERATED.match(rel)
            if m and m.group(1):
                os.unlink(os.path.join(dirpath, f))
                removed += 1
            else:
                others.append(rel)
        if rel_dir != "." and re.match(r"^\d{4}(/\d{2}(/day-\d{2})?)?$", rel_dir):
            try:
                os.rmdir(dirpath)
            except OSError:
                others.append(rel_dir + "/")
    return removed, others


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--per-folder", type=int, default=200)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--force", action="store_true", help="replace a tree this script generated (DIR holds its marker)")
    args = ap.parse_args()
    root: Path = args.dir
    try:
        if args.files < 1:
            raise Refusal("--files must be >= 1")
        if not 1 <= args.per_folder <= 100_000:
            raise Refusal("--per-folder must be between 1 and 100000")
        if root.exists() and not root.is_dir():
            raise Refusal(f"{root} exists and is not a directory")
        if root.is_dir() and any(root.iterdir()):
            if not args.force:
                raise Refusal(f"refusing to write into {root}: it is not empty (--force replaces a tree this script made)")
            if not (root / MARKER).is_file():
                raise Refusal(f"refusing --force on {root}: it is not empty and holds no {MARKER} marker "
                              "(not a tree this script generated)")
    except Refusal as e:
        print(f"generate_tree: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if root.is_dir() and any(root.iterdir()):
        removed, others = clean(root)
        print(f"--force: deleted {removed:,} generated files in {time.perf_counter() - t0:.1f} s"
              + (f"; left {len(others)} other entries (e.g. {others[:3]})" if others else ""), file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    token = os.urandom(4).hex().encode()
    (root / MARKER).write_text(json.dumps({"generator": "bench/scale/generate_tree.py", "files": args.files,
                                           "per_folder": args.per_folder, "seed": args.seed}) + "\n")
    tmpl = templates(args.seed)
    heads = [t[:2] for t in tmpl]
    tails = [t[2:] for t in tmpl]
    digits = max(7, len(str(args.files)))
    t1 = time.perf_counter()
    total = 0
    folder = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(1, args.files + 1):
        f = (i - 1) // args.per_folder
        if f != folder:
            folder = f
            day = START + datetime.timedelta(days=f)
            leaf = root / f"{day.year:04d}" / f"{day.month:02d}" / f"day-{day.day:02d}"
            leaf.mkdir(parents=True, exist_ok=True)
            leaf_s = str(leaf) + "/IMG_"
        t = (i * 7 + args.seed) % TEMPLATES
        text = b"photo-sorter scale tree %d %s" % (i, token)
        data = heads[t] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + tails[t]
        fd = os.open(f"{leaf_s}{i:0{digits}d}.jpg", flags, 0o644)
        os.write(fd, data)
        os.close(fd)
        total += len(data)
        if i % 100_000 == 0:
            print(f"  {i:,}/{args.files:,} files ({time.perf_counter() - t1:.1f} s)", file=sys.stderr, flush=True)
    dt = time.perf_counter() - t1
    folders = (args.files + args.per_folder - 1) // args.per_folder
    print(f"generated {root}: {args.files:,} JPEGs in {folders:,} folders, {total:,} bytes ({total / 2**20:.1f} MiB) "
          f"in {dt:.1f} s, {args.files / dt:,.0f} files/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
