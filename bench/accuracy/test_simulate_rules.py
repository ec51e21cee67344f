"""Checks of simulate_rules.py's rules on small synthetic embeddings (run: python -m pytest bench/accuracy -q)."""
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import simulate_rules as sim  # noqa: E402


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def synthetic(seed=0, people=6, per=8, dim=16, noise=0.6):
    """Photos of `people` identities, some with a second face of another identity."""
    rng = np.random.default_rng(seed)
    centres = [unit(rng.normal(size=dim)) for _ in range(people)]
    photos = []
    for p in range(people):
        for _ in range(per):
            faces = [unit(centres[p] + noise * rng.normal(size=dim) / np.sqrt(dim))]
            if rng.random() < 0.3:
                other = int(rng.integers(people))
                faces.append(unit(centres[other] + noise * rng.normal(size=dim) / np.sqrt(dim)))
            photos.append((np.array(faces), 0, f"id{p}"))
    return photos


def orders(photos, n=3):
    out = []
    for seed in range(n):
        order = list(range(len(photos)))
        random.Random(seed).shuffle(order)
        out.append(order)
    return out


def test_greedy_assign_best_pair_first_one_face_per_person():
    # face 0 prefers person 0 (0.9) but face 1 scores 0.95 there: face 1 takes person 0, face 0 its second best.
    pairs = [(0.9, 0, 0), (0.95, 1, 0), (0.5, 0, 1)]
    assert sim.greedy_assign(pairs, 3, 2) == {1: 0, 0: 1, 2: 2}


def test_engine_mean_state_equals_todays_rule():
    photos = synthetic()
    capacity = sum(len(f) for f, _, _ in photos)
    for order in orders(photos):
        for base, margin in [(0.5, 0.0), (0.6, 0.1)]:
            expected = sim.sort_online(photos, order, base, margin)
            assert sim.run_rule(photos, order, sim.MeanState(16, capacity, base, margin)) == expected


def test_one_prototype_is_todays_rule():
    photos = synthetic(seed=1)
    capacity = sum(len(f) for f, _, _ in photos)
    for order in orders(photos):
        expected = sim.sort_online(photos, order, 0.55, 0.05)
        state = sim.PrototypeState(16, capacity, 0.55, 0.05, look=0.9, k=1)
        assert sim.run_rule(photos, order, state) == expected


def test_nearest_with_every_face_voting_is_todays_rule():
    # the mean of all similarities to a person's faces is q·sum/count
    photos = synthetic(seed=2)
    capacity = sum(len(f) for f, _, _ in photos)
    for order in orders(photos):
        expected = sim.sort_online(photos, order, 0.5, 0.05)
        state = sim.NearestState(16, capacity, 0.5, 0.05, k=10_000)
        assert sim.run_rule(photos, order, state) == expected


def test_prototype_opens_a_second_look_and_scores_the_best_one():
    a, b = unit([1, 0, 0]), unit([0, 1, 0])
    state = sim.PrototypeState(3, 4, base=0.6, margin=0.0, look=0.8, k=2)
    state.add(a, 0)
    state.add(b, 0)  # similarity 0 < look 0.8: a second look of person 0
    assert state.looks[0] == [0, 1]
    pairs = state.pairs(np.array([unit([0.1, 1, 0])]))
    assert len(pairs) == 1 and pairs[0][1:] == (0, 0) and pairs[0][0] > 0.99
    # one mean of a and b would score this face only ~0.77; a third face near b joins b's look (K reached anyway)
    state.add(unit([0.1, 1, 0]), 0)
    assert list(state.counts[:2]) == [1, 2]


def test_prototype_merge_keep_and_blend():
    a, b = unit([1, 0, 0]), unit([0, 1, 0])
    for mode, looks in [("keep", 2), ("blend", 1)]:
        state = sim.PrototypeState(3, 4, base=0.6, margin=0.0, look=0.8, k=2, merge_mode=mode)
        state.add(a, 0)
        state.add(b, 1)
        state.merge(0, 1)
        assert len(state.looks[0]) == looks and 1 not in state.looks
        matched = state.pairs(np.array([b]))
        assert [p[2] for p in matched] == ([0] if mode == "keep" else [])  # a blended mean scores b only ~0.71


def test_user_merge_joins_fragments_of_one_identity():
    a, b = unit([1, 0, 0]), unit([0, 1, 0])
    photos = [(np.array([a]), 0, "x"), (np.array([b]), 0, "x"), (np.array([b]), 0, "x")]
    # high base: the two looks of x become two persons until the user merges them after 2 photos
    state = sim.PrototypeState(3, 6, base=0.9, margin=0.0, look=0.8, k=2)
    assert sim.run_rule(photos, [0, 1, 2], state, merge_at=2) == [0, 0, 0]
    state = sim.PrototypeState(3, 6, base=0.9, margin=0.0, look=0.8, k=2)
    assert sim.run_rule(photos, [0, 1, 2], state) == [0, 1, 1]


def test_face_quality_nearest_errors_and_bins():
    import face_quality as fq
    e = np.array([unit([1, 0]), unit([1, 0.1]), unit([0, 1]), unit([0.1, 1])])
    assert fq.nearest_other_errors(e, ["a", "a", "b", "c"]).tolist() == [False, False, True, True]
    table = fq.bin_table([10, 30, 35, None, 100], [True, False, True, True, False], [0, 32, 64])
    assert table[0][:2] == ("0–32", 2) and table[0][2] == 0.5
    assert table[1][:3] == ("32–64", 1, 1.0)
    assert table[2][:3] == ("≥64", 1, 0.0)
