"""Checks of merge_teaches.py's pure helpers (run: python -m pytest bench/accuracy -q)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import merge_teaches as mt  # noqa: E402


def test_split_is_seeded_complete_and_independent_of_input_order():
    labelled = [(f"/x/{i % 3}/{i}.jpg", str(i % 3)) for i in range(11)]
    first, second = mt.split_halves(labelled, seed=0)
    assert len(first) == 5 and len(second) == 6
    assert sorted(first + second) == sorted(labelled)
    assert mt.split_halves(list(reversed(labelled)), seed=0) == (first, second)
    assert mt.split_halves(labelled, seed=1) != (first, second)


def test_plan_merges_fragments_into_the_largest_then_oldest():
    faces = ([("a", 7)] * 3 + [("a", 2)] * 3 + [("a", 9)] * 1 + [("b", 9)] * 1  # 9: a tie, a seen first
             + [("b", 4)] * 2 + [("a", 4)] * 1  # 4 is mostly b
             + [("c", 5)] * 2 + [("c", None)] * 5)  # c: one person, nothing to merge
    plan, counts = mt.plan_merges(faces)
    assert plan == [(2, [7, 9])]  # 2 and 7 both have 3: the smaller id stays
    assert counts == {"persons": 5, "persons_without_a_strict_majority": 1}


def test_score_reports_misses_and_cfp_profiles():
    items = [("/r/p/frontal_1.jpg", "p"), ("/r/p/profile_1.jpg", "p"), ("/r/q/frontal_1.jpg", "q")]
    s = mt.score(items, [1, 1, None])
    assert s["counts"]["photos_without_face"] == 1
    assert s["profiles"] == {"items": 1, "on_reference_majority": 1, "share": 1.0}
    assert s["pairwise"]["precision"] == 1.0


def test_table_adds_the_mean_of_repeats():
    def stage(f1):
        return {"pairwise": {"precision": 1.0, "recall": 0.5}, "bcubed": {"f1": f1}, "consistency": {"micro": f1}}

    runs = [{"set": "s", "label": "after", "merges": {"made": m, "refused": 0},
             **{k: stage(f1) for k in ("after_half_1", "after_merges", "final", "final_half_2")}}
            for m, f1 in ((2, 0.8), (3, 0.9))]
    rows = mt.table(runs).splitlines()
    assert len(rows) == 5
    assert rows[-1] == ("| s, mean of 2 | after | 1.000 / 0.500 / 0.850 / 0.850 | 1.000 / 0.500 / 0.850 / 0.850 "
                        "| **1.000 / 0.500 / 0.850 / 0.850** | 0.850 / 0.850 | 2.5 / 0.0 |")
