#!/usr/bin/env python3
"""Simulates the service's online identity rule on recorded embeddings, over many arrival orders.

The service assigns each photo's faces when its result arrives, so the outcome depends on the order.
This replays recorded embeddings of labelled photos (`Tests/Fixtures/embeddings.json`: dlib on
../shared/testdata/faces; or a file written by record_embeddings.py for any model) through an identity rule, for a
grid of its settings, and prints mean and worst pairwise precision/recall and BCubed F1 over the orders, per
labelled set (photos with a face), plus consistency (metrics.py) over all the set's photos (photos without a face
count as misses, as in accuracy.py). Rules (`--rules`):

- `mean`: today's `IdentityResolver` — mean similarity to a person's faces (q·sum/count) ≥ base + margin/√faces,
  best (face, person) pair first, one face per person per photo. Used to choose each model's thresholds
  (`FaceModel`) on lfw_small, and to check them on lfw_scale.
- `prototypes`: up to K means ("looks") per person. A person's score is its best look's mean similarity among the
  looks that pass base + margin/√(look's faces); a face that joins goes into its most similar look when that
  scores ≥ `--look` (the same-look level), else opens a new look while the person has fewer than K, else joins
  the most similar look anyway.
- `nearest`: the mean of the top-k similarities to the person's faces ≥ base + margin/√min(k, faces).

`--merge-at F` also models a user merge: after the first F of each order, every set of persons whose labelled faces
are mostly one identity is merged into one (the user fixing fragments), and the rest arrives. Prototypes merge as
`keep` (the looks are kept side by side) or `blend` (one mean of all); `mean` always blends; `nearest` keeps all
faces.

    ml-service/.venv/bin/python bench/accuracy/simulate_rules.py --orders 10                # dlib fixture
    ml-service/.venv/bin/python bench/accuracy/simulate_rules.py --embeddings bench/out/embeddings-arcface.json \\
        --sets lfw_small lfw_scale --base 0.40 0.42 0.44 --margin 0.0 0.05
    ml-service/.venv/bin/python bench/accuracy/simulate_rules.py --embeddings bench/out/embeddings-arcface-family.json \\
        --sets lfw_small lfw_scale cfp_dev fgnet_dev --orders 3 --rules mean prototypes nearest \\
        --base 0.28 0.32 --protos 4 --look 0.5 --k 3 --base-nearest 0.40 0.44
"""
from __future__ import annotations

import argparse
import base64
import itertools
import json
import multiprocessing
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import bcubed_scores, consistency, pairwise_scores  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "embeddings.json"

# Per-set targets for family photos (bench/RESULTS.md "Family photos — identity rules compared offline"), all to
# hold with one setting: (worst-order pairwise precision, mean BCubed F1).
TARGETS = {"cfp_dev": (0.995, 0.95), "fgnet_dev": (0.95, 0.85), "lfw_small": (0.999, 0.995), "lfw_scale": (0.995, 0.99)}


def load_set(recorded: dict, set_name: str) -> list[tuple[np.ndarray, int, str]]:
    """(faces, index of the labelled face, identity) per photo of `set_name` with at least one face; the
    labelled face is the one nearest the image centre (LFW photos are face-centred)."""
    photos = []
    for photo in recorded["photos"]:
        parts = photo["path"].split("/")
        if parts[0] != set_name or not photo["detections"]:
            continue
        faces = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in photo["detections"]], dtype=np.float64)
        photos.append((faces, central_face(photo), parts[-2]))
    return photos


def central_face(photo: dict) -> int:
    """Index of the detection whose box centre is nearest the image centre."""
    cx, cy = photo.get("width", 250) / 2, photo.get("height", 250) / 2
    centre = [((d["bbox"][0] + d["bbox"][2]) / 2 - cx) ** 2 + ((d["bbox"][1] + d["bbox"][3]) / 2 - cy) ** 2 for d in photo["detections"]]
    return int(np.argmin(centre))


def faceless(recorded: dict, set_name: str) -> list[str]:
    """Identity of each photo of `set_name` where no face was found."""
    return [p["path"].split("/")[-2] for p in recorded["photos"]
            if p["path"].split("/")[0] == set_name and not p["detections"]]


def sort_online(photos, order, base: float, margin: float) -> list[int]:
    """Today's rule (`IdentityResolver`): person id of each photo's labelled face after processing the photos in
    `order`."""
    capacity = sum(len(faces) for faces, _, _ in photos)
    sums = np.zeros((capacity, photos[0][0].shape[1]))
    counts = np.zeros(capacity)
    persons = 0
    labelled = [0] * len(photos)
    for index in order:
        faces, central, _ = photos[index]
        pairs = []
        if persons:
            n = counts[:persons]
            mean_similarity = (faces @ sums[:persons].T) / n
            accept = mean_similarity >= base + margin / np.sqrt(n)
            for face, person in zip(*np.nonzero(accept)):
                pairs.append((mean_similarity[face, person], face, person))
        assigned = greedy_assign(pairs, len(faces), persons)
        persons = max([persons - 1, *assigned.values()]) + 1
        for face, person in assigned.items():
            sums[person] += faces[face]
            counts[person] += 1
        labelled[index] = assigned[central]
    return labelled


def greedy_assign(pairs, n_faces: int, persons: int) -> dict[int, int]:
    """Best (score, face, person) pair first, one face per person; unassigned faces get new ids from `persons`."""
    pairs = sorted(pairs, key=lambda p: (-p[0], p[1]))
    assigned: dict[int, int] = {}
    taken: set[int] = set()
    for _, face, person in pairs:
        if face not in assigned and person not in taken:
            assigned[face] = person
            taken.add(person)
    for face in range(n_faces):
        if face not in assigned:
            assigned[face] = persons
            persons += 1
    return assigned


class MeanState:
    """One mean per person (today's rule), for the generic engine."""

    def __init__(self, dim: int, capacity: int, base: float, margin: float) -> None:
        self.sums, self.counts = np.zeros((capacity, dim)), np.zeros(capacity)
        self.base, self.margin, self.persons = base, margin, 0

    def pairs(self, faces):
        if not self.persons:
            return []
        n = self.counts[:self.persons]
        sim = (faces @ self.sums[:self.persons].T) / np.maximum(n, 1)
        accept = (sim >= self.base + self.margin / np.sqrt(np.maximum(n, 1))) & (n > 0)
        return [(sim[f, p], f, p) for f, p in zip(*np.nonzero(accept))]

    def add(self, face, person: int) -> None:
        self.persons = max(self.persons, person + 1)
        self.sums[person] += face
        self.counts[person] += 1

    def merge(self, into: int, other: int) -> None:
        self.sums[into] += self.sums[other]
        self.counts[into] += self.counts[other]
        self.sums[other] = 0
        self.counts[other] = 0


class PrototypeState:
    """Up to `k` means ("looks") per person (see the module doc); `merge_mode` keep or blend."""

    def __init__(self, dim: int, capacity: int, base: float, margin: float, look: float, k: int,
                 merge_mode: str = "keep", merged_margin: float = 0.0) -> None:
        self.sums, self.counts = np.zeros((capacity * 2, dim)), np.zeros(capacity * 2)
        self.owner = np.full(capacity * 2, -1)
        # A look kept from a merge needs `merged_margin` more than the person's own looks.
        self.merged_margin, self.merged = merged_margin, np.zeros(capacity * 2, dtype=bool)
        self.looks: dict[int, list[int]] = defaultdict(list)
        self.base, self.margin, self.look, self.k, self.merge_mode = base, margin, look, k, merge_mode
        self.used = 0
        self.persons = 0

    def _grow(self) -> None:
        if self.used == len(self.counts):
            self.sums = np.vstack([self.sums, np.zeros_like(self.sums)])
            self.counts = np.concatenate([self.counts, np.zeros_like(self.counts)])
            self.owner = np.concatenate([self.owner, np.full(len(self.owner), -1)])
            self.merged = np.concatenate([self.merged, np.zeros(len(self.merged), dtype=bool)])

    def pairs(self, faces):
        if not self.used:
            return []
        n = self.counts[:self.used]
        live = n > 0
        sim = (faces @ self.sums[:self.used].T) / np.maximum(n, 1)
        accept = (sim >= self.base + self.margin / np.sqrt(np.maximum(n, 1)) + self.merged_margin * self.merged[:self.used]) & live
        best: dict[tuple[int, int], float] = {}
        for f, p in zip(*np.nonzero(accept)):
            key = (int(f), int(self.owner[p]))
            if sim[f, p] > best.get(key, -2.0):
                best[key] = sim[f, p]
        return [(s, f, person) for (f, person), s in best.items()]

    def _new_look(self, person: int, face) -> None:
        self._grow()
        slot = self.used
        self.used += 1
        self.sums[slot], self.counts[slot], self.owner[slot] = face, 1, person
        self.looks[person].append(slot)

    def add(self, face, person: int) -> None:
        self.persons = max(self.persons, person + 1)
        slots = self.looks.get(person)
        if not slots:
            self._new_look(person, face)
            return
        sim = (self.sums[slots] @ face) / self.counts[slots]
        best = int(np.argmax(sim))
        if sim[best] < self.look and len(slots) < self.k:
            self._new_look(person, face)
        else:
            self.sums[slots[best]] += face
            self.counts[slots[best]] += 1

    def merge(self, into: int, other: int) -> None:
        moved = self.looks.pop(other, [])
        if self.merge_mode == "keep":
            for slot in moved:
                self.owner[slot] = into
                self.merged[slot] = True
            self.looks[into].extend(moved)
            return
        slots = self.looks[into] + moved
        keep = slots[0]
        for slot in slots[1:]:
            self.sums[keep] += self.sums[slot]
            self.counts[keep] += self.counts[slot]
            self.sums[slot], self.counts[slot], self.owner[slot] = 0, 0, -1
        self.looks[into] = [keep]


class NearestState:
    """A person's score: the mean of its top-`k` similarities to the face."""

    def __init__(self, dim: int, capacity: int, base: float, margin: float, k: int) -> None:
        self.faces = np.zeros((capacity, dim))
        self.owner = np.full(capacity, -1)
        self.members: dict[int, list[int]] = defaultdict(list)
        self.base, self.margin, self.k = base, margin, k
        self.used = 0
        self.persons = 0

    def pairs(self, faces):
        if not self.used:
            return []
        sim = faces @ self.faces[:self.used].T
        out = []
        for f in range(len(faces)):
            row = sim[f]
            for person in set(self.owner[np.nonzero(row >= self.base)[0]].tolist()):
                votes = row[self.members[person]]
                top = votes if len(votes) <= self.k else np.partition(votes, len(votes) - self.k)[-self.k:]
                score = float(top.mean())
                if score >= self.base + self.margin / np.sqrt(len(top)):
                    out.append((score, f, person))
        return out

    def add(self, face, person: int) -> None:
        self.persons = max(self.persons, person + 1)
        self.faces[self.used], self.owner[self.used] = face, person
        self.members[person].append(self.used)
        self.used += 1

    def merge(self, into: int, other: int) -> None:
        moved = self.members.pop(other, [])
        self.owner[moved] = into
        self.members[into].extend(moved)


def run_rule(photos, order, state, merge_at: int | None = None) -> list[int]:
    """Person id of each photo's labelled face after processing `order` through `state` (a *State); with
    `merge_at`, after that many photos each identity's fragments (persons whose labelled faces are mostly that
    identity) are merged, as a user would."""
    labelled = [-1] * len(photos)
    alias: dict[int, int] = {}
    for step, index in enumerate(order):
        if merge_at is not None and step == merge_at:
            user_merge(photos, order[:step], labelled, state, alias)
        faces, central, _ = photos[index]
        assigned = greedy_assign(state.pairs(faces), len(faces), state.persons)
        for face, person in assigned.items():
            state.add(faces[face], person)
        labelled[index] = assigned[central]
    return [resolve(alias, p) for p in labelled]


def resolve(alias: dict[int, int], person: int) -> int:
    while person in alias:
        person = alias[person]
    return person


def user_merge(photos, done, labelled, state, alias) -> None:
    """Merges, per identity, the persons whose labelled faces are mostly that identity into the largest (then
    the oldest) one."""
    votes: dict[int, Counter] = defaultdict(Counter)
    for index in done:
        votes[resolve(alias, labelled[index])][photos[index][2]] += 1
    fragments: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for person, counter in votes.items():
        identity, count = counter.most_common(1)[0]
        fragments[identity].append((sum(counter.values()), person))
    for parts in fragments.values():
        if len(parts) < 2:
            continue
        parts.sort(key=lambda part: (-part[0], part[1]))  # the largest, then the oldest
        into = parts[0][1]
        for _, other in parts[1:]:
            state.merge(into, other)
            alias[other] = into


def make_state(rule: str, params: dict, dim: int, capacity: int):
    if rule == "mean":
        return MeanState(dim, capacity, params["base"], params["margin"])
    if rule == "prototypes":
        return PrototypeState(dim, capacity, params["base"], params["margin"], params["look"], params["K"],
                              params.get("merge", "keep"), params.get("merged_margin", 0.0))
    if rule == "nearest":
        return NearestState(dim, capacity, params["base"], params["margin"], params["k"])
    raise ValueError(rule)


def settings(args) -> list[tuple[str, dict]]:
    out = []
    for rule in args.rules:
        bases = getattr(args, f"base_{rule}") or args.base
        for base, margin in itertools.product(bases, args.margin):
            if rule == "mean":
                out.append((rule, {"base": base, "margin": margin}))
            elif rule == "prototypes":
                for k, look, merged in itertools.product(args.protos, args.look, args.merged_margin):
                    out.append((rule, {"base": base, "margin": margin, "K": k, "look": look, "merged_margin": merged}))
            else:
                for k in args.k:
                    out.append((rule, {"base": base, "margin": margin, "k": k}))
    return out


_DATA: dict = {}


def evaluate(job) -> dict:
    """Scores one (rule, params, set) over the orders."""
    rule, params, set_name, orders, merge_at = job
    photos, misses = _DATA[set_name]
    labels = [identity for _, _, identity in photos]
    capacity = sum(len(faces) for faces, _, _ in photos)
    dim = photos[0][0].shape[1]
    scores = []
    started = time.perf_counter()
    for seed in range(orders):
        order = list(range(len(photos)))
        random.Random(seed).shuffle(order)
        at = None if merge_at is None else int(merge_at * len(order))
        if rule == "mean" and at is None:
            predicted = sort_online(photos, order, params["base"], params["margin"])
        else:
            predicted = run_rule(photos, order, make_state(rule, params, dim, capacity), at)
        pairwise, bcubed = pairwise_scores(labels, predicted), bcubed_scores(labels, predicted)
        cons = consistency(labels + misses, predicted + [None] * len(misses))["micro"]
        scores.append((pairwise["precision"], pairwise["recall"], bcubed["f1"], cons))
    s = np.array(scores)
    return {"rule": rule, "params": params, "set": set_name, "merge_at": merge_at,
            "P": s[:, 0].mean(), "R": s[:, 1].mean(), "BF1": s[:, 2].mean(), "cons": s[:, 3].mean(),
            "worst_P": s[:, 0].min(), "worst_BF1": s[:, 2].min(), "seconds": time.perf_counter() - started}


def meets(row: dict) -> bool | None:
    target = TARGETS.get(row["set"])
    return None if target is None else (row["worst_P"] >= target[0] and row["BF1"] >= target[1])


def label(rule: str, params: dict) -> str:
    return rule + " " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=Path, default=FIXTURE, help="recorded faces (default: the dlib test fixture)")
    parser.add_argument("--sets", nargs="+", default=["lfw_small"], help="labelled sets to score, each on its own")
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--rules", nargs="+", default=["mean"], choices=["mean", "prototypes", "nearest"])
    parser.add_argument("--base", type=float, nargs="+", default=[0.915, 0.92, 0.925, 0.93])
    parser.add_argument("--base-mean", type=float, nargs="+", help="base for `mean` only (default --base)")
    parser.add_argument("--base-prototypes", type=float, nargs="+", help="base for `prototypes` only (default --base)")
    parser.add_argument("--base-nearest", type=float, nargs="+", help="base for `nearest` only (default --base)")
    parser.add_argument("--margin", type=float, nargs="+", default=[0.0, 0.01, 0.02])
    parser.add_argument("--protos", type=int, nargs="+", default=[4], help="prototypes: most looks per person (K)")
    parser.add_argument("--look", type=float, nargs="+", default=[0.5], help="prototypes: same-look level")
    parser.add_argument("--k", type=int, nargs="+", default=[3], help="nearest: faces that vote")
    parser.add_argument("--merge-at", type=float, help="model a user merge of fragments after this share of each order")
    parser.add_argument("--merge-mode", nargs="+", default=["keep"], choices=["keep", "blend"],
                        help="prototypes: how merged persons' looks combine")
    parser.add_argument("--merged-margin", type=float, nargs="+", default=[0.0],
                        help="prototypes with --merge-at: extra similarity a look kept from a merge needs")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()
    recorded = json.loads(args.embeddings.read_text())
    for set_name in args.sets:
        _DATA[set_name] = (load_set(recorded, set_name), faceless(recorded, set_name))
        photos, misses = _DATA[set_name]
        print(f"{set_name}: {len(photos)} photos with a face, {len(misses)} without, "
              f"{len({i for _, _, i in photos} | set(misses))} identities ({recorded.get('model')})", file=sys.stderr)
    grid = settings(args)
    if args.merge_at is not None:
        grid = [(rule, {**params, "merge": mode}) if rule == "prototypes" else (rule, params)
                for rule, params in grid for mode in (args.merge_mode if rule == "prototypes" else ["-"])]
    jobs = [(rule, params, set_name, args.orders, args.merge_at) for rule, params in grid for set_name in args.sets]
    started = time.perf_counter()
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            rows = pool.map(evaluate, jobs, chunksize=1)
    else:
        rows = [evaluate(job) for job in jobs]
    print(f"{len(jobs)} runs of {args.orders} orders in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=float))

    by_setting: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        by_setting[label(row["rule"], row["params"])][row["set"]] = row
    merge = f" (user merge after {args.merge_at:.0%})" if args.merge_at is not None else ""
    print(f"\nper set: mean pairwise P / R, mean BCubed F1, worst-order P; fgnet_dev also consistency; "
          f"✓ = the set's target met{merge}\n")
    print("| setting | " + " | ".join(args.sets) + " | targets met |")
    print("|---|" + "---|" * len(args.sets) + "---|")
    for name, per_set in by_setting.items():
        cells, met = [], 0
        for set_name in args.sets:
            r = per_set[set_name]
            ok = meets(r)
            met += bool(ok)
            extra = f" c {r['cons']:.3f}" if set_name == "fgnet_dev" else ""
            cells.append(f"{r['P']:.3f}/{r['R']:.3f} F1 {r['BF1']:.3f} wP {r['worst_P']:.3f}{extra}{' ✓' if ok else ''}")
        print(f"| {name} | " + " | ".join(cells) + f" | {met}/{sum(s in TARGETS for s in args.sets)} |")
    print("\nbest setting per rule (most targets met, then the highest worst-set F1 slack):")
    for rule in args.rules:
        ranked = []
        for name, per_set in by_setting.items():
            if not name.startswith(rule + " "):
                continue
            met = sum(bool(meets(r)) for r in per_set.values())
            slack = min((r["BF1"] - TARGETS[s][1]) for s, r in per_set.items() if s in TARGETS) if any(s in TARGETS for s in per_set) else 0
            ranked.append((met, slack, name))
        if ranked:
            met, slack, name = max(ranked)
            print(f"  {name}: {met} targets met, worst F1 slack {slack:+.3f}")


if __name__ == "__main__":
    main()
