#!/usr/bin/env python3
r"""Identity accuracy after `photo-sorter sort` with its closing re-cluster, on labelled photo trees.

    ml-service/.venv/bin/python bench/recluster/accuracy_after_recluster.py \
        [../shared/testdata/lfw_scale ...] [--results-md] [--json out.json]

For each tree `<root>/<identity>/<photo>` it runs the real `photo-sorter sort <root>` (default model, its own ML
child, closing re-cluster on) into a fresh SQLite database, then reads every face from the database file
(read-only) and scores the labelled face of each photo (the detection nearest the image centre) with
bench/accuracy/metrics.py: pairwise and BCubed precision / recall / F1. Photos without a face count as misses.

Bars: lfw_small pairwise precision >= 0.995 and BCubed F1 >= 0.99 (also checked by
e2e/test_people.py); lfw_scale pairwise precision >= 0.99 and BCubed F1 >= 0.98.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e"))
sys.path.insert(0, str(REPO / "bench" / "accuracy"))
import harness  # noqa: E402
import metrics  # noqa: E402

DEFAULT_ROOTS = [REPO.parent / "shared" / "testdata" / "lfw_scale"]
BARS = {"lfw_small": (0.995, 0.99), "lfw_scale": (0.99, 0.98)}
RESULTS_HEADING = "Identity after sort with its closing re-cluster"  # one section per set: "<heading> (<set>)"


def log(msg: str) -> None:
    print(f"[accuracy-after-recluster] {msg}", file=sys.stderr, flush=True)


def read_faces(db: Path) -> dict:
    """realpath -> (width, height, [(bbox, person_id)])."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        con.execute("SELECT 1 FROM embeddings LIMIT 1").fetchall()
    except sqlite3.Error:
        con = sqlite3.connect(str(db))
    try:
        out = {}
        for path, w, h in con.execute("SELECT path, width, height FROM photos"):
            out[os.path.realpath(path)] = (w, h, [])
        for path, x1, y1, x2, y2, pid in con.execute("""
                SELECT p.path, e.bbox_x1, e.bbox_y1, e.bbox_x2, e.bbox_y2, e.person_id
                FROM embeddings e JOIN photos p ON p.id = e.photo_id ORDER BY e.id"""):
            out[os.path.realpath(path)][2].append(([x1, y1, x2, y2], pid))
        persons = con.execute("SELECT COUNT(*) FROM persons WHERE merged_into IS NULL AND face_count > 0").fetchone()[0]
    finally:
        con.close()
    return {"photos": out, "live_persons": persons}


def evaluate(root: Path, binary: Path, workdir: Path, timeout: float) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "photo-sorter.sqlite"
    log(f"sorting {root} ...")
    rc, summary, wall = harness.run_sort(binary, root, str(db), workdir / "summary.json", workdir / "sort.log", timeout=timeout)
    if summary is None or rc not in (0, 1):
        raise RuntimeError(f"sort of {root} exited {rc}:\n{(workdir / 'sort.log').read_text(errors='replace')[-4000:]}")
    data = read_faces(db)
    labels, preds = [], []
    for path, ident in harness.labelled_photos(root):
        w, h, dets = data["photos"].get(path, (None, None, []))
        labels.append(ident)
        preds.append(harness.labelled_person({"width": w, "height": h, "path": path,
                                              "detections": [{"bbox": b, "person_id": p} for b, p in dets]}, path))
    result = metrics.evaluate(labels, preds)
    result["sort_exit_code"] = rc
    result["sort_wall_seconds"] = round(wall, 1)
    result["summary"] = summary
    result["live_persons"] = data["live_persons"]
    pw, bc = result["pairwise"], result["bcubed"]
    log(f"{root.name}: pairwise P {pw['precision']:.4f} R {pw['recall']:.4f}; BCubed P {bc['precision']:.4f} "
        f"R {bc['recall']:.4f} F1 {bc['f1']:.4f}; sort {wall:.0f} s; closing re-cluster {summary.get('recluster')}")
    return result


def recluster_text(rc: dict | None) -> str:
    if not rc:
        return "not reported"
    return (f"{rc.get('faces')} faces, {rc.get('faces_moved')} moved, {rc.get('persons_created')} persons created, "
            f"{rc.get('persons_merged')} merged, {rc.get('seconds', 0):.1f} s")


def results_md(name: str, r: dict, binary: Path, machine: str, date: str) -> str:
    c, pw, bc = r["counts"], r["pairwise"], r["bcubed"]
    shared = r["consistency"]["shared_majority_ids"]
    verdict = "no bar for this set"
    if name in BARS:
        p_bar, f_bar = BARS[name]
        ok = pw["precision"] >= p_bar and bc["f1"] >= f_bar
        verdict = f"pairwise precision ≥ {p_bar} and BCubed F1 ≥ {f_bar} — {'met' if ok else '**not met**'}"
    binary_rel = os.path.relpath(binary, REPO) if str(binary).startswith(str(REPO)) else str(binary)
    pairs = "; ".join(" / ".join(ids) for _, ids in shared) or "none"
    return f"""
Measured {date} on {machine}; binary `{binary_rel}`. `photo-sorter sort` with its defaults (ArcFace, closing
re-cluster on) into a fresh database; faces read from the SQLite file; labelled face = the detection nearest the image
centre (photos without a face count as misses).

```
ml-service/.venv/bin/python bench/recluster/accuracy_after_recluster.py <root> --results-md
```

| data set | photos | identities | no face | person ids | pairwise P / R / F1 | BCubed P / R / F1 | shared majority ids | sort s |
|---|---|---|---|---|---|---|---|---|
| {name} | {c['photos']} | {c['identities']} | {c['photos_without_face']} | {c['predicted_persons']} | **{pw['precision']:.4f}** / {pw['recall']:.3f} / {pw['f1']:.3f} | {bc['precision']:.3f} / {bc['recall']:.3f} / **{bc['f1']:.4f}** | {sum(len(x[1]) for x in shared)} | {r['sort_wall_seconds']:.0f} |

Bars: {verdict}. Closing re-cluster of this sort: {recluster_text(r['summary'].get('recluster'))}.
Identities sharing a majority id: {pairs}.
""".strip("\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", type=Path, nargs="*", default=DEFAULT_ROOTS)
    ap.add_argument("--binary", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory (removed afterwards)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--results-md", action="store_true", help="write the section of bench/RESULTS.md")
    args = ap.parse_args()

    binary = args.binary.absolute() if args.binary else harness.find_binary()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="acc-recluster-"))
    results = {}
    try:
        for root in args.roots:
            root = root.resolve()
            results[root.name] = evaluate(root, binary, workdir / root.name, args.timeout)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.results_md:
        machine = harness.machine_description()
        for name, r in results.items():
            harness.update_results_section(REPO / "bench" / "RESULTS.md", f"{RESULTS_HEADING} ({name})",
                                           results_md(name, r, binary, machine, date))
        log("bench/RESULTS.md updated")
    failed = [n for n, r in results.items() if n in BARS and
              (r["pairwise"]["precision"] < BARS[n][0] or r["bcubed"]["f1"] < BARS[n][1])]
    print(json.dumps({n: {"pairwise_precision": r["pairwise"]["precision"], "bcubed_f1": r["bcubed"]["f1"],
                          "sort_wall_seconds": r["sort_wall_seconds"]} for n, r in results.items()}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
