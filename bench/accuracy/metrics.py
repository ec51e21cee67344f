"""Clustering metrics for identity assignment (stdlib only).

Every labelled photo is one *item* with a true identity (``label``) and the person id the system gave
its labelled face (``pred``). ``pred is None`` means the system found no face there: such an item is
treated as its own singleton cluster, so it never counts as a correct match (it lowers recall and
consistency, never precision).

- Pairwise: over all unordered pairs of items, a pair is *predicted same* when both carry the same
  (non-None) person id and *truly same* when both have the same label.
  precision = TP / predicted-same pairs, recall = TP / truly-same pairs.
- BCubed (Bagga & Baldwin): per item i with cluster C(i) and class L(i),
  P(i) = |C(i) ∩ L(i)| / |C(i)|, R(i) = |C(i) ∩ L(i)| / |L(i)|; averaged over items.
- Consistency (one id per person; its bar is >= 95%): for each identity, its *majority id* is
  the most frequent non-None person id among its photos (ties: smallest id); consistency = photos
  carrying their identity's majority id / all labelled photos (micro). ``macro`` averages the
  per-identity shares.

A ratio whose denominator is zero is reported as 1.0 (nothing to get wrong).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Hashable, Optional, Sequence


def _ratio(num: float, den: float) -> float:
    return 1.0 if den == 0 else num / den


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _clusters(preds: Sequence[Optional[Hashable]]) -> list:
    """Cluster key per item; None becomes a unique singleton key."""
    return [("__none__", i) if p is None else ("id", p) for i, p in enumerate(preds)]


def _check(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]]) -> None:
    if len(labels) != len(preds):
        raise ValueError(f"labels ({len(labels)}) and preds ({len(preds)}) differ in length")


def pairwise_scores(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]]) -> dict:
    _check(labels, preds)
    keys = _clusters(preds)
    cell = Counter(zip(labels, keys))
    tp = sum(_pairs(n) for n in cell.values())
    pred_pairs = sum(_pairs(n) for n in Counter(keys).values())
    true_pairs = sum(_pairs(n) for n in Counter(labels).values())
    p = _ratio(tp, pred_pairs)
    r = _ratio(tp, true_pairs)
    return {"precision": p, "recall": r, "f1": _f1(p, r),
            "true_positive_pairs": tp, "predicted_same_pairs": pred_pairs, "true_same_pairs": true_pairs}


def bcubed_scores(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]]) -> dict:
    _check(labels, preds)
    n = len(labels)
    if n == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    keys = _clusters(preds)
    cell = Counter(zip(labels, keys))
    cluster_size = Counter(keys)
    class_size = Counter(labels)
    p = sum(cell[(l, k)] / cluster_size[k] for l, k in zip(labels, keys)) / n
    r = sum(cell[(l, k)] / class_size[l] for l, k in zip(labels, keys)) / n
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


def majority_ids(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]]) -> dict:
    """identity -> (majority person id or None, count of photos carrying it)."""
    _check(labels, preds)
    per = defaultdict(Counter)
    for l in labels:
        per[l]  # identities with only misses still appear
    for l, p in zip(labels, preds):
        if p is not None:
            per[l][p] += 1
    out = {}
    for l, counts in per.items():
        if not counts:
            out[l] = (None, 0)
            continue
        best = max(counts.values())
        winner = min((p for p, c in counts.items() if c == best), key=lambda x: (str(type(x)), x))
        out[l] = (winner, best)
    return out


def consistency(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]]) -> dict:
    _check(labels, preds)
    maj = majority_ids(labels, preds)
    class_size = Counter(labels)
    hits = sum(c for _, c in maj.values())
    per_identity = {l: _ratio(maj[l][1], class_size[l]) for l in maj}
    owners = defaultdict(list)
    for l, (pid, _) in maj.items():
        if pid is not None:
            owners[pid].append(l)
    shared = sorted((pid, sorted(map(str, ls))) for pid, ls in owners.items() if len(ls) > 1)
    return {
        "micro": _ratio(hits, len(labels)),
        "macro": _ratio(sum(per_identity.values()), len(per_identity)),
        "photos_on_majority_id": hits,
        "per_identity": per_identity,
        "shared_majority_ids": shared,
    }


def subset_on_reference_majority(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]],
                                 in_subset: Sequence[bool]) -> dict:
    """How many subset items (e.g. CFP's profile photos) carry the majority id of their identity's *other* items
    (its frontal photos): the subset joined the person that holds the rest of that identity. A subset item without
    a face, or of an identity with no other item found, is a miss."""
    _check(labels, preds)
    rest = [(l, p) for l, p, s in zip(labels, preds, in_subset) if not s]
    reference = majority_ids([l for l, _ in rest], [p for _, p in rest])
    subset = [(l, p) for l, p, s in zip(labels, preds, in_subset) if s]
    hits = sum(1 for l, p in subset if p is not None and reference.get(l, (None, 0))[0] == p)
    return {"items": len(subset), "on_reference_majority": hits, "share": _ratio(hits, len(subset))}


def evaluate(labels: Sequence[Hashable], preds: Sequence[Optional[Hashable]]) -> dict:
    """All metrics plus counts, as one JSON-friendly dict."""
    _check(labels, preds)
    found = [p for p in preds if p is not None]
    cons = consistency(labels, preds)
    return {
        "counts": {
            "photos": len(labels),
            "identities": len(set(labels)),
            "photos_with_face": len(found),
            "photos_without_face": len(labels) - len(found),
            "predicted_persons": len(set(found)),
            "identities_sharing_a_majority_id": sum(len(ls) for _, ls in cons["shared_majority_ids"]),
        },
        "pairwise": pairwise_scores(labels, preds),
        "bcubed": bcubed_scores(labels, preds),
        "consistency": cons,
    }
