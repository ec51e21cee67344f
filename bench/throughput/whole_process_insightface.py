#!/usr/bin/env python3
"""Whole process, `photo-sorter sort` against the insightface loop (issue 23, "Numbers").

Builds one folder of photos (every photo of the test set outside lfw_small, i.e. the largest ones, plus the
first N lfw_small photos in path order; hard links or copies), then runs alternately, `--runs` times each:

  (a) photo-sorter sort FOLDER --database <fresh sqlite> --no-progress --summary-json ...   (default config:
      it starts its own ML service)
  (b) ml-service/.venv/bin/python bench/throughput/baseline_insightface.py --folder FOLDER
  (a0) with --before: the same `sort` with an earlier binary (and ML service), to compare with (a)
  (c) with --floor: bench/throughput/pipeline_floor.py, photo-sorter's ML pipeline alone in its worker pool (no
      services, no HTTP, no database): the floor under (a)

Wall time per run from time.perf_counter around the child; CPU time (user+sys) from the delta of
resource.getrusage(RUSAGE_CHILDREN), which counts the child and every descendant it waited for. Reports
medians and the wall-time ratio b/a. Hold the bench lock around the whole thing:

    flock /tmp/photo-sorter-bench.lock ml-service/.venv/bin/python bench/throughput/whole_process_insightface.py \
        --json /tmp/whole.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXT = {".jpg", ".jpeg", ".png"}


def build_folder(faces: Path, dst: Path, lfw: int) -> list[tuple[Path, Path]]:
    big = sorted(p for p in faces.rglob("*") if p.suffix.lower() in EXT and p.is_file()
                 and "lfw_small" not in p.parts and "_meta" not in p.parts)
    small = sorted(p for p in (faces / "lfw_small").rglob("*") if p.suffix.lower() in EXT)[:lfw]
    pairs = []
    for src in big + small:
        rel = src.relative_to(faces)
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, out)
        except OSError:
            shutil.copy2(src, out)
        pairs.append((src, rel))
    return pairs


def timed(cmd: list[str], env=None, log: Path | None = None) -> tuple[float, float, int]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log or os.devnull, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces-dir", default=os.environ.get("PHOTO_SORTER_FACES_DIR", str(REPO.parent / "shared/testdata/faces")))
    ap.add_argument("--lfw", type=int, default=327, help="lfw_small photos added (default 327 → 361 with the 34 others)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default=os.environ.get("PHOTO_SORTER_BIN", str(REPO / ".build/release/photo-sorter")))
    ap.add_argument("--python", default=str(REPO / "ml-service/.venv/bin/python"))
    ap.add_argument("--workdir", help="keep folder, databases and logs here")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--before", metavar="BINARY[,PYTHON]",
                    help="also run `sort` with this binary (and this ML venv's python) in every round: (a0), "
                         "an earlier version to compare with")
    ap.add_argument("--floor", action="store_true",
                    help="also run (c) bench/throughput/pipeline_floor.py, the ML pipeline alone, in every round")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ps-whole-"))
    folder = work / "photos"
    if folder.exists():
        shutil.rmtree(folder)
    pairs = build_folder(Path(args.faces_dir), folder, args.lfw)
    (work / "photos.txt").write_text("".join(f"{rel}\n" for _, rel in pairs))
    (work / "paths.txt").write_text("".join(f"{folder / rel}\n" for _, rel in pairs))
    print(f"{len(pairs)} photos in {folder}", file=sys.stderr)

    baseline = str(REPO / "bench/throughput/baseline_insightface.py")
    runs = []
    for i in range(args.runs):
        db = work / f"sort-{i}.sqlite"
        for p in work.glob(f"sort-{i}.sqlite*"):
            p.unlink()
        summary = work / f"summary-{i}.json"
        run = {}
        if args.before:
            binary, _, python = args.before.partition(",")
            env = dict(os.environ, **({"PHOTO_SORTER_ML_PYTHON": python} if python else {}))
            for p in work.glob(f"before-{i}.sqlite*"):
                p.unlink()
            w0, c0, rc0 = timed([binary, "sort", str(folder), "--database", str(work / f"before-{i}.sqlite"),
                                 "--no-progress"], env=env, log=work / f"before-{i}.log")
            run.update(a0_wall=round(w0, 3), a0_cpu=round(c0, 3), a0_rc=rc0)
        cmd_a = [args.binary, "sort", str(folder), "--database", str(db), "--no-progress", "--summary-json", str(summary)]
        wa, ca, rca = timed(cmd_a, log=work / f"sort-{i}.log")
        out_b = work / f"baseline-{i}.json"
        cmd_b = [args.python, baseline, "--folder", str(folder), "--json", str(out_b)]
        wb, cb, rcb = timed(cmd_b, log=work / f"baseline-{i}.log")
        run.update(a_wall=round(wa, 3), a_cpu=round(ca, 3), a_rc=rca, b_wall=round(wb, 3), b_cpu=round(cb, 3), b_rc=rcb)
        if args.floor:
            cmd_c = [args.python, str(REPO / "bench/throughput/pipeline_floor.py"), "--list", str(work / "paths.txt")]
            wc, cc, rcc = timed(cmd_c, log=work / f"floor-{i}.log")
            run.update(c_wall=round(wc, 3), c_cpu=round(cc, 3), c_rc=rcc)
        try:
            run["a_summary"] = json.loads(summary.read_text())
        except (OSError, ValueError):
            pass
        try:
            run["b_result"] = json.loads(out_b.read_text())
        except (OSError, ValueError):
            pass
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if not isinstance(v, dict)}), file=sys.stderr)

    keys = (("a0_wall", "a0_cpu") if args.before else ()) + ("a_wall", "a_cpu", "b_wall", "b_cpu") \
        + (("c_wall", "c_cpu") if args.floor else ())
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    out = {"photos": len(pairs), "lfw": args.lfw, "others": len(pairs) - args.lfw, "runs": runs, "median": med,
           "ratio_wall_b_over_a": round(med["b_wall"] / med["a_wall"], 2),
           "ratio_cpu_b_over_a": round(med["b_cpu"] / med["a_cpu"], 2),
           "cmd_a": " ".join(cmd_a), "cmd_b": " ".join(cmd_b), "workdir": str(work),
           "photo_list": [str(rel) for _, rel in pairs]}
    if args.before:
        out["ratio_wall_b_over_a0"] = round(med["b_wall"] / med["a0_wall"], 2)
    if args.floor:
        out["ratio_wall_b_over_c"] = round(med["b_wall"] / med["c_wall"], 2)
    print(json.dumps({k: v for k, v in out.items() if k not in ("runs", "photo_list")}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
