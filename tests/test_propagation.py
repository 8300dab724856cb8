"""Label propagation against hand-worked graphs, a dense solve and scipy's cg."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from alcycle.propagation import Search, affinity, block_cg, propagate

ALPHA = 0.99


def on_circle(degrees: list[float]) -> np.ndarray:
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


# Two clusters of directions (cosine similarity is what counts), spaced unevenly so no
# kNN ties; with k = 5 each item has its 4 cluster mates plus one cross-cluster edge,
# so the graph is connected and the solve is not trivial.
TWO_CLUSTERS = on_circle([0, 3, 7, 12, 18, 64, 71, 76, 80, 83])
TRUTH = np.array([0] * 5 + [1] * 5)
ONE_LABEL_EACH = np.array([0, -1, -1, -1, -1, -1, -1, -1, -1, 1])


def brute_force_wn(features: np.ndarray, k: int, gamma: float, reciprocal: bool) -> np.ndarray:
    """Dense Wn (N, N) from a numpy kNN over every pair, the recipe written out."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    knn = np.zeros_like(sims)
    for i, row in enumerate(sims):
        for j in np.argsort(-row)[:k]:
            knn[i, j] = max(row[j], 0.0) ** gamma
    w = np.minimum(knn, knn.T) if reciprocal else knn + knn.T
    degree = w.sum(axis=1)
    scale = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    return scale[:, None] * w * scale[None, :]


def seeds(labels: np.ndarray, num_classes: int) -> np.ndarray:
    y = np.zeros((len(labels), num_classes))
    for c in range(num_classes):
        members = labels == c
        if members.any():
            y[members, c] = 1.0 / members.sum()
    return y


def test_affinity_three_nodes_symmetric_by_hand():
    # 0° and 30° pick each other; 90° picks 30° (cos 60° = 0.5 beats cos 90° = 0).
    a, b = np.cos(np.deg2rad(30)) ** 3, 0.5**3
    wn = affinity(on_circle([0, 30, 90]), k=1, gamma=3.0, reciprocal=False).toarray()
    d0, d1, d2 = 2 * a, 2 * a + b, b  # the 0-1 edge is found from both ends: it counts twice
    expected = np.array(
        [
            [0, 2 * a / np.sqrt(d0 * d1), 0],
            [2 * a / np.sqrt(d0 * d1), 0, b / np.sqrt(d1 * d2)],
            [0, b / np.sqrt(d1 * d2), 0],
        ]
    )
    np.testing.assert_allclose(wn, expected, rtol=1e-5)


def test_affinity_three_nodes_reciprocal_by_hand():
    # Only 0-1 is mutual; 2 is left isolated, its row and column zero rather than NaN.
    wn = affinity(on_circle([0, 30, 90]), k=1, gamma=3.0, reciprocal=True).toarray()
    np.testing.assert_allclose(wn, [[0, 1, 0], [1, 0, 0], [0, 0, 0]], rtol=1e-6, atol=0)


@pytest.mark.parametrize("reciprocal", [False, True])
@pytest.mark.parametrize("k", [2, 5])
def test_affinity_matches_brute_force(reciprocal, k):
    features = np.random.default_rng(k).normal(size=(40, 6))
    wn = affinity(features, k=k, gamma=3.0, reciprocal=reciprocal)
    assert wn.shape == (40, 40) and (wn != wn.T).nnz == 0
    np.testing.assert_allclose(wn.toarray(), brute_force_wn(features, k, 3.0, reciprocal), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reciprocal", [False, True])
def test_scores_match_dense_solve(reciprocal):
    wn = brute_force_wn(TWO_CLUSTERS, 5, 3.0, reciprocal)
    z = np.linalg.solve(np.eye(10) - ALPHA * wn, seeds(ONE_LABEL_EACH, 2))
    result = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5, reciprocal=reciprocal, iterations=200)
    expected = np.maximum(z, 0) / np.maximum(z, 0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5, atol=1e-7)


def test_block_cg_solves_the_graph_system():
    wn = affinity(TWO_CLUSTERS, k=5, gamma=3.0, reciprocal=False)
    y = seeds(ONE_LABEL_EACH, 2)
    z = block_cg(lambda p: p - ALPHA * (wn @ p), y, iterations=200)
    np.testing.assert_allclose(z, np.linalg.solve(np.eye(10) - ALPHA * wn.toarray(), y), rtol=1e-8)


@pytest.mark.parametrize("iterations", [1, 4, 12])
def test_block_cg_equals_scipy_cg_column_by_column(iterations):
    rng = np.random.default_rng(iterations)
    wn = affinity(rng.normal(size=(60, 5)), k=6, gamma=3.0, reciprocal=False)
    matrix = scipy.sparse.identity(60, format="csr") - ALPHA * wn
    rhs = rng.normal(size=(60, 3))
    rhs[:, 1] = 0.0  # a class with no label: scipy returns zeros at once
    ours = block_cg(lambda p: matrix @ p, rhs, iterations, rtol=1e-12)
    for c in range(3):
        theirs, info = scipy.sparse.linalg.cg(matrix, rhs[:, c], rtol=1e-12, maxiter=iterations)
        assert info == (0 if c == 1 else iterations)  # the others stopped by the step count
        np.testing.assert_allclose(ours[:, c], theirs, rtol=1e-10, atol=1e-13)


def test_block_cg_stops_a_converged_column_like_scipy():
    matrix = np.diag([1.0, 2.0, 4.0])  # three distinct eigenvalues: CG is exact in 3 steps
    rhs = np.array([[1.0], [1.0], [1.0]])
    ours = block_cg(lambda p: matrix @ p, rhs, iterations=50)
    theirs, info = scipy.sparse.linalg.cg(matrix, rhs[:, 0], rtol=1e-10, maxiter=50)
    assert info == 0 and np.isfinite(ours).all()
    np.testing.assert_allclose(ours[:, 0], theirs, rtol=1e-12)
    np.testing.assert_allclose(ours[:, 0], [1.0, 0.5, 0.25], rtol=1e-12)


def test_pseudo_labels_recover_the_two_clusters():
    result = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5)
    assert result.pseudo_labels.dtype == np.int64
    np.testing.assert_array_equal(result.pseudo_labels, TRUTH)
    assert result.scores.dtype == np.float32 and result.scores.shape == (10, 2)
    np.testing.assert_allclose(result.scores.sum(axis=1), 1.0, rtol=1e-6)


def test_weights_are_normalised_certainty():
    result = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5)
    labeled = ONE_LABEL_EACH >= 0
    assert result.weights.dtype == np.float32
    np.testing.assert_array_equal(result.weights[labeled], 1.0)
    z = result.scores[~labeled].astype(np.float64)
    certainty = 1 + (z * np.log(z)).sum(axis=1) / np.log(2)
    np.testing.assert_allclose(result.weights[~labeled], certainty / certainty.max(), rtol=1e-5)
    assert result.weights[~labeled].max() == pytest.approx(1.0)
    assert (result.weights >= 0).all() and (result.weights <= 1).all()


def test_class_weights_known_answer_with_an_unlabeled_class():
    # Three classes, none labeled for class 2: it gets a zero column, no item, weight 0.
    result = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 3, k=5)
    np.testing.assert_array_equal(result.pseudo_labels, TRUTH)
    np.testing.assert_array_equal(result.scores[:, 2], 0.0)
    assert result.class_weights.dtype == np.float32
    np.testing.assert_allclose(result.class_weights, [(10 / 3) / 5, (10 / 3) / 5, 0.0], rtol=1e-6)


def test_class_weights_unbalanced():
    labels = ONE_LABEL_EACH.copy()
    labels[4] = 1  # the item at 18° is forced into class 1: six items there, four in class 0
    result = propagate(TWO_CLUSTERS, labels, 2, k=5)
    assert result.pseudo_labels[4] == 1
    counts = np.bincount(result.pseudo_labels, minlength=2)
    np.testing.assert_allclose(result.class_weights, 5.0 / counts, rtol=1e-6)


def test_isolated_node_in_reciprocal_mode_gives_no_nan():
    result = propagate(on_circle([0, 30, 90]), np.array([0, -1, -1]), 2, k=1, reciprocal=True)
    for array in (result.scores, result.weights, result.class_weights):
        assert np.isfinite(array).all()
    np.testing.assert_array_equal(result.scores[2], 0.0)  # no label reaches it
    assert result.weights[2] == 0.0 and result.weights[1] == pytest.approx(1.0)
    assert result.pseudo_labels[1] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ONE_LABEL_EACH[:9]}, r"labels must have shape \(10,\)"),
        ({"labels": np.where(ONE_LABEL_EACH == 1, 2, ONE_LABEL_EACH)}, r"labels must be -1 or in \[0, 1\], got 2"),
        ({"labels": np.where(ONE_LABEL_EACH == 1, -2, ONE_LABEL_EACH)}, r"labels must be -1 or in \[0, 1\], got -2"),
        ({"labels": ONE_LABEL_EACH.astype(float)}, "labels must be integers"),
        ({"labels": np.full(10, -1)}, "at least one item must be labeled"),
        ({"k": 10}, r"k must be in \[1, 9\] for 10 items, got 10"),
        ({"k": 0}, r"k must be in \[1, 9\]"),
        ({"num_classes": 1}, "num_classes must be >= 2"),
        ({"alpha": 1.0}, r"alpha must be in \[0, 1\)"),
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"gamma": 0.0}, "gamma must be > 0"),
        ({"features": TWO_CLUSTERS[:, 0]}, "features must be a 2-D array"),
        ({"features": np.where(np.eye(10, 2) > 0, np.nan, TWO_CLUSTERS)}, "features must be finite"),
    ],
)
def test_bad_inputs_are_refused(kwargs, message):
    arguments = {"features": TWO_CLUSTERS, "labels": ONE_LABEL_EACH, "num_classes": 2, "k": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        propagate(**arguments)


def test_approximate_search_that_finds_too_few_neighbours_leaves_no_dangling_edge():
    """ivf with one probed cell of tiny clusters returns -1 for missing neighbours: they become
    no edge at all, and the graph stays symmetric with a zero diagonal."""
    rng = np.random.default_rng(4)
    features = np.concatenate([rng.normal(c, 0.01, size=(6, 3)) for c in np.eye(3) * 5])
    exact = affinity(features, k=8, gamma=3.0, reciprocal=False).toarray()
    approx = affinity(features, k=8, gamma=3.0, reciprocal=False, search=Search("ivf", nlist=3, nprobe=1)).toarray()
    np.testing.assert_allclose(approx, approx.T)
    assert np.all(np.diag(approx) == 0)
    assert (approx > 0).sum() < (exact > 0).sum()  # fewer edges: neighbours beyond the one cell are missing
    assert ((approx > 0) <= (exact > 0)).all()  # and none that the exact graph lacks


def test_ivf_propagation_agrees_with_exact_on_separated_clusters():
    result_exact = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5, iterations=200)
    result_ivf = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5, iterations=200, search=Search("ivf", nlist=2, nprobe=2))
    np.testing.assert_array_equal(result_ivf.pseudo_labels, result_exact.pseudo_labels)


def test_ivfpq_propagation_agrees_with_exact_on_separated_clusters():
    result_exact = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5, iterations=200)
    compressed = Search("ivfpq", nlist=2, nprobe=2, pq_m=1)
    result_pq = propagate(TWO_CLUSTERS, ONE_LABEL_EACH, 2, k=5, iterations=200, search=compressed)
    np.testing.assert_array_equal(result_pq.pseudo_labels, result_exact.pseudo_labels)
