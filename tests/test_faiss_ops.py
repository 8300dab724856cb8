"""faiss_ops against brute-force numpy references on seeded data."""

import numpy as np
import pytest

from alcycle import faiss_ops


@pytest.mark.parametrize("n", [50, 77])
def test_blocked_knn_matches_brute_force(monkeypatch, n):
    # The kNN that affinity relies on, with blocks small enough that rows and columns
    # both span several, ragged last ones included.
    monkeypatch.setattr(faiss_ops, "KNN_QUERY_BLOCK", 7)
    monkeypatch.setattr(faiss_ops, "KNN_DATABASE_BLOCK", 11)
    x = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
    sims, ids = faiss_ops.knn_inner_product(x, 6)
    gram = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(gram, -np.inf)
    expected = np.argsort(-gram, axis=1)[:, :6]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(sims, np.take_along_axis(gram, expected, axis=1), rtol=1e-5, atol=1e-6)


def test_knn_drops_the_row_itself_even_among_duplicates():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    _, ids = faiss_ops.knn_inner_product(x, 1)
    assert ids[:, 0].tolist() == [1, 0, 0] or ids[:, 0].tolist() == [1, 0, 1]
    assert all(ids[i, 0] != i for i in range(3))


def _clustered(n: int, seed: int) -> np.ndarray:
    """Unit rows around 20 random centres in 16 dimensions (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, 16))
    x = centres[rng.integers(0, 20, n)] + rng.normal(0, 0.4, size=(n, 16))
    return faiss_ops.l2_normalise(x)


def test_ivf_knn_searching_every_cell_is_the_exact_knn(monkeypatch):
    monkeypatch.setattr(faiss_ops, "KNN_QUERY_BLOCK", 64)  # several query blocks, a ragged last one
    x = _clustered(300, seed=1)
    exact_sims, exact_ids = faiss_ops.knn_inner_product(x, 5)
    sims, ids = faiss_ops.knn_inner_product_ivf(x, 5, nlist=8, nprobe=8, seed=0)
    np.testing.assert_allclose(sims, exact_sims, rtol=1e-5, atol=1e-6)
    assert (ids == exact_ids).mean() > 0.99  # the same lists, up to the order of exact ties
    assert not (ids == np.arange(300)[:, None]).any()


def test_ivf_knn_finds_most_true_neighbours_when_probing_few_cells():
    x = _clustered(2000, seed=2)
    _, exact = faiss_ops.knn_inner_product(x, 10)
    _, approximate = faiss_ops.knn_inner_product_ivf(x, 10, nlist=40, nprobe=4, seed=0)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert 0.8 < recall < 1.0  # approximate, yet most neighbours are the true ones
    again = faiss_ops.knn_inner_product_ivf(x, 10, nlist=40, nprobe=4, seed=0)[1]
    np.testing.assert_array_equal(again, approximate)  # the seed fixes the cells


def test_ivf_knn_refuses_impossible_settings():
    x = _clustered(30, seed=3)
    with pytest.raises(ValueError, match="nprobe"):
        faiss_ops.knn_inner_product_ivf(x, 5, nlist=4, nprobe=5, seed=0)


def test_ivfpq_knn_returns_exact_similarities_of_mostly_true_neighbours(monkeypatch):
    monkeypatch.setattr(faiss_ops, "KNN_QUERY_BLOCK", 300)  # several query blocks, a ragged last one
    monkeypatch.setattr(faiss_ops, "KNN_DATABASE_BLOCK", 700)  # added in blocks
    x = _clustered(2000, seed=2)
    exact_sims, exact = faiss_ops.knn_inner_product(x, 10)
    sims, ids = faiss_ops.knn_inner_product_ivfpq(x, 10, nlist=20, nprobe=20, m=4, seed=0)
    assert not (ids == np.arange(2000)[:, None]).any()
    # Whatever it found, the similarity is the true inner product, best first.
    np.testing.assert_allclose(sims, np.einsum("nd,nkd->nk", x, x[ids]), rtol=1e-5, atol=1e-6)
    assert (np.diff(sims, axis=1) <= 1e-6).all()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact)])
    assert recall > 0.9  # 4 bytes an item, every cell probed: the re-scored candidates hold most true ones
    # A worse code (1 byte an item) loses neighbours the exact re-scoring cannot bring back.
    coarse = faiss_ops.knn_inner_product_ivfpq(x, 10, nlist=20, nprobe=20, m=1, seed=0)[1]
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(coarse, exact)]) < recall
    np.testing.assert_array_equal(faiss_ops.knn_inner_product_ivfpq(x, 10, nlist=20, nprobe=20, m=4, seed=0)[1], ids)


def test_ivfpq_knn_refuses_a_code_size_that_does_not_divide_the_dimensions():
    with pytest.raises(ValueError, match="sub-vectors must divide the 16 dimensions"):
        faiss_ops.knn_inner_product_ivfpq(_clustered(300, seed=3), 5, nlist=4, nprobe=2, m=5, seed=0)


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    x = np.concatenate([c + rng.normal(0, 0.3, size=(30, 2)) for c in centres]).astype(np.float32)
    _, assignment = faiss_ops.kmeans(x, 3, niter=10, seed=0)
    groups = assignment.reshape(3, 30)
    assert all(len(set(g)) == 1 for g in groups) and len({g[0] for g in groups}) == 3


def test_l2_normalise_and_whitening():
    x = np.random.default_rng(1).normal(size=(200, 6)) * [1, 2, 3, 4, 5, 6]
    assert np.allclose(np.linalg.norm(faiss_ops.l2_normalise(x), axis=1), 1.0, atol=1e-6)
    white = faiss_ops.pca_whiten(x, 3)
    cov = np.cov(white.T)
    assert white.shape == (200, 3) and np.allclose(cov / cov[0, 0], np.eye(3), atol=0.05)


def test_rows_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        faiss_ops.knn_inner_product(np.zeros(5), 1)


def test_pca_beyond_the_data_is_refused():
    with pytest.raises(ValueError, match="PCA to 64 dimensions needs at least 64 rows"):
        faiss_ops.pca_whiten(np.ones((60, 128)), 64)


def test_kmeans_each_clusters_every_set_on_its_own_and_gives_back_the_threads():
    import faiss

    rng = np.random.default_rng(0)
    two_groups = np.concatenate([rng.normal(0, 0.1, size=(6, 3)), rng.normal(0, 0.1, size=(6, 3)) + 5])
    single = rng.normal(size=(4, 3))
    threads = faiss.omp_get_max_threads()
    first, second, third = faiss_ops.kmeans_each([two_groups, single, single[:2]], [2, 1, 2], niter=10, seed=0)
    assert faiss.omp_get_max_threads() == threads
    expected = sorted([two_groups[:6].mean(0).tolist(), two_groups[6:].mean(0).tolist()])
    np.testing.assert_allclose(sorted(first.tolist()), expected, atol=1e-5)
    np.testing.assert_allclose(second, single.mean(0, keepdims=True), atol=1e-6)  # one cluster: the mean
    np.testing.assert_allclose(sorted(third.tolist()), sorted(single[:2].tolist()), atol=1e-6)  # k = n: the rows
    with pytest.raises(ValueError, match="cannot cluster 2 rows into 3 clusters"):
        faiss_ops.kmeans_each([single[:2]], [3], niter=10, seed=0)


def test_knn_l2_matches_brute_force():
    rng = np.random.default_rng(0)
    queries, database = rng.normal(size=(7, 5)), rng.normal(size=(300, 5))
    distances, rows = faiss_ops.knn_l2(queries, database, 6)
    squared = ((queries[:, None, :] - database[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(rows, np.argsort(squared, axis=1)[:, :6])
    np.testing.assert_allclose(distances, np.sort(squared, axis=1)[:, :6], rtol=1e-4)
    assert rows.dtype == np.int64 and distances.dtype == np.float32
    with pytest.raises(ValueError, match=r"k must be in \[1, 300\], got 301"):
        faiss_ops.knn_l2(queries, database, 301)
    with pytest.raises(ValueError, match="queries have 4 dimensions, the database 5"):
        faiss_ops.knn_l2(queries[:, :4], database, 3)


def test_knn_l2_in_blocks_over_chosen_rows_matches_one_pass(monkeypatch):
    rng = np.random.default_rng(1)
    queries, database = rng.normal(size=(5, 3)), rng.normal(size=(200, 3)).astype(np.float32)
    database[7] = database[150]  # a tie across blocks goes to the lower position
    queries[0] = database[7]
    rows = np.sort(rng.choice(200, size=120, replace=False))
    rows = np.union1d(rows, [7, 150])
    whole = faiss_ops.knn_l2(queries, database[rows], 9)
    monkeypatch.setattr(faiss_ops, "KNN_L2_BLOCK", 16)
    blocked = faiss_ops.knn_l2(queries, database, 9, rows=rows)
    np.testing.assert_array_equal(blocked[1], whole[1])
    np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-5)
    assert rows[blocked[1][0, 0]] == 7 and rows[blocked[1][0, 1]] == 150


def test_knn_l2_ivfpq_over_chosen_rows_gives_exact_distances_of_mostly_true_neighbours():
    rng = np.random.default_rng(4)
    database = _clustered(3000, seed=4) * 3.0
    queries = database[rng.choice(3000, size=40, replace=False)] + 0.01
    rows = np.sort(rng.choice(3000, size=2000, replace=False))
    exact_distances, exact = faiss_ops.knn_l2(queries, database, 10, rows=rows)
    distances, found = faiss_ops.knn_l2_ivfpq(queries, database, 10, rows=rows, nlist=8, nprobe=8, m=4, seed=0)
    assert found.min() >= 0 and found.max() < 2000  # positions in rows, as knn_l2's
    squared = ((queries[:, None, :] - database[rows[found]]) ** 2).sum(axis=2)
    np.testing.assert_allclose(distances, squared, rtol=1e-5, atol=1e-5)  # re-scored exactly
    assert (np.diff(distances, axis=1) >= 0).all()  # nearest first
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(found, exact)])
    assert recall > 0.9
    np.testing.assert_array_equal(found[:, 0], exact[:, 0])  # each query's nearest is found
    again = faiss_ops.knn_l2_ivfpq(queries, database, 10, rows=rows, nlist=8, nprobe=8, m=4, seed=0)[1]
    np.testing.assert_array_equal(again, found)


def test_compressed_range_search_probing_every_cell_finds_exactly_the_pairs_above(monkeypatch):
    monkeypatch.setattr(faiss_ops, "KNN_QUERY_BLOCK", 300)  # several query blocks, a ragged last one
    monkeypatch.setattr(faiss_ops, "KNN_DATABASE_BLOCK", 700)
    x = _clustered(1500, seed=4)
    index = faiss_ops.CompressedInnerProducts(x, nlist=12, nprobe=12, m=2, seed=0)  # 2 bytes: a coarse code
    assert index._largest_code_error() > 0.05  # the widening is doing work
    sims = x @ x.T
    for threshold in (0.9, 0.97):
        blocks = list(index.pairs_above(threshold))
        rows, cols = (np.concatenate(part) for part in zip(*blocks))
        found = set(zip(rows.tolist(), cols.tolist()))
        assert len(found) == len(rows)  # no pair twice
        near = np.abs(sims - threshold) < 1e-5  # float32 rounding may put these either side
        exact = set(zip(*np.nonzero((sims > threshold) & ~near)))
        assert exact <= found
        assert all(sims[i, j] > threshold - 1e-5 for i, j in found)


def test_compressed_range_search_probing_few_cells_only_loses_pairs():
    x = _clustered(1500, seed=4)
    index = faiss_ops.CompressedInnerProducts(x, nlist=40, nprobe=2, m=4, seed=0)
    found = {(i, j) for rows, cols in index.pairs_above(0.9) for i, j in zip(rows.tolist(), cols.tolist())}
    sims = x @ x.T
    exact = set(zip(*np.nonzero(sims > 0.9 + 1e-5)))
    assert all(sims[i, j] > 0.9 - 1e-5 for i, j in found)  # nothing beyond the radius
    assert 0.5 < len(found & exact) / len(exact) < 1.0  # most pairs, not all: 2 of 40 cells probed


def test_compressed_knn_gives_exact_similarities_and_sees_everything_in_a_small_pool():
    x = _clustered(400, seed=5)
    index = faiss_ops.CompressedInnerProducts(x, nlist=8, nprobe=8, m=4, seed=0)
    sims, rows = index.knn(x[:50], 60)  # every cell, 8 × 60 candidates > 400 rows: every row is re-scored
    exact = np.argsort(-(x[:50] @ x.T), axis=1, kind="stable")[:, :60]
    np.testing.assert_allclose(sims, np.take_along_axis(x[:50] @ x.T, exact, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", x[:50], x[rows]), rtol=1e-5, atol=1e-6)
