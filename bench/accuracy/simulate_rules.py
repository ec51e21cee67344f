#!/usr/bin/env python3
"""Simulates the service's online identity rule on recorded embeddings, over many arrival orders.

The service assigns each photo's faces when its result arrives, so the outcome depends on the order.
This replays recorded embeddings of labelled photos (`Tests/Fixtures/embeddings.json`: dlib on
../shared/testdata/faces; or a file written by record_embeddings.py for any model) through the same rule as
`IdentityResolver` — mean similarity to a person's faces ≥ base + margin/√faces, best pair first, one face
per person per photo — for a grid of (base, margin), and prints mean and worst pairwise precision/recall
and BCubed F1 over the orders, per labelled set. Used to choose each model's thresholds (`FaceModel`) on
lfw_small, and to check them on lfw_scale.

    ml-service/.venv/bin/python bench/accuracy/simulate_rules.py --orders 10                # dlib fixture
    ml-service/.venv/bin/python bench/accuracy/simulate_rules.py --embeddings bench/out/embeddings-arcface.json \
        --sets lfw_small lfw_scale --base 0.40 0.42 0.44 --margin 0.0 0.05
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import bcubed_scores, pairwise_scores  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "embeddings.json"


def load_set(recorded: dict, set_name: str) -> list[tuple[np.ndarray, int, str]]:
    """(faces, index of the labelled face, identity) per photo of `set_name` with at least one face; the
    labelled face is the one nearest the image centre (LFW photos are face-centred)."""
    photos = []
    for photo in recorded["photos"]:
        parts = photo["path"].split("/")
        if parts[0] != set_name or not photo["detections"]:
            continue
        faces = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in photo["detections"]], dtype=np.float64)
        cx, cy = photo.get("width", 250) / 2, photo.get("height", 250) / 2
        centre = [((d["bbox"][0] + d["bbox"][2]) / 2 - cx) ** 2 + ((d["bbox"][1] + d["bbox"][3]) / 2 - cy) ** 2 for d in photo["detections"]]
        photos.append((faces, int(np.argmin(centre)), parts[-2]))
    return photos


def sort_online(photos, order, base: float, margin: float) -> list[int]:
    """Person id of each photo's labelled face after processing the photos in `order`."""
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
        pairs.sort(key=lambda p: (-p[0], p[1]))
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        for _, face, person in pairs:
            if face not in assigned and person not in taken:
                assigned[face] = person
                taken.add(person)
        for face in range(len(faces)):
            if face not in assigned:
                assigned[face] = persons
                persons += 1
        for face, person in assigned.items():
            sums[person] += faces[face]
            counts[person] += 1
        labelled[index] = assigned[central]
    return labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=Path, default=FIXTURE, help="recorded faces (default: the dlib test fixture)")
    parser.add_argument("--sets", nargs="+", default=["lfw_small"], help="labelled sets to score, each on its own")
    parser.add_argument("--orders", type=int, default=10)
    parser.add_argument("--base", type=float, nargs="+", default=[0.915, 0.92, 0.925, 0.93])
    parser.add_argument("--margin", type=float, nargs="+", default=[0.0, 0.01, 0.02])
    args = parser.parse_args()
    recorded = json.loads(args.embeddings.read_text())
    for set_name in args.sets:
        photos = load_set(recorded, set_name)
        labels = [identity for _, _, identity in photos]
        print(f"{set_name}: {len(photos)} photos with a face, {len(set(labels))} identities, {args.orders} arrival orders "
              f"({recorded.get('model')})")
        print("base   margin | pairwise P  R     | BCubed F1 | worst P  worst BF1")
        for base in args.base:
            for margin in args.margin:
                scores = []
                for seed in range(args.orders):
                    order = list(range(len(photos)))
                    random.Random(seed).shuffle(order)
                    predicted = sort_online(photos, order, base, margin)
                    pairwise, bcubed = pairwise_scores(labels, predicted), bcubed_scores(labels, predicted)
                    scores.append((pairwise["precision"], pairwise["recall"], bcubed["f1"]))
                s = np.array(scores)
                mean, worst = s.mean(0), s.min(0)
                print(f"{base:.3f}  {margin:.3f}  | {mean[0]:.3f}      {mean[1]:.3f} | {mean[2]:.3f}     | {worst[0]:.3f}    {worst[2]:.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
