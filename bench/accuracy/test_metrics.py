"""Hand-computed checks for bench/accuracy/metrics.py (run: python -m pytest bench/accuracy -q)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import metrics  # noqa: E402


def approx(x):
    return pytest.approx(x, abs=1e-9)


# labels A A A B B, ids 1 1 2 2 2: A is split over ids 1 and 2, id 2 also holds both B photos.
MIXED = (["A", "A", "A", "B", "B"], [1, 1, 2, 2, 2])
# labels A A A B, ids 1 - 1 1: one A photo has no face, B was merged into A's person.
WITH_MISS = (["A", "A", "A", "B"], [1, None, 1, 1])


def test_pairwise_mixed():
    # true-same pairs: A 3 + B 1 = 4; predicted-same: id1 1 + id2 3 = 4; TP: (A,1) 1 + (B,2) 1 = 2
    s = metrics.pairwise_scores(*MIXED)
    assert (s["true_positive_pairs"], s["predicted_same_pairs"], s["true_same_pairs"]) == (2, 4, 4)
    assert s["precision"] == approx(0.5)
    assert s["recall"] == approx(0.5)
    assert s["f1"] == approx(0.5)


def test_bcubed_mixed():
    # P per item: 1, 1, 1/3, 2/3, 2/3 -> 11/15; R per item: 2/3, 2/3, 1/3, 1, 1 -> 11/15
    s = metrics.bcubed_scores(*MIXED)
    assert s["precision"] == approx(11 / 15)
    assert s["recall"] == approx(11 / 15)
    assert s["f1"] == approx(11 / 15)


def test_consistency_mixed():
    c = metrics.consistency(*MIXED)
    assert c["micro"] == approx(4 / 5)  # A: 2 of 3 on id 1, B: 2 of 2 on id 2
    assert c["macro"] == approx((2 / 3 + 1) / 2)
    assert c["photos_on_majority_id"] == 4
    assert c["shared_majority_ids"] == []


def test_missing_face_is_a_singleton_and_a_miss():
    p = metrics.pairwise_scores(*WITH_MISS)
    # predicted-same: id 1 holds 3 items -> 3 pairs; TP: only the two A's on id 1 -> 1; true-same: A's 3 pairs
    assert (p["true_positive_pairs"], p["predicted_same_pairs"], p["true_same_pairs"]) == (1, 3, 3)
    assert p["precision"] == approx(1 / 3)
    assert p["recall"] == approx(1 / 3)
    b = metrics.bcubed_scores(*WITH_MISS)
    # P: 2/3, 1 (singleton), 2/3, 1/3 -> 2/3; R: 2/3, 1/3, 2/3, 1 -> 2/3
    assert b["precision"] == approx(2 / 3)
    assert b["recall"] == approx(2 / 3)
    c = metrics.consistency(*WITH_MISS)
    assert c["micro"] == approx(3 / 4)
    assert c["shared_majority_ids"] == [(1, ["A", "B"])]


def test_perfect_and_degenerate():
    s = metrics.evaluate(["A", "A", "B"], [5, 5, 7])
    for k in ("pairwise", "bcubed"):
        assert s[k]["precision"] == approx(1) and s[k]["recall"] == approx(1) and s[k]["f1"] == approx(1)
    assert s["consistency"]["micro"] == approx(1)
    assert s["counts"] == {"photos": 3, "identities": 2, "photos_with_face": 3, "photos_without_face": 0,
                           "predicted_persons": 2, "identities_sharing_a_majority_id": 0}
    # No pairs at all on either side: both ratios are vacuously 1.
    p = metrics.pairwise_scores(["A", "B"], [1, 2])
    assert p["precision"] == approx(1) and p["recall"] == approx(1)
    # Everything merged into one person: recall perfect, precision poor.
    p = metrics.pairwise_scores(["A", "A", "B", "B"], [9, 9, 9, 9])
    assert p["recall"] == approx(1) and p["precision"] == approx(2 / 6)


def test_majority_ties_and_all_missed():
    m = metrics.majority_ids(["A", "A", "C"], [3, 2, None])
    assert m["A"] == (2, 1)  # tie between 2 and 3 -> smallest id
    assert m["C"] == (None, 0)
    c = metrics.consistency(["A", "A", "C"], [3, 2, None])
    assert c["micro"] == approx(1 / 3)
    assert c["per_identity"]["C"] == approx(0)
    e = metrics.evaluate(["A", "A", "C"], [3, 2, None])
    assert e["counts"]["photos_without_face"] == 1


def test_profiles_count_when_they_join_the_person_of_their_frontal_photos():
    labels = ["a", "a", "a", "a", "b", "b", "b"]
    preds = [1, 1, 1, 2, 5, 5, None]
    profile = [False, False, True, True, False, False, True]
    # a's frontal photos are on 1: one profile on 1 (hit), one on 2 (miss); b's profile has no face (miss).
    assert metrics.subset_on_reference_majority(labels, preds, profile) == {"items": 3, "on_reference_majority": 1,
                                                                           "share": 1 / 3}


def test_length_mismatch():
    with pytest.raises(ValueError):
        metrics.evaluate(["A"], [])
