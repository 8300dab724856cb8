"""k-center greedy against a brute-force reference that builds the full distance matrix."""

import importlib
import tracemalloc

import numpy as np
import pytest

from alcycle.strategies.coreset import k_center_greedy

# The package re-exports the strategy function under the module's name, so fetch the module itself.
coreset_module = importlib.import_module("alcycle.strategies.coreset")


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


# Features far from the origin: float32 |x|² - 2x·c + |c|² would round at the scale of the
# offset (D · offset² ≈ 1.6e5 at 100), not of the spread (squared distances ≈ 32).
OFFSETS = [0.0, 100.0, 1000.0]


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_centres", [0, 1, 7])
def test_matches_brute_force(seed, n_centres, offset):
    rng = np.random.default_rng(seed)
    features = (offset + rng.normal(size=(200, 16))).astype(np.float32)
    centres = rng.choice(200, size=n_centres, replace=False).tolist()
    picks, dists = k_center_greedy(features, np.array(centres, dtype=np.int64), 25, np.random.default_rng(seed))
    expected, gaps = brute_force_k_center(features.astype(np.float64), centres, 25, first=int(picks[0]))
    assert picks.tolist() == expected
    np.testing.assert_allclose(dists[1:] if not centres else dists, gaps[1:] if not centres else gaps, rtol=1e-4)


@pytest.mark.parametrize("offset", OFFSETS)
def test_every_pick_is_the_farthest_point_far_from_the_origin(offset):
    rng = np.random.default_rng(4)
    features = (offset + rng.normal(size=(500, 16))).astype(np.float32)
    centres = rng.choice(500, size=5, replace=False)
    picks, dists = k_center_greedy(features, centres, 30, np.random.default_rng(0))
    x = features.astype(np.float64)  # the float32 inputs, measured exactly
    chosen = centres.tolist()
    for step, pick in enumerate(picks):
        nearest = np.linalg.norm(x[:, None, :] - x[None, chosen, :], axis=2).min(axis=1) ** 2
        nearest[chosen] = -np.inf
        # Within float32 rounding of the spread-scale distance (≈ 32), not of the offset.
        assert nearest[pick] == pytest.approx(nearest.max(), rel=1e-5), f"step {step}"
        assert dists[step] ** 2 == pytest.approx(nearest.max(), rel=1e-5), f"step {step}"
        chosen.append(int(pick))


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


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("row_block, centre_block", [(7, 3), (1, 1), (64, 5)])
def test_blocked_start_up_distances_match_brute_force(monkeypatch, row_block, centre_block, offset):
    # Blocks small enough that rows and centres both span several, ragged last ones included.
    monkeypatch.setattr(coreset_module, "ROW_BLOCK", row_block)
    monkeypatch.setattr(coreset_module, "CENTRE_BLOCK", centre_block)
    rng = np.random.default_rng(3)
    features = (offset + rng.normal(size=(50, 6))).astype(np.float32)
    centres = rng.choice(50, size=11, replace=False)
    x = features.astype(np.float64)
    nearest = np.linalg.norm(x[:, None, :] - x[None, centres, :], axis=2).min(axis=1) ** 2
    nearest[centres] = -np.inf
    centred = coreset_module.centred(features)  # the helper's input: exact only near the origin
    sq_norms = np.einsum("ij,ij->i", centred, centred)
    got = coreset_module._squared_distances_to(centred, sq_norms, centres)
    np.testing.assert_allclose(got, nearest, rtol=1e-4, atol=1e-4)

    picks, dists = k_center_greedy(features, centres, 20, np.random.default_rng(0))
    expected, gaps = brute_force_k_center(x, centres.tolist(), 20, first=None)
    assert picks.tolist() == expected
    np.testing.assert_allclose(dists, gaps, rtol=1e-4)


def test_centring_in_blocks_matches_the_float64_mean(monkeypatch):
    monkeypatch.setattr(coreset_module, "CENTRING_ROWS", 7)  # several blocks, a ragged last one
    features = (1000.0 + np.random.default_rng(5).normal(size=(50, 6))).astype(np.float32)
    before = features.copy()
    got = coreset_module.centred(features)
    x = features.astype(np.float64)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    # The mean is rounded to float32: a shift shared by every row, up to float32 rounding of the offset.
    shift = (got - (x - x.mean(axis=0))).mean(axis=0)
    assert np.abs(shift).max() < 1000.0 * 2**-23
    np.testing.assert_allclose(got - shift, x - x.mean(axis=0), rtol=0, atol=2**-22)  # the spread's ulps
    np.testing.assert_array_equal(features, before)  # the caller's features are left alone


def test_centring_holds_one_block_not_a_float64_pool(monkeypatch):
    monkeypatch.setattr(coreset_module, "CENTRING_ROWS", 1_000)
    features = np.random.default_rng(6).normal(size=(20_000, 8)).astype(np.float32)
    tracemalloc.start()
    try:
        coreset_module.centred(features)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The float32 result (640 kB) and numpy's buffers; a float64 copy of the pool alone is 1.28 MB.
    assert peak < 1.5 * features.nbytes


@pytest.mark.parametrize("n_centres", [0, 4])
def test_progress_bar_changes_nothing_but_stderr(capsys, n_centres):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(80, 5)).astype(np.float32)
    centres = rng.choice(80, size=n_centres, replace=False)
    quiet = k_center_greedy(features, centres, 10, np.random.default_rng(2))
    assert capsys.readouterr().err == ""
    loud = k_center_greedy(features, centres, 10, np.random.default_rng(2), progress=True)
    np.testing.assert_array_equal(loud[0], quiet[0])
    np.testing.assert_array_equal(loud[1], quiet[1])
    assert "k-center greedy" in capsys.readouterr().err


@pytest.mark.parametrize("centres, budget, message", [
    ([0, 1], 9, "budget must be in \\[0, 8\\]"),
    ([0, 10], 2, "centres must be"),
    ([-1], 2, "centres must be"),
])
def test_bad_arguments_are_named(centres, budget, message):
    features = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        k_center_greedy(features, np.array(centres), budget, np.random.default_rng(0))
