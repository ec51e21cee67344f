#!/usr/bin/env python3
"""Offline experiment: would a generic clusterer do the re-cluster better than replaying the identity rule?

Runs scikit-learn's average-linkage agglomerative clustering (cosine distance, connectivity = the 20-nearest-
neighbour graph) on recorded ArcFace embeddings of lfw_small and lfw_scale over a range of distance thresholds,
and scores it like bench/accuracy (labelled face of each photo: pairwise precision/recall, BCubed F1); then
times the same clusterer on synthetic 512-d clusters of growing size. Not part of the product: it needs
scikit-learn, which the project does not install —

    python3 -m venv /tmp/linkage && /tmp/linkage/bin/pip install numpy==2.4.6 scikit-learn==1.9.1
    /tmp/linkage/bin/python bench/recluster/linkage_experiment.py --embeddings bench/out/embeddings-arcface-lfw_small.json \
        bench/out/embeddings-arcface-lfw_scale.json --sizes 10000 40000

(the embeddings files come from bench/accuracy/record_embeddings.py). Results: bench/RESULTS.md, "Re-cluster".
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import AgglomerativeClustering
from sklearn.neighbors import kneighbors_graph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "accuracy"))
from metrics import bcubed_scores, pairwise_scores  # noqa: E402
from simulate_rules import load_set  # noqa: E402


def connected(graph: csr_matrix) -> csr_matrix:
    """The graph plus a chain through its components (scikit-learn would otherwise add all-pairs edges)."""
    count, labels = connected_components(graph, directed=False)
    firsts = np.unique(labels, return_index=True)[1]
    chain = csr_matrix((np.ones(count - 1), (firsts[:-1], firsts[1:])), shape=graph.shape)
    return graph + chain


def cluster(x: np.ndarray, threshold: float, k: int = 20) -> np.ndarray:
    graph = connected(kneighbors_graph(x, k, metric="cosine", include_self=False))
    return AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine", linkage="average",
                                   connectivity=graph).fit(x).labels_


def accuracy(path: Path, thresholds: list[float]) -> None:
    recorded = json.loads(path.read_text())
    set_name = Path(recorded["photos"][0]["path"]).parts[0]
    photos = load_set(recorded, set_name)
    vectors, labelled, labels = [], [], []
    for faces, central, identity in photos:
        for i, face in enumerate(faces):
            vectors.append(face / np.linalg.norm(face))
            labelled.append(i == central)
        labels.append(identity)
    x, labelled = np.array(vectors, dtype=np.float32), np.array(labelled)
    print(f"{set_name}: {len(x)} faces, {len(labels)} labelled")
    print("distance  pairwise P  R       BCubed F1  seconds")
    for threshold in thresholds:
        started = time.time()
        predicted = list(cluster(x, threshold)[labelled])
        pairwise, bcubed = pairwise_scores(labels, predicted), bcubed_scores(labels, predicted)
        print(f"{threshold:8.2f}  {pairwise['precision']:.4f}     {pairwise['recall']:.4f}  {bcubed['f1']:.4f}     "
              f"{time.time() - started:.1f}")


def speed(n: int) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n // 8, 512)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, 512)).astype(np.float32) * 0.045
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    started = time.time()
    cluster(x, 0.62, k=10)
    print(f"{n} synthetic faces: {time.time() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=Path, nargs="*", default=[])
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.55, 0.60, 0.62, 0.64, 0.66, 0.68, 0.70])
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    args = parser.parse_args()
    for path in args.embeddings:
        accuracy(path, args.thresholds)
    for n in args.sizes:
        speed(n)


if __name__ == "__main__":
    main()
