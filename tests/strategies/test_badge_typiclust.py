"""Known answers for BADGE's gradient embedding and TypiClust's typicality."""

import numpy as np

from alcycle.strategies import SelectionContext, select
from alcycle.strategies.badge import gradient_embedding, kmeans_pp_gradient
import alcycle.strategies.typiclust as typiclust_module
from alcycle.strategies.typiclust import typicality


def test_gradient_embedding_known_answer():
    g = gradient_embedding(np.array([[0.7, 0.2, 0.1]]), np.array([[1.0, 2.0]]))
    # predicted class 0: a = p - e0 = (-0.3, 0.2, 0.1); g = a ⊗ h
    np.testing.assert_allclose(g, [[-0.3, -0.6, 0.2, 0.4, 0.1, 0.2]])


def test_implicit_distances_equal_explicit_kmeans_pp():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    h = rng.normal(size=(30, 5))
    picks, gaps = kmeans_pp_gradient(probs, h, np.arange(30), 6, np.random.default_rng(3))
    g = gradient_embedding(probs, h)
    assert picks[0] == np.argmax((g**2).sum(1))
    for step in range(1, 6):
        d2 = ((g[:, None, :] - g[None, picks[:step], :]) ** 2).sum(-1).min(1)
        np.testing.assert_allclose(gaps[step], d2[picks[step]], rtol=1e-9, atol=1e-12)


def test_float32_embeddings_give_the_float64_distances_to_float32_rounding():
    """extract's float32 embeddings are used as they are (no float64 copy of the pool's)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    h = rng.normal(size=(200, 64))
    exact, exact_gaps = kmeans_pp_gradient(probs, h, np.arange(200), 10, np.random.default_rng(5))
    single, single_gaps = kmeans_pp_gradient(probs, h.astype(np.float32), np.arange(200), 10, np.random.default_rng(5))
    np.testing.assert_array_equal(single, exact)
    np.testing.assert_allclose(single_gaps, exact_gaps, rtol=1e-4)
    assert single_gaps.dtype == np.float64


def test_badge_never_repicks_and_prefers_uncertain_far_items():
    probs = np.array([[0.99, 0.01], [0.5, 0.5], [0.98, 0.02], [0.51, 0.49]])
    h = np.array([[1.0, 0.0], [10.0, 0.0], [1.0, 0.1], [0.0, 10.0]])
    context = SelectionContext(ids=np.array(list("abcd")), labeled=np.zeros(4, bool), probs=probs, embeddings=h)
    selection = select(context, "badge", 2, np.random.default_rng(0))
    # |g|² = |p - e_ŷ|²·|h|²: b 0.5·100 = 50, d 0.4802·100 = 48.02, a and c below 0.001
    assert selection.rows[0] == 1 and selection.scores[0] == 50.0
    assert selection.rows[1] != 1


def test_typicality_known_answer():
    x = np.array([[0.0], [1.0], [3.0]])
    # mean distance to the 2 nearest others: 0 -> (1 + 3)/2, 1 -> (1 + 2)/2, 3 -> (2 + 3)/2
    np.testing.assert_allclose(typicality(x, neighbours=2), [1 / 2.0, 1 / 1.5, 1 / 2.5])


def test_typicality_in_row_blocks_equals_the_whole_matrix(monkeypatch):
    x = np.random.default_rng(2).normal(size=(50, 3))
    whole = typicality(x, neighbours=5)
    monkeypatch.setattr(typiclust_module, "BLOCK_ENTRIES", 7 * 50)  # 7 rows at a time, a ragged last block
    np.testing.assert_allclose(typicality(x, neighbours=5), whole, rtol=1e-12)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)) + np.diag(np.full(50, np.inf))
    np.testing.assert_allclose(whole, 1 / (np.sort(d, axis=1)[:, :5].mean(axis=1) + 1e-12), rtol=1e-9)


def test_typiclust_takes_the_centre_of_each_uncovered_blob():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [20, 0], [0, 20]], dtype=np.float32)
    blobs = [c + rng.normal(0, 1, size=(40, 2)) for c in centres]
    x = np.concatenate(blobs).astype(np.float32)
    labeled = np.zeros(120, bool)
    labeled[0] = True  # the first blob is covered
    context = SelectionContext(ids=np.arange(120).astype(str), labeled=labeled, embeddings=x)
    rows = select(context, "typiclust", 2, np.random.default_rng(0)).rows
    assert sorted(r // 40 for r in rows) == [1, 2]
    for r in rows:
        blob = x[(r // 40) * 40 : (r // 40 + 1) * 40]
        assert np.argmax(typicality(blob)) == r % 40


def test_approximate_typicality_in_a_big_cluster_follows_the_exact_one(monkeypatch):
    monkeypatch.setattr(typiclust_module, "EXACT_UP_TO", 100)  # a "big" cluster of 2,000 items
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 8)).astype(np.float32) * np.linspace(0.5, 2, 2000)[:, None].astype(np.float32)
    exact = typicality(x, neighbours=10)
    approximate = typicality(x, neighbours=10, search="ivfpq", seed=0)
    # Re-scored distances to approximate neighbours can only be as far or farther than the true ones.
    assert (approximate <= exact * (1 + 1e-5)).all()
    assert np.mean(approximate > 0.9 * exact) > 0.95
    assert np.argmax(approximate) in np.argsort(-exact)[:5]
    np.testing.assert_array_equal(typicality(x[:100], neighbours=10, search="ivfpq"), typicality(x[:100], neighbours=10))
