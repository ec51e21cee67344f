#!/usr/bin/env python3
r"""Identity-accuracy benchmark: run the real pipeline on a labelled photo tree and score the ids.

    ml-service/.venv/bin/python bench/accuracy/accuracy.py ../shared/testdata/faces/lfw_small \
        [--threshold 0.5 0.6] [--json out.json] [--binary .build/release/photo-sorter]

The tree is <root>/<identity>/<photo> (labels are the folder names; folders starting with '_' are
ingested but not scored). For each threshold it runs `photo-sorter sort <root>` into a fresh temporary
SQLite database, then `photo-sorter serve` on that database and reads every photo back through the
HTTP API (GET /photos, GET /photo/{id}). The labelled face of a photo is the detection whose box
centre is nearest the image centre. Metrics: see metrics.py (pairwise and BCubed P/R/F1, the
consistency figure; photos where no face was found count as misses).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "e2e"))
import harness  # noqa: E402
import metrics  # noqa: E402


def evaluate_run(root: Path, binary: Path, workdir: Path, threshold, extra_env: dict, timeout: float,
                 start_ml: bool = False) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    db = str(workdir / "photo-sorter.sqlite")
    env = dict(extra_env)
    if threshold is not None:
        env["PHOTO_SORTER_MATCH_THRESHOLD"] = str(threshold)
    print(f"[accuracy] sorting {root} (threshold {threshold if threshold is not None else 'default'}) ...",
          file=sys.stderr, flush=True)
    rc, summary, wall = harness.run_sort(binary, root, db, workdir / "summary.json", workdir / "sort.log",
                                         timeout=timeout, start_ml=start_ml, **env)
    if summary is None:
        log = (workdir / "sort.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"photo-sorter sort exited {rc} without a summary:\n{log}")

    print(f"[accuracy] reading results back through the API ...", file=sys.stderr, flush=True)
    stack = harness.Stack(workdir / "serve", allowed_roots=[root], binary=binary, database=db,
                          with_ml=False, **env)
    try:
        photos = harness.all_photos(stack.base)
        by_path = {os.path.realpath(p["path"]): p for p in photos}
        labelled = harness.labelled_photos(root)
        labels, preds, missing_rows, failed = [], [], [], []
        for path, ident in labelled:
            row = by_path.get(path)
            if row is None:
                missing_rows.append(path)
                pred = None
            else:
                detail = stack.get(f"/photo/{row['photo_id']}")
                if detail["status"] != "PROCESSED":
                    failed.append(path)
                pred = harness.labelled_person(detail, path)
            labels.append(ident)
            preds.append(pred)
    finally:
        stack.stop()

    result = metrics.evaluate(labels, preds)
    names = [os.path.basename(p) for p, _ in labelled]
    if any(n.startswith("profile_") for n in names) and any(n.startswith("frontal_") for n in names):
        # CFP's layout: do the profiles join the person that holds the same person's frontal photos?
        result["profiles"] = metrics.subset_on_reference_majority(labels, preds, [n.startswith("profile_") for n in names])
    result["counts"]["labelled_faces_unsorted"] = sum(1 for p in preds if isinstance(p, tuple))
    result["counts"]["photos_not_in_database"] = len(missing_rows)
    result["counts"]["labelled_photos_not_processed"] = len(failed)
    result["counts"]["all_photos_in_database"] = len(photos)
    result["threshold"] = threshold
    result["sort_exit_code"] = rc
    result["sort_wall_seconds"] = round(wall, 2)
    result["summary"] = summary
    result["misses"] = sorted(os.path.relpath(p, root) for p, pr in zip((p for p, _ in labelled), preds)
                              if pr is None)
    return result


def fmt(result: dict) -> str:
    c, pw, bc, co = result["counts"], result["pairwise"], result["bcubed"], result["consistency"]
    s = result["summary"]
    th = result["threshold"] if result["threshold"] is not None else "default"
    lines = [
        f"threshold {th}: {c['photos']} labelled photos, {c['identities']} identities, "
        f"{c['predicted_persons']} person ids on labelled faces ({s.get('persons')} persons in the database)",
        f"  no face found:   {c['photos_without_face']} labelled photos (counted as misses); "
        f"unsorted: {c.get('labelled_faces_unsorted', 0)} labelled faces (singletons)"
        + (f", not processed: {c['labelled_photos_not_processed']}" if c["labelled_photos_not_processed"] else ""),
        f"  pairwise         P {pw['precision']:.4f}  R {pw['recall']:.4f}  F1 {pw['f1']:.4f}",
        f"  BCubed           P {bc['precision']:.4f}  R {bc['recall']:.4f}  F1 {bc['f1']:.4f}",
        f"  consistency      {co['micro']:.4f} ({co['photos_on_majority_id']}/{c['photos']} photos on their "
        f"person's majority id; per-identity mean {co['macro']:.4f})",
        f"  identities sharing a majority id: {c['identities_sharing_a_majority_id']}",
        *([f"  profiles on the majority id of their frontal photos: {result['profiles']['on_reference_majority']}/"
           f"{result['profiles']['items']} ({result['profiles']['share']:.4f})"] if "profiles" in result else []),
        f"  sort: exit {result['sort_exit_code']}, {s.get('photos_total')} photos, {s.get('failed')} failed, "
        f"{s.get('faces')} faces, {result['sort_wall_seconds']}s",
    ]
    return "\n".join(lines)


def markdown(results: list, binary: Path, date: str) -> str:
    cmd = " ".join(_shell_quote(a) for a in ["ml-service/.venv/bin/python",
                                               "bench/accuracy/accuracy.py", *_relative_args(sys.argv[1:])])
    out = [
        f"Measured {date} on {harness.machine_description()}; binary `{_rel(binary)}`.",
        "",
        "```",
        cmd,
        "```",
        "",
        "Labelled face = detection nearest the image centre. Photos where no face was found count as misses.",
        "Consistency = share of labelled photos carrying their person's majority id (bar: >= 95%).",
        "Consistency alone rewards merging people: read it with precision and with *shared majority ids* (identities",
        "whose majority id is also another identity's majority id, i.e. merged people).",
        "",
        "| data set | threshold | photos | identities | no face | person ids | pairwise P / R / F1 "
        "| BCubed P / R / F1 | consistency | shared majority ids |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, pw, bc, co = r["counts"], r["pairwise"], r["bcubed"], r["consistency"]
        th = r["threshold"] if r["threshold"] is not None else "default"
        out.append(f"| {Path(r['root']).name} | {th} | {c['photos']} | {c['identities']} | {c['photos_without_face']} "
                   f"| {c['predicted_persons']} | {pw['precision']:.3f} / {pw['recall']:.3f} / {pw['f1']:.3f} "
                   f"| {bc['precision']:.3f} / {bc['recall']:.3f} / {bc['f1']:.3f} | {co['micro']:.3f} "
                   f"| {c['identities_sharing_a_majority_id']} |")
    misses = [f"{Path(r['root']).name}/{m}" for r in results[:1] for m in r["misses"]]
    if misses:
        out += ["", "Photos with no face found (first run): " + ", ".join(f"`{m}`" for m in misses[:20])
                + (f" and {len(misses) - 20} more" if len(misses) > 20 else "")]
    return "\n".join(out)


def _rel(p) -> str:
    try:
        return os.path.relpath(p, harness.REPO)
    except ValueError:
        return str(p)


def _relative_args(args: list) -> list:
    out = []
    for a in args:
        if os.path.exists(a) and os.path.isabs(a):
            a = _rel(a)
        out.append(a)
    return out


def _shell_quote(a: str) -> str:
    import shlex
    return shlex.quote(a)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", type=Path, nargs="+", metavar="root", help="<root>/<identity>/<photo> tree(s)")
    ap.add_argument("--threshold", type=float, nargs="+", default=[None],
                    help="PHOTO_SORTER_MATCH_THRESHOLD value(s); several values run a sweep")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for photo-sorter (repeatable)")
    ap.add_argument("--binary", type=Path, help="photo-sorter binary (default: $PHOTO_SORTER_BIN, release, debug)")
    ap.add_argument("--json", type=Path, help="write all results to this JSON file")
    ap.add_argument("--workdir", type=Path, help="keep databases and logs here (default: a temp dir, removed)")
    ap.add_argument("--results-md", type=Path, nargs="?", const=HERE.parent / "RESULTS.md",
                    help="write the '## Identity accuracy' section of this Markdown file (default bench/RESULTS.md)")
    ap.add_argument("--start-ml", action="store_true",
                    help="start the ML service here and hand it to `sort` with --ml-url, instead of letting "
                         "`sort` start it")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one sort run")
    args = ap.parse_args(argv)

    roots = [r.resolve() for r in args.roots]
    for root in roots:
        if not root.is_dir():
            ap.error(f"not a folder: {root}")
        if not harness.labelled_photos(root):
            ap.error(f"no <identity>/<photo> files under {root}")
    binary = Path(os.path.abspath(args.binary)) if args.binary else harness.find_binary(prefer_release=True)
    try:
        extra_env = harness.parse_env_pairs(args.env)
    except ValueError as error:
        ap.error(str(error))

    base = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="photo-sorter-accuracy-"))
    results = []
    try:
        n = 0
        for root in roots:
            for th in args.threshold:
                r = evaluate_run(root, binary, base / f"run-{n}", th, extra_env, args.timeout, args.start_ml)
                n += 1
                r["root"] = str(root)
                results.append(r)
                print(f"== {root.name}")
                print(fmt(r), flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)

    date = time.strftime("%Y-%m-%d %H:%M:%S %z")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"binary": str(binary), "date": date, "machine": harness.machine_description(),
                                         "runs": results}, indent=2, default=str))
        print(f"[accuracy] wrote {args.json}", file=sys.stderr)
    if args.results_md:
        harness.update_results_section(args.results_md, "Identity accuracy", markdown(results, binary, date))
        print(f"[accuracy] updated '## Identity accuracy' in {args.results_md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
