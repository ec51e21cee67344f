#!/usr/bin/env python3
r"""Issue 22: what XMP sidecars cost a scan — 10,000 photos scanned by the real `photo-sorter serve` with and without a
sidecar beside each photo.

    ml-service/.venv/bin/python bench/xmp/scan_sidecars.py [--files 10000] [--rounds 3] \
        [--binary .build/release/photo-sorter] [--workdir /tmp/xmp-scan-bench] [--json bench/out/xmp-scan.json] \
        [--md /tmp/xmp-scan.md] [--keep]

1. `bench/scale/generate_tree.py` writes `--files` tiny, valid, distinct JPEGs (200 a folder) into WORK/plain; the
   same files are copied into WORK/sidecars, where each photo also gets `IMG_….jpg.xmp`: a digiKam-style sidecar
   (MWG region + Microsoft region + digiKam tags, ~1.5 KB, written once by exiftool and copied with the photo's
   own name in it).
2. Per round, both trees in alternating order, each into a fresh SQLite database: `photo-sorter serve` in its
   default configuration (only `--database`, host, port, and an ML URL that answers 503 and counts requests, so
   nothing is analysed: the scan alone is measured), `POST /ingest-folder` polled until the job leaves SCANNING
   (`first scan`), then the same folder again with nothing changed (`rescan`).
3. The figures: the median over rounds of each, and the ratio sidecars / plain (the bar: ≤ 1.10 for the first scan).
   Reading the names out of a sidecar is part of the photo's analysis, not of the scan; the ML service's own figure
   for it is in bench/RESULTS.md next to this one.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench" / "files"))
sys.path.insert(0, str(REPO / "e2e"))
import follow_files as ff  # noqa: E402
import harness  # noqa: E402

BAR = 1.10


def sidecar_template(work: Path) -> str:
    """A digiKam-style sidecar (MWG + MP regions, TagsList) written by exiftool, with PHOTO where the name goes."""
    xmp = work / "template.xmp"
    xmp.unlink(missing_ok=True)
    cmd = ["exiftool", "-q", "-o", str(xmp),
           "-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=640,H=480,Unit=pixel},RegionList=[{Area={X=0.5,Y=0.4,W=0.2,H=0.3,"
           "Unit=normalized},Name=Ann Example,Type=Face}]}",
           "-XMP-MP:RegionInfoMP={Regions=[{PersonDisplayName=Ann Example,Rectangle=0.4\\, 0.25\\, 0.2\\, 0.3}]}",
           "-XMP-digiKam:TagsList=People/Ann Example", "-XMP-dc:Title=PHOTO"]
    subprocess.run(cmd, check=True, capture_output=True)
    return xmp.read_text()


def make_trees(files: int, work: Path) -> tuple[Path, Path, int]:
    plain, side = work / "plain", work / "sidecars"
    for tree in (plain, side):
        if tree.exists():
            shutil.rmtree(tree)
    r = subprocess.run([sys.executable, str(REPO / "bench" / "scale" / "generate_tree.py"), str(plain), "--files", str(files)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"generate_tree.py exited {r.returncode}: {r.stderr[-2000:]}")
    shutil.copytree(plain, side)
    template = sidecar_template(work)
    size = 0
    for photo in sorted(side.rglob("*.jpg")):
        text = template.replace("PHOTO", photo.name)
        (photo.parent / (photo.name + ".xmp")).write_text(text)
        size += len(text)
    return plain, side, size // max(1, files)


def one_scan(binary: Path, tree: Path, work: Path, label: str, ml_url: str) -> dict:
    database = str(work / f"{label}.sqlite")
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)
    serve = ff.Serve(binary, database, work / f"{label}.log", ml_url,
                     extra_env={"PHOTO_SORTER_QUEUE_HIGH_WATERMARK": "100000000"})
    try:
        cpu0 = ff.cpu_seconds(serve.pid)
        first = ff.scan(serve, tree, 0.05)
        cpu1 = ff.cpu_seconds(serve.pid)
        again = ff.scan(serve, tree, 0.05)
        cpu2 = ff.cpu_seconds(serve.pid)
    finally:
        serve.stop()
    first["cpu_s"], again["cpu_s"] = cpu1 - cpu0, cpu2 - cpu1
    return {"first": first, "rescan": again}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", type=Path, default=REPO / ".build" / "release" / "photo-sorter")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/xmp-scan-bench"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    plain, side, sidecar_bytes = make_trees(args.files, work)
    ml = ff.MLCounter()
    runs = {"plain": [], "sidecars": []}
    try:
        for r in range(args.rounds):
            order = [("plain", plain), ("sidecars", side)]
            for label, tree in (order if r % 2 == 0 else order[::-1]):
                result = one_scan(args.binary.resolve(), tree, work, label, f"http://127.0.0.1:{ml.port}")
                runs[label].append(result)
                ff.log(f"round {r + 1} {label}: first {result['first']['seconds']:.2f} s "
                       f"(scanned {result['first']['scanned']}, queued {result['first']['queued']}, "
                       f"skipped {result['first']['skipped']}, not queued {result['first']['not_queued_count']}), "
                       f"rescan {result['rescan']['seconds']:.2f} s; CPU {result['first']['cpu_s']:.2f} / {result['rescan']['cpu_s']:.2f} s")
    finally:
        ml.close()
    median = {label: {phase: statistics.median(x[phase]["seconds"] for x in runs[label]) for phase in ("first", "rescan")}
              for label in runs}
    cpu = {label: {phase: statistics.median(x[phase]["cpu_s"] for x in runs[label]) for phase in ("first", "rescan")}
           for label in runs}
    report = {"started": started, "machine": ff.machine(), "files": args.files, "rounds": args.rounds,
              "sidecar_bytes": sidecar_bytes, "commit": ff.git("rev-parse", "--short", "HEAD"), "runs": runs, "median": median, "median_cpu": cpu,
              "ratio": {phase: median["sidecars"][phase] / median["plain"][phase] for phase in ("first", "rescan")},
              "ml_requests": ml.snapshot(),
              "command": "ml-service/.venv/bin/python bench/xmp/scan_sidecars.py " + " ".join(sys.argv[1:])}
    checks = [r["first"]["queued"] == args.files for label in runs for r in runs[label]]
    report["every_photo_queued"] = all(checks)
    # A sidecar beside its photo goes with it: not an entry of its own, never listed as "not a photo".
    report["sidecars_with_photos"] = all(r["first"]["scanned"] == args.files and r["first"]["not_queued_count"] == 0
                                         for r in runs["sidecars"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ratio = report["ratio"]
    md = "\n".join([
        f"**Scanning with sidecars** ({report['started']}, {report['machine']['text']}, commit {report['commit']}, release build, "
        f"SQLite, default configuration; `{report['command']}`): {args.files:,} photos, each with a "
        f"{sidecar_bytes:,}-byte digiKam-style `.jpg.xmp` or none, {args.rounds} alternating rounds, medians:",
        "",
        "| | no sidecars | with sidecars | ratio | bar |",
        "|---|---|---|---|---|",
        f"| first scan, wall | {median['plain']['first']:.2f} s | {median['sidecars']['first']:.2f} s | {ratio['first']:.3f} | "
        f"≤ {BAR:.2f}: {'met' if ratio['first'] <= BAR else 'MISSED'} |",
        f"| first scan, CPU of serve | {cpu['plain']['first']:.2f} s | {cpu['sidecars']['first']:.2f} s | "
        f"{cpu['sidecars']['first'] / cpu['plain']['first']:.3f} | |",
        f"| rescan, nothing changed, wall | {median['plain']['rescan']:.2f} s | {median['sidecars']['rescan']:.2f} s | "
        f"{ratio['rescan']:.3f} | |",
        f"| rescan, CPU of serve | {cpu['plain']['rescan']:.2f} s | {cpu['sidecars']['rescan']:.2f} s | "
        f"{cpu['sidecars']['rescan'] / cpu['plain']['rescan']:.3f} | |",
        "",
        f"Every photo queued once: {report['every_photo_queued']}; every sidecar went with its photo ({args.files:,} entries "
        f"scanned, none listed as \"not a photo\"): {report['sidecars_with_photos']}. Nothing was analysed (ML requests during the scans: "
        f"{report['ml_requests']}, all answered 503).",
    ])
    print(md)
    if args.md:
        args.md.write_text(md + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ratio["first"] <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
