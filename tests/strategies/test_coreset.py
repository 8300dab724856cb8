"""k-center greedy against a brute-force reference that builds the full distance matrix."""

import numpy as np
import pytest

from alcycle.strategies.coreset import k_center_greedy


def brute_force_k_center(features: np.ndarray, centres: list[int], budget: int, first: int | None):
    distances = np.linalg.norm(features[:, None, :] - features[None, :, :], axis=2)  # float64 N×N
    chosen = list(centres)
    picks, gaps = [], []
    for _ in range(budget):
        if not chosen:
            pick, gap = first, 0.0
        else:
            nearest = distances[:, chosen].min(axis=1)
            nearest[chosen] = -np.inf
            pick = int(np.argmax(nearest))
            gap = nearest[pick]
        picks.append(pick)
        gaps.append(gap)
        chosen.append(pick)
    return picks, gaps


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_centres", [0, 1, 7])
def test_matches_brute_force(seed, n_centres):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, 16)).astype(np.float32)
    centres = rng.choice(200, size=n_centres, replace=False).tolist()
    picks, dists = k_center_greedy(features, np.array(centres, dtype=np.int64), 25, np.random.default_rng(seed))
    expected, gaps = brute_force_k_center(features.astype(np.float64), centres, 25, first=int(picks[0]))
    assert picks.tolist() == expected
    np.testing.assert_allclose(dists[1:] if not centres else dists, gaps[1:] if not centres else gaps, rtol=1e-4)


def test_first_pick_without_centres_comes_from_the_generator():
    features = np.random.default_rng(0).normal(size=(50, 4))
    a, _ = k_center_greedy(features, np.array([], dtype=np.int64), 3, np.random.default_rng(5))
    b, _ = k_center_greedy(features, np.array([], dtype=np.int64), 3, np.random.default_rng(5))
    assert a.tolist() == b.tolist()
    assert a[0] == np.random.default_rng(5).integers(50)


def test_known_answer_on_a_line():
    # points at 0, 1, 2, 10 with the centre at 0: farthest is 10, then 2 (distance 2 from 0... and 8 from 10)
    features = np.array([[0.0], [1.0], [2.0], [10.0]])
    picks, dists = k_center_greedy(features, np.array([0]), 3, np.random.default_rng(0))
    assert picks.tolist() == [3, 2, 1]
    np.testing.assert_allclose(dists, [10.0, 2.0, 1.0])


def test_duplicates_of_centres_are_still_picked_once_everything_else_is():
    features = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    picks, dists = k_center_greedy(features, np.array([0]), 2, np.random.default_rng(0))
    assert picks.tolist() == [2, 1]
    np.testing.assert_allclose(dists, [5.0, 0.0], atol=1e-6)
