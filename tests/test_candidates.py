"""Candidate subsets (select.candidates): known answers against brute force on seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_params

from alcycle.candidates import candidate_rows
from alcycle.params import ParamsError, load_params


def seeded(seed: int, n: int = 60, d: int = 4, n_labeled: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A labeled mask (n,) with ``n_labeled`` True and embeddings (n, d) float32."""
    rng = np.random.default_rng(seed)
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, size=n_labeled, replace=False)] = True
    return labeled, rng.normal(size=(n, d)).astype(np.float32)


def brute_force_seals(labeled: np.ndarray, embeddings: np.ndarray, k: int) -> dict[int, float]:
    """Each unlabeled row among some labeled row's k nearest unlabeled rows -> its smallest squared distance."""
    unlabeled = np.flatnonzero(~labeled)
    found: dict[int, float] = {}
    for row in np.flatnonzero(labeled):
        distances = ((embeddings[unlabeled] - embeddings[row]) ** 2).sum(axis=1)
        for position in np.argsort(distances, kind="stable")[:k]:
            found[int(unlabeled[position])] = min(found.get(int(unlabeled[position]), np.inf), distances[position])
    return found


@pytest.mark.parametrize("method", ["random", "seals"])
@pytest.mark.parametrize("seed", range(20))
def test_every_labeled_row_stays_and_exactly_size_unlabeled_rows_join(method: str, seed: int) -> None:
    labeled, embeddings = seeded(seed, n_labeled=seed % 6)  # seed 0, 6, 12, 18: nothing labeled
    rows = candidate_rows(method, labeled, 12, 3, np.random.default_rng(seed), embeddings)
    assert (np.diff(rows) > 0).all() and rows.dtype == np.int64
    assert set(np.flatnonzero(labeled)) <= set(rows.tolist())
    assert (~labeled[rows]).sum() == 12


def test_all_keeps_every_row_and_draws_nothing() -> None:
    labeled, embeddings = seeded(0)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(candidate_rows("all", labeled, 5, 3, rng, embeddings), np.arange(60))
    assert rng.random() == np.random.default_rng(3).random()


def test_a_pool_no_larger_than_size_is_kept_whole() -> None:
    labeled, embeddings = seeded(1)
    for method in ("random", "seals"):
        np.testing.assert_array_equal(candidate_rows(method, labeled, 55, 3, np.random.default_rng(0), embeddings),
                                      np.arange(60))


def test_random_is_reproducible_with_the_seed() -> None:
    labeled, _ = seeded(2)
    first = candidate_rows("random", labeled, 10, 1, np.random.default_rng(7))
    np.testing.assert_array_equal(first, candidate_rows("random", labeled, 10, 1, np.random.default_rng(7)))
    assert not np.array_equal(first, candidate_rows("random", labeled, 10, 1, np.random.default_rng(8)))


@pytest.mark.parametrize("seed", range(5))
def test_seals_picks_the_true_nearest_neighbours(seed: int) -> None:
    labeled, embeddings = seeded(seed)
    truth = brute_force_seals(labeled, embeddings, k=4)
    # size = the union's size: exactly the union, no top-up
    rows = candidate_rows("seals", labeled, len(truth), 4, np.random.default_rng(0), embeddings)
    assert set(rows[~labeled[rows]].tolist()) == set(truth)
    # a smaller size keeps the rows nearest to a labeled row
    nearest = sorted(truth, key=lambda row: (truth[row], row))[:6]
    rows = candidate_rows("seals", labeled, 6, 4, np.random.default_rng(0), embeddings)
    assert set(rows[~labeled[rows]].tolist()) == set(nearest)
    # a larger size holds the whole union, topped up at random
    rows = candidate_rows("seals", labeled, len(truth) + 7, 4, np.random.default_rng(0), embeddings)
    assert set(truth) <= set(rows.tolist()) and (~labeled[rows]).sum() == len(truth) + 7


def test_seals_before_any_label_is_random() -> None:
    labeled, embeddings = seeded(3, n_labeled=0)
    np.testing.assert_array_equal(candidate_rows("seals", labeled, 9, 4, np.random.default_rng(5), embeddings),
                                  candidate_rows("random", labeled, 9, 4, np.random.default_rng(5)))


def test_bad_method_and_missing_embeddings_are_named() -> None:
    labeled, _ = seeded(0)
    with pytest.raises(ValueError, match="unknown candidate method 'nearest'; choose one of: all, random, seals"):
        candidate_rows("nearest", labeled, 5, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="'seals' needs embeddings with a row for each of the 60 items"):
        candidate_rows("seals", labeled, 5, 3, np.random.default_rng(0))


def test_params_old_files_mean_all_and_bad_values_are_named(tmp_path) -> None:
    block = ("  candidates:" + write_params(tmp_path).read_text().split("  candidates:")[1].split("  vaal:")[0])
    old = load_params(write_params(tmp_path, **{block: ""}))
    assert (old.select.candidates.method, old.select.candidates.size, old.select.candidates.k) == ("all", 10000, 100)
    for old_line, new_line, message in [
        ("    method: all ", "    method: near ", "'select.candidates.method' is 'near'; choose one of: all, random, seals"),
        ("    size: 10000 ", "    size: 0 ", "'select.candidates.size' is 0; it must be at least 1"),
        ("    k: 100 ", "    k: 0 ", "'select.candidates.k' is 0; it must be at least 1"),
    ]:
        with pytest.raises(ParamsError, match=message):
            load_params(write_params(tmp_path, **{old_line: new_line}))


def test_seals_through_the_compressed_index_finds_the_same_candidates_on_clear_clusters() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 8)) * 10
    embeddings = (centres[rng.integers(0, 6, 600)] + rng.normal(size=(600, 8))).astype(np.float32)
    labeled = np.zeros(600, dtype=bool)
    labeled[rng.choice(600, size=6, replace=False)] = True
    exact = candidate_rows("seals", labeled, 60, 10, np.random.default_rng(0), embeddings)
    compressed = candidate_rows("seals", labeled, 60, 10, np.random.default_rng(0), embeddings, search="ivfpq")
    assert len(compressed) == len(exact) == 66
    assert len(np.intersect1d(compressed, exact)) >= 0.9 * 66
    with pytest.raises(ValueError, match="unknown candidate search 'annoy'; choose one of: exact, ivfpq"):
        candidate_rows("seals", labeled, 60, 10, np.random.default_rng(0), embeddings, search="annoy")
