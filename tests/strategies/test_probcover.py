"""ProbCover: the coverage greedy, the δ-ball graph and the purity radius on hand-computed cases."""

import dataclasses

import numpy as np
import pytest
from scipy import sparse
from test_registry_contract import make_context, tiny_params

import alcycle.strategies.probcover as probcover_module
from alcycle.strategies import select
from alcycle.strategies.probcover import ball_graph, greedy_cover, purity_delta


def graph_of(edges: dict[int, list[int]], n: int) -> sparse.csr_matrix:
    """The symmetric ball graph with ``edges`` (each row covers itself too)."""
    pairs = {(i, i) for i in range(n)} | {(a, b) for a, bs in edges.items() for b in bs}
    pairs |= {(b, a) for a, b in pairs}
    r, c = zip(*sorted(pairs))
    return sparse.csr_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))


def test_greedy_cover_known_answer():
    # 0-1-2-3 a path, 4-5 a pair, 6 alone. Balls: 1 and 2 cover 3 items each, 0, 3, 4, 5 two, 6 one.
    graph = graph_of({0: [1], 1: [2], 2: [3], 4: [5]}, 7)
    picks = greedy_cover(graph, np.zeros(7, dtype=bool), 4, np.random.default_rng(0))
    # 1 covers {0, 1, 2}; then 2 covers only 3 (one), 3 covers 3, 4 and 5 cover two: 4 (lower row);
    # then 3 and 2 and 6 each cover one new item: 2 (lowest row).
    assert picks.rows.tolist() == [1, 4, 2, 6]
    assert picks.scores.tolist() == [3.0, 2.0, 1.0, 1.0]


def test_labeled_items_cover_their_balls_first():
    graph = graph_of({0: [1], 1: [2], 2: [3], 4: [5]}, 7)
    labeled = np.zeros(7, dtype=bool)
    labeled[2] = True  # covers 1, 2 and 3
    picks = greedy_cover(graph, labeled, 2, np.random.default_rng(0))
    assert picks.rows.tolist() == [4, 0]  # 4 covers {4, 5}; then 0, 6 cover one each, 0 the lower row
    assert picks.scores.tolist() == [2.0, 1.0]


def test_once_everything_is_covered_the_rest_are_random_unlabeled_items():
    graph = graph_of({0: [1, 2], 3: [4]}, 5)  # 0 covers 0-2; 3 or 4 covers 3-4
    labeled = np.array([False, False, False, True, False])
    seen = set()
    for seed in range(20):
        picks = greedy_cover(graph, labeled, 3, np.random.default_rng(seed))
        assert picks.rows[0] == 0 and picks.scores.tolist() == [3.0, 0.0, 0.0]
        assert sorted(picks.rows[1:].tolist()) in ([1, 2], [1, 4], [2, 4])  # never 0 again, never labeled 3
        seen.add(tuple(picks.rows[1:]))
    assert len(seen) > 1  # drawn, not fixed


def test_ball_graph_holds_exactly_the_pairs_closer_than_delta(monkeypatch):
    monkeypatch.setattr(probcover_module, "QUERY_BLOCK", 3)  # several ragged blocks each way
    monkeypatch.setattr(probcover_module, "DATABASE_BLOCK", 4)
    angles = np.array([0.0, 0.1, 0.25, 1.0, 1.05, 2.0, 3.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    graph = ball_graph(x, delta=0.2)
    distance = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.testing.assert_array_equal(graph.toarray().astype(bool), distance < 0.2)
    assert graph.diagonal().all()


def test_too_many_edges_is_refused_with_what_to_change(monkeypatch):
    monkeypatch.setattr(probcover_module, "MAX_EDGES", 10)
    x = np.ones((5, 2), dtype=np.float32) / np.sqrt(2)
    with pytest.raises(ValueError, match="select.probcover.delta smaller.*select.candidates"):
        ball_graph(x, delta=0.5)


def test_purity_delta_is_the_alpha_quantile_of_the_nearest_other_cluster_distance():
    # Two tight clusters of unit vectors on a circle, 0.5 rad apart at their closest items.
    left = np.array([0.0, 0.02, 0.04, 0.06, 0.08])
    right = left + 0.58
    angles = np.concatenate([left, right])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    # d(x) = chord to the nearest item of the other cluster: 2 sin(|Δθ| / 2).
    d = np.sort([2 * np.sin(min(abs(a - b) for b in (right if a in left else left)) / 2) for a in angles])
    rng = np.random.default_rng(0)
    assert purity_delta(x, 2, alpha=1.0, seed=0, rng=rng) == pytest.approx(d[0], rel=1e-5)
    # alpha 0.8 of 10 items: at most 2 impure balls, so δ = d[2]
    assert purity_delta(x, 2, alpha=0.8, seed=0, rng=rng) == pytest.approx(d[2], rel=1e-5)


def test_probcover_picks_one_item_per_blob_before_a_second_from_any():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4] * 5
    embeddings = np.concatenate([c + 0.05 * rng.normal(size=(30, 8)) for c in centres]).astype(np.float32)
    base = make_context(n=120, classes=4, dim=8, labeled=0, strategy="probcover")
    context = dataclasses.replace(base, embeddings=embeddings)
    picks = select(context, "probcover", 4, np.random.default_rng(1))
    assert sorted(picks.rows // 30) == [0, 1, 2, 3]
    # A labeled item in blob 0 leaves the three other blobs to the next picks.
    labeled = np.zeros(120, dtype=bool)
    labeled[5] = True
    picks = select(dataclasses.replace(context, labeled=labeled), "probcover", 3, np.random.default_rng(1))
    assert sorted(picks.rows // 30) == [1, 2, 3]


def test_a_fixed_delta_is_used_as_given():
    settings = dataclasses.replace(tiny_params().select.probcover, delta=3.0)  # every ball holds the pool
    context = dataclasses.replace(make_context(n=30, labeled=0, strategy="probcover"), settings=settings)
    picks = select(context, "probcover", 3, np.random.default_rng(0))
    assert picks.scores.tolist() == [30.0, 0.0, 0.0]


def _blobs(per_blob: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[:5] * 3
    x = np.concatenate([c + 0.3 * rng.normal(size=(per_blob, 16)) for c in centres])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_compressed_ball_graph_probing_every_cell_is_the_exact_graph():
    x = _blobs()
    index = probcover_module.CompressedInnerProducts(x, nlist=6, nprobe=6, seed=0)
    for delta in (0.3, 0.6):
        approximate, exact = ball_graph(x, delta, index), ball_graph(x, delta)
        assert (approximate != exact).nnz == 0 and exact.nnz > len(x)


def test_the_compressed_purity_radius_on_a_small_pool_is_the_exact_one():
    # 200 rows, every cell probed, 100 neighbours each: the 8 × 100 candidates re-scored are every
    # row, so d is exact.
    x = _blobs()
    index = probcover_module.CompressedInnerProducts(x, nlist=8, nprobe=8, seed=0)
    for alpha in (0.9, 1.0):
        exact = purity_delta(x, 5, alpha, seed=3, rng=np.random.default_rng(0))
        approximate = purity_delta(x, 5, alpha, seed=3, rng=np.random.default_rng(0), index=index)
        assert approximate == pytest.approx(exact, rel=1e-5)


def test_with_no_other_cluster_among_the_neighbours_the_farthest_one_bounds_the_radius(monkeypatch):
    monkeypatch.setattr(probcover_module, "PURITY_NEIGHBOURS", 5)  # fewer than a blob: never another cluster
    x = _blobs()
    index = probcover_module.CompressedInnerProducts(x, nlist=8, nprobe=8, seed=0)
    exact = purity_delta(x, 5, 1.0, seed=3, rng=np.random.default_rng(0))
    bounded = purity_delta(x, 5, 1.0, seed=3, rng=np.random.default_rng(0), index=index)
    # The 5 neighbours are the item itself and its 4 nearest others; alpha 1: the smallest bound.
    fourth = np.sort(np.sqrt(np.clip(2 - 2 * (x @ x.T), 0, None)), axis=1)[:, 4]
    assert bounded == pytest.approx(fourth.min(), rel=1e-4) and bounded < exact


def test_probcover_through_the_compressed_index_still_picks_one_item_per_blob():
    x = _blobs()
    settings = dataclasses.replace(tiny_params().select.probcover, search="ivfpq")
    base = make_context(n=len(x), classes=5, dim=16, labeled=0, strategy="probcover")
    context = dataclasses.replace(base, embeddings=x, settings=settings)
    picks = select(context, "probcover", 5, np.random.default_rng(1))
    assert sorted(picks.rows // 40) == [0, 1, 2, 3, 4]
