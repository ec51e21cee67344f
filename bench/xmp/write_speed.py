#!/usr/bin/env python3
r"""Issue 22, "face names travel with the photos": how fast `photo-sorter xmp write` writes the names of a library's
faces into the photos' XMP sidecars (bar: >= 500 photos/s on 10,000 photos).

    ml-service/.venv/bin/python bench/xmp/write_speed.py [--photos 12000] [--faces 13000] [--persons 1000] \
        [--binary .build/release/photo-sorter] [--workdir /tmp/xmp-bench] [--json bench/out/xmp-write.json] \
        [--md /tmp/xmp-bench.md] [--keep]

1. **Library** (setup): `bench/scale/generate_library.py` writes a PROCESSED SQLite library (`--photos` photos,
   `--faces` faces on `--faces`/1.3 of them: 10,000 with the defaults, `--persons` persons, 128-d vectors). Every
   person is then named in SQL (`Person <id>`), each photo's path is moved under WORK/tree (the generator's
   `YYYY/MM/DD/IMG_*.jpg` layout) and a small file is written there for it: `xmp write` never reads a photo, only
   the folder it is in.
2. **Runs**, each the real CLI in its default configuration (`BINARY xmp write --database DB`), timed from start to
   exit (opening the database and its migration check included); photos/s = the photos it considered (`photos` of
   its JSON: the photos with a named face) / wall time:
   - `new`: no sidecar exists; one `photo.jpg.xmp` is created per photo with a named face;
   - `current`: the same again; every sidecar already says exactly this (parsed, rebuilt, compared, left untouched);
   - `renamed`: every person renamed in SQL (`Renamed <id>`); every sidecar is parsed, its regions and keywords
     replaced, and rewritten.
3. Checks: `new` and `renamed` write one sidecar per photo with a named face, `current` writes none, nothing failed,
   and exiftool reads back one region per face of three sample photos with the names of the run.

Output: the JSON report (`--json`) and a Markdown section for bench/RESULTS.md (`--md`). WORK is deleted at the end
unless `--keep`.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench" / "files"))
from follow_files import git, machine  # noqa: E402

BAR_PHOTOS_PER_S = 500
# The photo files only have to exist beside their sidecars: the two markers of an empty JPEG.
PHOTO_BYTES = b"\xff\xd8\xff\xd9"


def log(msg: str) -> None:
    print(f"[xmp-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_library(args, work: Path) -> dict:
    database = work / "library.sqlite"
    started = time.monotonic()
    r = subprocess.run([sys.executable, str(REPO / "bench" / "scale" / "generate_library.py"), "--database", str(database),
                        "--photos", str(args.photos), "--persons", str(args.persons), "--faces", str(args.faces), "--dim", "128",
                        "--binary", str(args.binary)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"generate_library.py exited {r.returncode}: {r.stderr[-2000:]}")
    tree = work / "tree"
    db = sqlite3.connect(database)
    with db:
        db.execute("UPDATE persons SET display_name = 'Person ' || id")
        db.execute("UPDATE photos SET path = ? || substr(path, length('/library') + 1)", (str(tree),))
    paths = [row[0] for row in db.execute("SELECT path FROM photos")]
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(PHOTO_BYTES)
    counts = db.execute("""SELECT (SELECT COUNT(*) FROM photos), (SELECT COUNT(DISTINCT photo_id) FROM embeddings),
                                  (SELECT COUNT(*) FROM embeddings), (SELECT COUNT(*) FROM persons)""").fetchone()
    db.close()
    return {"database": str(database), "tree": str(tree), "photos": counts[0], "photos_with_faces": counts[1],
            "faces": counts[2], "persons": counts[3], "seconds": round(time.monotonic() - started, 1)}


def write(args, database: str) -> dict:
    started = time.monotonic()
    r = subprocess.run([str(args.binary), "xmp", "write", "--database", database], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if r.returncode != 0:
        raise SystemExit(f"xmp write exited {r.returncode}: {r.stderr[-2000:]}")
    result = json.loads(r.stdout)
    return {"seconds": round(seconds, 3), "photos_per_s": round(result["photos"] / seconds, 1),
            "summary": r.stderr.strip().splitlines()[-1],
            **{k: result[k] for k in ("photos", "written", "unchanged", "failed", "regions")}}


def sample_check(database: str, prefix: str) -> bool:
    """exiftool reads one region per face, with the run's names, from three sample sidecars."""
    db = sqlite3.connect(database)
    ids = [row[0] for row in db.execute("SELECT DISTINCT photo_id FROM embeddings ORDER BY photo_id")]
    ok = True
    for photo_id in (ids[0], ids[len(ids) // 2], ids[-1]):
        path = db.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()[0]
        names = sorted(f"{prefix} {row[0]}" for row in db.execute("SELECT person_id FROM embeddings WHERE photo_id = ?", (photo_id,)))
        out = subprocess.run(["exiftool", "-j", "-struct", "-XMP-mwg-rs:RegionInfo", path + ".xmp"], capture_output=True, text=True).stdout
        regions = json.loads(out)[0].get("RegionInfo", {}).get("RegionList", [])
        ok &= sorted(region["Name"] for region in regions) == names
    db.close()
    return ok


def markdown(report: dict) -> str:
    lib, runs = report["library"], report["runs"]
    L = ["## XMP face names (issue 22)", ""]
    L.append("### Writing names back: `photo-sorter xmp write`")
    L.append("")
    L.append(f"Measured {report['started']} on {report['machine']['text']} (`lscpu`: {report['machine']['cpu']}); binary "
             f"`{report['binary']}` (built {report['binary_built']}); commit {report['commit']}.")
    L += ["", "```", report["command"], "```", ""]
    L.append(f"A PROCESSED SQLite library from `bench/scale/generate_library.py`: {lib['photos']:,} photos, "
             f"{lib['photos_with_faces']:,} of them with faces ({lib['faces']:,} faces, {lib['persons']:,} persons, every one "
             "named), each photo a small file in a `YYYY/MM/DD/` tree (`xmp write` reads no photo). Each run is the real CLI, "
             "`photo-sorter xmp write --database DB`, timed from start to exit (opening the database included); photos/s = "
             "photos considered (those with a named face) / wall time. Files in the page cache.")
    L.append("")
    L.append("| run | photos | sidecars written / unchanged / failed | regions | wall | photos/s | bar |")
    L.append("|---|---:|---|---:|---:|---:|---|")
    labels = {"new": "no sidecars yet: every one created", "current": "again: every sidecar already current",
              "renamed": "every person renamed: every sidecar parsed and rewritten"}
    for key, label in labels.items():
        r = runs[key]
        L.append(f"| {label} | {r['photos']:,} | {r['written']:,} / {r['unchanged']:,} / {r['failed']} | {r['regions']:,} | "
                 f"{r['seconds']:.2f} s | **{r['photos_per_s']:,.0f}** | ≥ {BAR_PHOTOS_PER_S} |")
    L.append("")
    worst = min(r["photos_per_s"] for r in runs.values())
    L.append(f"Checks: {'all ok' if all(report['checks'].values()) else 'failed: ' + ', '.join(k for k, v in report['checks'].items() if not v)} "
             "(one sidecar per photo with a named face created and rewritten, none written the second time, no failure, "
             "exiftool reads one region per face with the run's names). Against the bar: slowest run "
             f"{worst:,.0f} photos/s {'✅' if worst >= BAR_PHOTOS_PER_S else '❌'}.")
    L.append("")
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=12_000)
    ap.add_argument("--faces", type=int, default=13_000)
    ap.add_argument("--persons", type=int, default=1_000)
    ap.add_argument("--binary", type=Path, default=REPO / ".build" / "release" / "photo-sorter")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/xmp-bench"))
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "xmp-write.json")
    ap.add_argument("--md", type=Path, default=Path("/tmp/xmp-bench.md"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (library, tree, sidecars)")
    args = ap.parse_args()
    if not args.binary.is_file():
        raise SystemExit(f"{args.binary} not found: swift build -c release")
    args.binary = args.binary.absolute()
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    report = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "commit": git("rev-parse", "--short", "HEAD"),
        "binary": os.path.relpath(args.binary, REPO) if args.binary.is_relative_to(REPO) else str(args.binary),
        "binary_built": datetime.datetime.fromtimestamp(args.binary.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["bench/xmp/write_speed.py", *sys.argv[1:]]),
    }
    log("generating the library")
    lib = report["library"] = make_library(args, work)
    runs = report["runs"] = {}
    log("xmp write: new sidecars")
    runs["new"] = write(args, lib["database"])
    new_ok = sample_check(lib["database"], "Person")
    log("xmp write: again, nothing changed")
    runs["current"] = write(args, lib["database"])
    db = sqlite3.connect(lib["database"])
    with db:
        db.execute("UPDATE persons SET display_name = 'Renamed ' || id")
    db.close()
    log("xmp write: every person renamed")
    runs["renamed"] = write(args, lib["database"])
    with_faces = lib["photos_with_faces"]
    report["checks"] = {
        "new_writes_every_photo": runs["new"]["written"] == with_faces == runs["new"]["photos"],
        "current_writes_nothing": runs["current"]["written"] == 0 and runs["current"]["unchanged"] == with_faces,
        "renamed_rewrites_every_photo": runs["renamed"]["written"] == with_faces,
        "no_failure": all(r["failed"] == 0 for r in runs.values()),
        "exiftool_reads_names": new_ok and sample_check(lib["database"], "Renamed"),
    }
    for key, r in runs.items():
        log(f"{key}: {r['summary']} in {r['seconds']:.2f} s = {r['photos_per_s']:,.0f} photos/s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    args.md.write_text(markdown(report))
    log(f"report: {args.json}, {args.md}")
    if not args.keep:
        shutil.rmtree(work)
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
