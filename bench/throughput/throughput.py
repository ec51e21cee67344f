#!/usr/bin/env python3
"""End-to-end throughput: `photo-sorter sort` against a single-process dlib baseline on the same photos.

    ml-service/.venv/bin/python bench/throughput/throughput.py [--copies 2] [--results-md]

Builds a temporary folder of `lfw_small` x N copies (hard links under distinct paths; the service
dedupes by path, so every copy is a new photo) plus the group photos of `face_recognition_examples`
and `dlib_faces`, then
  1. runs `photo-sorter sort <folder> --summary-json ...` on a fresh SQLite database (release binary
     preferred), which starts the ML service as a child process;
  2. runs bench/throughput/baseline_dlib.py on the same file list: the same dlib models called one
     photo at a time in one process (full-res load, HOG upsample 1, 5-point landmarks, ResNet).
Reports photos/s for both, their ratio, and the orchestration overhead share
1 - (ml_seconds / ml_workers) / wall_seconds from the sort summary.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "e2e"))
import harness  # noqa: E402


def build_input(faces: Path, dst: Path, copies: int) -> list[Path]:
    lfw = faces / "lfw_small"
    if not lfw.is_dir():
        sys.exit(f"{lfw} not found (set --faces-dir or PHOTO_SORTER_FACES_DIR)")
    for c in range(copies):
        harness.copy_tree(lfw, dst / f"lfw_copy{c + 1}")
    for s in ("face_recognition_examples", "dlib_faces"):
        if (faces / s / "_group").is_dir():
            harness.copy_tree(faces / s / "_group", dst / "_group" / s)
    return harness.list_images(dst)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=2, help="copies of lfw_small (576 photos each); default 2")
    ap.add_argument("--faces-dir", type=Path, default=None, help="test photo root (default ../shared/testdata/faces)")
    ap.add_argument("--binary", type=Path, help="photo-sorter binary (default: $PHOTO_SORTER_BIN, release, debug)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for photo-sorter, e.g. PHOTO_SORTER_ML_WORKERS=2 (repeatable)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the single-process dlib baseline")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--results-md", type=Path, nargs="?", const=HERE.parent / "RESULTS.md",
                    help="write the '## End-to-end throughput' section of this file (default bench/RESULTS.md)")
    ap.add_argument("--workdir", type=Path, help="keep the input folder, database and logs here")
    ap.add_argument("--start-ml", action="store_true",
                    help="start the ML service here and hand it to `sort` with --ml-url, instead of letting "
                         "`sort` start it")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)

    faces = (args.faces_dir or harness.faces_dir()).resolve()
    binary = Path(os.path.abspath(args.binary)) if args.binary else harness.find_binary(prefer_release=True)
    try:
        env = harness.parse_env_pairs(args.env)
    except ValueError as error:
        ap.error(str(error))
    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="photo-sorter-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inp = work / "photos"
        if inp.exists():
            shutil.rmtree(inp)
        photos = build_input(faces, inp, args.copies)
        print(f"[throughput] {len(photos)} photos in {inp}", file=sys.stderr, flush=True)

        db = work / "throughput.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        result_load = {"before_sort": os.getloadavg()[0]}
        print(f"[throughput] photo-sorter sort ({os.path.relpath(binary, harness.REPO)}) ...",
              file=sys.stderr, flush=True)
        rc, summary, outer_wall = harness.run_sort(binary, inp, str(db), work / "summary.json", work / "sort.log",
                                                   timeout=args.timeout, start_ml=args.start_ml, **env)
        if summary is None:
            print((work / "sort.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            sys.exit(f"photo-sorter sort exited {rc} without a summary")
        wall = float(summary["wall_seconds"])
        processed = int(summary["processed"])
        pipe_rate = processed / wall if wall > 0 else 0.0
        ml_workers = max(1, int(summary.get("ml_workers") or 1))
        overhead = 1.0 - (float(summary["ml_seconds"]) / ml_workers) / wall if wall > 0 else None
        result = {
            "photos": len(photos), "copies": args.copies, "binary": os.path.relpath(binary, harness.REPO),
            "sort": {"exit_code": rc, "summary": summary, "process_wall_seconds": round(outer_wall, 2),
                     "photos_per_second": round(pipe_rate, 3),
                     "photos_per_second_incl_startup": round(processed / outer_wall, 3) if outer_wall else None,
                     "orchestration_overhead_share": None if overhead is None else round(overhead, 4)},
        }
        print(f"[throughput] sort: {processed} processed, {summary['failed']} failed, {summary['faces']} faces "
              f"in {wall:.1f}s -> {pipe_rate:.2f} photos/s; overhead share {overhead:.3f}", flush=True)

        result["load_average_1m"] = result_load
        if not args.no_baseline:
            result_load["before_baseline"] = os.getloadavg()[0]
            lst = work / "photos.txt"
            lst.write_text("\n".join(str(p) for p in photos) + "\n")
            print("[throughput] single-process dlib baseline ...", file=sys.stderr, flush=True)
            proc = subprocess.run([str(harness.ml_python()), str(HERE / "baseline_dlib.py"), "--list", str(lst)],
                                  capture_output=True, text=True, timeout=args.timeout)
            if proc.returncode != 0:
                sys.exit(f"baseline failed:\n{proc.stderr[-4000:]}")
            base = json.loads(proc.stdout.strip().splitlines()[-1])
            base_rate = base["photos"] / base["seconds"] if base["seconds"] else 0.0
            base["photos_per_second"] = round(base_rate, 3)
            result["baseline"] = base
            result["speedup"] = round(pipe_rate / base_rate, 3) if base_rate else None
            print(f"[throughput] baseline: {base['photos']} photos, {base['faces']} faces in {base['seconds']:.1f}s "
                  f"-> {base_rate:.2f} photos/s; pipeline/baseline = {result['speedup']}", flush=True)

        date = time.strftime("%Y-%m-%d %H:%M:%S %z")
        result["date"] = date
        result["machine"] = harness.machine_description()
        print(json.dumps(result, indent=2, default=str))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2, default=str))
        if args.results_md:
            harness.update_results_section(args.results_md, "End-to-end throughput", markdown(result, argv))
            print(f"[throughput] updated '## End-to-end throughput' in {args.results_md}", file=sys.stderr)
        return 0 if rc == 0 else 1
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def markdown(r: dict, argv) -> str:
    s = r["sort"]
    sm = s["summary"]
    args = [a for a in (argv if argv is not None else sys.argv[1:])]
    cmd = " ".join(shlex.quote(a) for a in ["ml-service/.venv/bin/python", "bench/throughput/throughput.py", *args])
    lines = [
        f"Measured {r['date']} on {r['machine']}; binary `{r['binary']}`; 1-minute load average before the runs: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in r["load_average_1m"].items()) + ".",
        "",
        "```",
        cmd,
        "```",
        "",
        f"Input: `lfw_small` x {r['copies']} (hard-linked copies under distinct paths) + the group photos of "
        f"`face_recognition_examples` and `dlib_faces` = {r['photos']} photos.",
        "",
        "| run | photos | faces | seconds | photos/s |",
        "|---|---|---|---|---|",
        f"| `photo-sorter sort` ({sm['ml_workers']} ML workers) | {sm['processed']} processed, {sm['failed']} failed "
        f"| {sm['faces']} | {float(sm['wall_seconds']):.1f} (process incl. start-up {s['process_wall_seconds']:.1f}) "
        f"| {s['photos_per_second']:.2f} |",
    ]
    if "baseline" in r:
        b = r["baseline"]
        lines.append(f"| baseline: dlib in one process, one photo at a time | {b['photos']} | {b['faces']} "
                     f"| {b['seconds']:.1f} (+ {b['model_load_seconds']:.1f} model load) | {b['photos_per_second']:.2f} |")
        lines += ["", f"Pipeline / baseline throughput: **{r['speedup']:.2f}x**."]
        same = "the same number of" if int(b["faces"]) == int(sm["faces"]) else "different numbers of"
        lines += ["", "Both use the same source-built dlib and models. The gain comes from running the ML workers on "
                  "every core and from the ML service detecting on a copy at most 1600 px wide (upsampling only small "
                  "images) where the baseline scans the full-resolution image upsampled; the two found "
                  f"{same} faces here ({sm['faces']} vs {b['faces']})."]
    lines += [
        "",
        f"Orchestration overhead share = 1 - (ml_seconds / ml_workers) / wall_seconds = 1 - ({float(sm['ml_seconds']):.1f}"
        f" / {sm['ml_workers']}) / {float(sm['wall_seconds']):.1f} = **{s['orchestration_overhead_share']:.3f}** "
        "(time the ML workers were not busy with photos: scanning, queueing, callbacks, identity resolution, idle "
        "tail).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
