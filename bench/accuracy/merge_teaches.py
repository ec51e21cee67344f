#!/usr/bin/env python3
r"""Do a user's merges teach the service? Half a labelled set, a diligent user's merges, then the other half.

    flock /tmp/photo-sorter-bench.lock ml-service/.venv/bin/python bench/accuracy/merge_teaches.py \
        ../shared/testdata/hard_faces/fgnet_dev --binary .build/debug/photo-sorter --label after \
        --json bench/out/merge-teaches-fgnet-after.json
    ml-service/.venv/bin/python bench/accuracy/merge_teaches.py --table bench/out/merge-teaches-*.json

The real pipeline, end to end, for each labelled set `<root>/<identity>/<photo>` (folders starting with '_' are left
out):

1. its labelled photos are split into two halves by a seeded shuffle (`--seed`; the same split for every binary) and
   hard-linked (else copied) into `<workdir>/photos/h1/<identity>/` and `.../h2/<identity>/`;
2. `photo-sorter sort h1 --database <fresh sqlite> --no-progress` (default configuration, closing re-cluster
   included);
3. a diligent user, simulated from the labels (an upper bound of what a real user does): per identity, every
   person whose labelled faces (after half 1) are mostly that identity — the identity with the most of them, as
   `simulate_rules.py --merge-at` counts — is merged into that identity's largest person (ties: the oldest id) with
   `photo-sorter people merge <others> --into <largest>`; a merge the service refuses (409: two faces of one photo,
   ...) is retried one person at a time, and each person it still refuses is counted;
4. `photo-sorter sort h2` into the same database;
5. scores (metrics.py, as accuracy.py: labelled face = the detection nearest the photo centre, read back through
   `photo-sorter serve` and the HTTP API; a photo without a face is a miss) after half 1, after the merges (half-1
   photos) and at the end (all photos, and half 2 alone).

`--table` prints the Markdown table of JSON files this script wrote (one row per set and label).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "e2e"))
import harness  # noqa: E402
import metrics  # noqa: E402


# --------------------------------------------------------------------------- pure helpers (test_merge_teaches.py)

def split_halves(labelled: list, seed: int) -> tuple[list, list]:
    """The labelled photos [(path, identity)] in a seeded random order, cut in two: the first half (rounded down)
    arrives first. Independent of the input's order."""
    items = sorted(labelled)
    random.Random(seed).shuffle(items)
    cut = len(items) // 2
    return items[:cut], items[cut:]


def plan_merges(faces: list) -> tuple[list, dict]:
    """The user's merges for labelled faces [(identity, person id or None)] in arrival order, as
    `simulate_rules.user_merge`: each person votes for the identity most of its labelled faces carry (ties: the one
    seen first); an identity voted for by two or more persons has them merged into its largest (most labelled faces,
    then the smallest id). Returns ([(into, [others, ...])] in the order identities were first voted for, and
    counts: persons, persons whose identity holds no more than half of their labelled faces)."""
    votes: dict = defaultdict(Counter)
    for identity, person in faces:
        if person is not None:
            votes[person][identity] += 1
    fragments: dict = defaultdict(list)
    weak = 0
    for person, counter in votes.items():
        identity, count = counter.most_common(1)[0]
        total = sum(counter.values())
        weak += count * 2 <= total
        fragments[identity].append((total, person))
    plan = []
    for parts in fragments.values():
        if len(parts) < 2:
            continue
        parts.sort(key=lambda part: (-part[0], part[1]))
        plan.append((parts[0][1], [other for _, other in parts[1:]]))
    return plan, {"persons": len(votes), "persons_without_a_strict_majority": weak}


def score(items: list, preds: list) -> dict:
    """metrics.evaluate of [(path, identity)] and their person ids, plus CFP's profile figure where it applies."""
    labels = [identity for _, identity in items]
    result = metrics.evaluate(labels, preds)
    names = [os.path.basename(path) for path, _ in items]
    if any(n.startswith("profile_") for n in names) and any(n.startswith("frontal_") for n in names):
        result["profiles"] = metrics.subset_on_reference_majority(labels, preds,
                                                                  [n.startswith("profile_") for n in names])
    result["consistency"].pop("per_identity", None)
    return result


# --------------------------------------------------------------------------- the pipeline

def link_half(items: list, src_root: Path, dst_root: Path) -> list:
    """Hard-links (else copies) each photo to dst_root/<identity>/<name>; returns [(new realpath, identity)]."""
    out = []
    for path, identity in items:
        target = dst_root / identity / os.path.relpath(path, src_root / identity)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        out.append((os.path.realpath(target), identity))
    return out


def read_persons(binary: Path, database: str, photos_root: Path, items: list, workdir: Path, env: dict) -> list:
    """Person id of each item's labelled face (None: no face), through `photo-sorter serve` and the HTTP API."""
    stack = harness.Stack(workdir, allowed_roots=[photos_root], binary=binary, database=database, with_ml=False,
                          **env)
    try:
        by_path = {os.path.realpath(p["path"]): p for p in harness.all_photos(stack.base)}
        preds = []
        for path, _ in items:
            row = by_path.get(path)
            preds.append(None if row is None else harness.labelled_person(stack.get(f"/photo/{row['photo_id']}"), path))
        return preds
    finally:
        stack.stop()


def people_merge(binary: Path, database: str, others: list, into: int, log: Path, env: dict) -> dict | None:
    """`photo-sorter people merge`; None when done, else the refusal ({status, reason}, or the exit code)."""
    argv = [str(binary), "people", "merge", *map(str, others), "--into", str(into), "--database", database]
    proc = subprocess.run(argv, cwd=str(harness.REPO), env=harness.base_env(**env), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(argv[1:])}\nexit {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n")
    if proc.returncode == 0:
        return None
    try:
        refusal = json.loads(proc.stderr.strip().splitlines()[-1])
    except (ValueError, IndexError):
        refusal = {}
    if proc.returncode != 2 or refusal.get("status") is None:
        raise RuntimeError(f"photo-sorter people merge exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return {"status": refusal.get("status"), "reason": refusal.get("reason")}


def apply_merges(binary: Path, database: str, plan: list, log: Path, env: dict) -> dict:
    """Each identity's merge in one command; a refused one person at a time (each refusal counted)."""
    made, refused, calls, reasons = 0, 0, 0, []
    for into, others in plan:
        calls += 1
        if people_merge(binary, database, others, into, log, env) is None:
            made += len(others)
            continue
        for other in others:
            calls += 1
            refusal = people_merge(binary, database, [other], into, log, env)
            if refusal is None:
                made += 1
            else:
                refused += 1
                reasons.append({"into": into, "other": other, **refusal})
    return {"identities": len(plan), "persons_to_merge": sum(len(o) for _, o in plan), "made": made,
            "refused": refused, "commands": calls, "refusals": reasons}


def looks_in(database: str) -> dict | None:
    """Looks in the database (embeddings.look_id; None before that column existed)."""
    with sqlite3.connect(database) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(embeddings)")}
        if "look_id" not in columns:
            return None
        rows = db.execute("SELECT person_id, COUNT(DISTINCT COALESCE(look_id, person_id)) FROM embeddings "
                          "WHERE person_id IS NOT NULL GROUP BY person_id").fetchall()
    return {"persons": len(rows), "persons_with_several_looks": sum(1 for _, n in rows if n > 1),
            "looks": sum(n for _, n in rows)}


def sort(binary: Path, folder: Path, database: str, workdir: Path, name: str, env: dict, timeout: float) -> dict:
    print(f"[merge_teaches] sort {folder} ...", file=sys.stderr, flush=True)
    rc, summary, wall = harness.run_sort(binary, folder, database, workdir / f"{name}.summary.json",
                                         workdir / f"{name}.log", timeout=timeout, **env)
    if rc != 0 or summary is None:
        raise RuntimeError(f"photo-sorter sort {folder} exited {rc}:\n"
                           f"{(workdir / f'{name}.log').read_text(errors='replace')[-4000:]}")
    return {"wall_seconds": round(wall, 1), "summary": summary}


def run(root: Path, binary: Path, label: str, seed: int, workdir: Path, env: dict, timeout: float) -> dict:
    labelled = harness.labelled_photos(root)
    first, second = split_halves(labelled, seed)
    photos = workdir / "photos"
    h1 = link_half(first, root, photos / "h1")
    h2 = link_half(second, root, photos / "h2")
    database = str(workdir / "photo-sorter.sqlite")
    out = {"root": str(root), "set": root.name, "label": label, "binary": str(binary), "seed": seed,
           "photos": {"half_1": len(h1), "half_2": len(h2)}, "env": env}
    started = time.monotonic()

    out["sort_1"] = sort(binary, photos / "h1", database, workdir, "sort-1", env, timeout)
    preds_1 = read_persons(binary, database, photos, h1, workdir / "serve-1", env)
    out["after_half_1"] = score(h1, preds_1)

    plan, votes = plan_merges([(identity, pred) for (_, identity), pred in zip(h1, preds_1)])
    print(f"[merge_teaches] {sum(len(o) for _, o in plan)} persons to merge into {len(plan)} ...", file=sys.stderr,
          flush=True)
    out["merges"] = {**apply_merges(binary, database, plan, workdir / "merges.log", env), "votes": votes}
    out["looks_after_merges"] = looks_in(database)
    preds_m = read_persons(binary, database, photos, h1, workdir / "serve-m", env)
    out["after_merges"] = score(h1, preds_m)

    out["sort_2"] = sort(binary, photos / "h2", database, workdir, "sort-2", env, timeout)
    preds = read_persons(binary, database, photos, h1 + h2, workdir / "serve-2", env)
    out["final"] = score(h1 + h2, preds)
    out["final_half_2"] = score(h2, preds[len(h1):])
    out["looks_final"] = looks_in(database)
    out["wall_seconds"] = round(time.monotonic() - started, 1)
    return out


# --------------------------------------------------------------------------- reporting

def fmt(r: dict) -> str:
    lines = [f"== {r['set']} ({r['label']}): {r['photos']['half_1']} + {r['photos']['half_2']} photos, seed {r['seed']}"]
    for key, name in (("after_half_1", "half 1"), ("after_merges", "half 1 + merges"), ("final", "all, at the end"),
                      ("final_half_2", "half 2, at the end")):
        s = r[key]
        c, pw, bc = s["counts"], s["pairwise"], s["bcubed"]
        lines.append(f"  {name:20s} P {pw['precision']:.4f} R {pw['recall']:.4f}  BCubed P {bc['precision']:.4f} "
                     f"R {bc['recall']:.4f} F1 {bc['f1']:.4f}  consistency {s['consistency']['micro']:.4f}  "
                     f"{c['predicted_persons']} persons, {c['photos_without_face']} without a face"
                     + (f"  profiles {s['profiles']['share']:.3f}" if "profiles" in s else ""))
    m = r["merges"]
    lines.append(f"  merges: {m['made']} made, {m['refused']} refused ({m['persons_to_merge']} persons into "
                 f"{m['identities']}; {m['votes']['persons_without_a_strict_majority']} of {m['votes']['persons']} "
                 f"persons without a strict majority); looks after merges {r['looks_after_merges']}; "
                 f"sorts {r['sort_1']['wall_seconds']} + {r['sort_2']['wall_seconds']} s")
    return "\n".join(lines)


def table(runs: list) -> str:
    """One row per run, in the order given, then the mean of each (set, label) that ran more than once."""
    out = ["| set | binary | after half 1: P / R / BCubed F1 / c | after merges (half 1) | "
           "**at the end (all photos): P / R / BCubed F1 / c** | half 2 alone: BCubed F1 / c | merges made / refused |",
           "|---|---|---|---|---|---|---|"]
    stages = ("after_half_1", "after_merges", "final", "final_half_2")

    def numbers(s: dict) -> list:
        return [s["pairwise"]["precision"], s["pairwise"]["recall"], s["bcubed"]["f1"], s["consistency"]["micro"]]

    def row(name: str, label: str, values: dict, made, refused) -> str:
        cells = [" / ".join(f"{v:.3f}" for v in values[stage]) for stage in stages[:3]]
        cells[2] = f"**{cells[2]}**"
        half_2 = f"{values['final_half_2'][2]:.3f} / {values['final_half_2'][3]:.3f}"
        return f"| {name} | {label} | {' | '.join(cells)} | {half_2} | {made} / {refused} |"

    groups: dict = defaultdict(list)
    for r in runs:
        values = {stage: numbers(r[stage]) for stage in stages}
        groups[(r["set"], r["label"])].append((values, r["merges"]["made"], r["merges"]["refused"]))
        out.append(row(r["set"], r["label"], values, r["merges"]["made"], r["merges"]["refused"]))
    for (name, label), members in groups.items():
        if len(members) < 2:
            continue
        n = len(members)
        mean = {stage: [sum(m[0][stage][i] for m in members) / n for i in range(4)] for stage in stages}
        out.append(row(f"{name}, mean of {n}", label, mean, f"{sum(m[1] for m in members) / n:.1f}",
                       f"{sum(m[2] for m in members) / n:.1f}"))
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", type=Path, nargs="*", metavar="root", help="<root>/<identity>/<photo> tree(s)")
    ap.add_argument("--binary", type=Path, help="photo-sorter binary (default: $PHOTO_SORTER_BIN, release, debug)")
    ap.add_argument("--label", default="", help="name of this binary in the table (e.g. before, after)")
    ap.add_argument("--seed", type=int, default=0, help="the split's shuffle")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for photo-sorter (repeatable)")
    ap.add_argument("--json", type=Path, help="write the runs here")
    ap.add_argument("--workdir", type=Path, help="keep databases and logs here (default: a temp dir, removed)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one sort")
    ap.add_argument("--table", type=Path, nargs="+", metavar="JSON", help="print the table of these JSON files")
    args = ap.parse_args(argv)

    if args.table:
        runs = [r for path in args.table for r in json.loads(path.read_text())["runs"]]
        print(table(runs))
        return 0
    if not args.roots:
        ap.error("give a labelled root, or --table")
    roots = [r.resolve() for r in args.roots]
    for root in roots:
        if not harness.labelled_photos(root):
            ap.error(f"no <identity>/<photo> files under {root}")
    binary = Path(os.path.abspath(args.binary)) if args.binary else harness.find_binary(prefer_release=True)
    env = {"PHOTO_SORTER_ML_PYTHON": str(harness.ml_python()), **harness.parse_env_pairs(args.env)}
    label = args.label or binary.parent.name

    base = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="photo-sorter-merge-teaches-"))
    runs = []
    try:
        for n, root in enumerate(roots):
            workdir = base / f"run-{n}-{root.name}"
            if workdir.exists():
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
            runs.append(run(root, binary, label, args.seed, workdir, env, args.timeout))
            print(fmt(runs[-1]), flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(table(runs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                                         "machine": harness.machine_description(), "argv": sys.argv[1:],
                                         "runs": runs}, indent=2, default=str))
        print(f"[merge_teaches] wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
