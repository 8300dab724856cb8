"""faiss behind one small module: exact and approximate kNN, k-means, PCA on float32 rows.

Inputs are coerced at the boundary (contiguous float32, 2-D), as faiss's own
``contrib`` wrappers do.
"""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np


def as_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of rows, got shape {x.shape}")
    return x


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32 (N, D)."""
    x = as_rows(x).copy()
    faiss.normalize_L2(x)
    return x


# Rows × columns of one block of inner products in knn_inner_product: 64 MB of float32.
KNN_QUERY_BLOCK = 2048
KNN_DATABASE_BLOCK = 8192


def knn_inner_product(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row by inner product, the row itself excluded.

    x: (N, D). Returns similarities (N, k) float32 and indices (N, k) int64, best first.
    The same answer as ``IndexFlatIP.search`` (up to the order of ties), computed as
    blocks of inner products by numpy's BLAS fed to faiss's top-k heaps: the faiss-cpu
    wheel bundles an OpenBLAS that runs generic (pre-AVX) kernels, which numpy's BLAS
    outruns (docs/benchmarks.md, "Label propagation at scale"). Memory beyond the
    result: one 64 MB block.
    """
    x = as_rows(x)
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    sims = np.empty((n, k + 1), dtype=np.float32)
    ids = np.empty((n, k + 1), dtype=np.int64)
    heaps = faiss.float_minheap_array_t()  # a min-heap keeps the k + 1 largest
    heaps.nh, heaps.k = n, k + 1
    heaps.val, heaps.ids = faiss.swig_ptr(sims), faiss.swig_ptr(ids)
    heaps.heapify()
    for i in range(0, n, KNN_QUERY_BLOCK):
        queries = x[i : i + KNN_QUERY_BLOCK]
        for j in range(0, n, KNN_DATABASE_BLOCK):
            block = np.ascontiguousarray(queries @ x[j : j + KNN_DATABASE_BLOCK].T)
            heaps.addn(block.shape[1], faiss.swig_ptr(block), j, i, len(block))
    heaps.reorder()  # best first
    # Drop each row's own entry; with exact duplicates it may not come first.
    return _without_self(sims, ids, 0)


def knn_inner_product_ivf(x: np.ndarray, k: int, nlist: int, nprobe: int, seed: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours by inner product, the row itself excluded.

    An inverted file (``IndexIVFFlat``): k-means splits the rows into ``nlist`` cells
    (trained on at most 256 rows per cell, drawn with ``seed``), and each row searches
    the ``nprobe`` cells nearest to it, so a search costs about nprobe/nlist of the exact
    one; ``nprobe == nlist`` is exact. Returns similarities (N, k) float32 and indices
    (N, k) int64, best first; a row that found fewer than k others gets index -1 and
    similarity -inf in the missing places. Memory: the index holds a copy of x (N·D
    float32), plus one block of results. Uses every GPU where faiss has one.
    """
    x = as_rows(x)
    n, d = x.shape
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    if not 1 <= nprobe <= nlist <= n:
        raise ValueError(f"need 1 <= nprobe ({nprobe}) <= nlist ({nlist}) <= rows ({n})")
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # the training sample and the k-means initialisation
    index.cp.min_points_per_centroid = 1  # small pools have few rows per cell: not worth a warning
    index.train(x)
    index = _on_gpus(index)
    index.add(x)
    index.nprobe = nprobe
    sims = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    for i in range(0, n, KNN_QUERY_BLOCK):
        block_sims, block_ids = index.search(x[i : i + KNN_QUERY_BLOCK], k + 1)
        sims[i : i + len(block_ids)], ids[i : i + len(block_ids)] = _without_self(block_sims, block_ids, i)
    return sims, ids


# Candidates per neighbour wanted that the compressed search passes on to exact re-scoring.
PQ_CANDIDATES = 8
# Rows k-means and the product quantiser train on, at most, per inverted-file cell (faiss
# asks for at least 39), and at least enough for the quantiser's 256 centroids.
TRAIN_ROWS_PER_CELL = 64
# Floats of the candidates gathered at once for exact re-scoring: 64 MB.
RESCORE_BLOCK = 1 << 24


def knn_inner_product_ivfpq(x: np.ndarray, k: int, nlist: int, nprobe: int, m: int, seed: int
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours by inner product for pools too big for a float copy, the row itself excluded.

    An inverted file over product-quantised codes (``IndexIVFPQ``): each row is stored as ``m``
    bytes (m sub-vectors of D/m dimensions, 256 centroids each; fewer under 256 rows) rather than D float32s, and
    searches the ``nprobe`` nearest of ``nlist`` cells. The compressed distances only propose
    ``PQ_CANDIDATES`` × (k + 1) candidates per row; their similarities are then computed exactly
    from ``x``, so the ones returned are true inner products and the order among them is exact.
    k-means and the quantiser train on at most ``TRAIN_ROWS_PER_CELL`` rows per cell, drawn with
    ``seed``; rows are added and searched in blocks, so ``x`` may be a memory map. Uses every GPU
    where faiss has one. Returns similarities (N, k) float32 and indices (N, k) int64, best first
    (-1 and -inf where fewer than k were found). Memory: N·(m + 8) bytes of index, plus one block.
    """
    n, d = x.shape
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    index = _ivfpq_index(x, np.arange(n), nlist, nprobe, m, seed, faiss.METRIC_INNER_PRODUCT)
    wanted = min(n, PQ_CANDIDATES * (k + 1))
    sims = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    for i in range(0, n, KNN_QUERY_BLOCK):
        queries = as_rows(x[i : i + KNN_QUERY_BLOCK])
        _, found = index.search(queries, wanted)
        exact = _rescored(queries, x, found)
        order = np.argsort(-exact, axis=1, kind="stable")[:, : k + 1]
        block_sims, block_ids = np.take_along_axis(exact, order, 1), np.take_along_axis(found, order, 1)
        sims[i : i + len(queries)], ids[i : i + len(queries)] = _without_self(block_sims, block_ids, i)
    return sims, ids


def _rescored(queries: np.ndarray, x: np.ndarray, found: np.ndarray, l2: bool = False) -> np.ndarray:
    """Exact inner products (Q, c) float32 of each query with its candidates ``found`` (Q, c) rows
    of ``x``, -inf for -1; with ``l2``, squared L2 distances instead, +inf for -1.

    Memory: the block's distinct candidate rows, plus ``RESCORE_BLOCK`` floats of gathered ones."""
    valid = found >= 0
    missing = np.inf if l2 else -np.inf
    exact = np.full(found.shape, missing, dtype=np.float32)
    rows = np.unique(found[valid])
    if not len(rows):
        return exact
    vectors = as_rows(x[rows])  # each candidate row read once, in order (a memory map reads sequentially)
    at = np.searchsorted(rows, np.where(valid, found, rows[0]))
    step = max(1, RESCORE_BLOCK // (found.shape[1] * x.shape[1]))
    for i in range(0, len(found), step):
        gathered = vectors[at[i : i + step]]
        if l2:
            exact[i : i + step] = ((gathered - queries[i : i + step, None, :]) ** 2).sum(axis=2)
        else:
            exact[i : i + step] = np.einsum("qd,qcd->qc", queries[i : i + step], gathered)
    exact[~valid] = missing
    return exact


def _ivfpq_index(x: np.ndarray, rows: np.ndarray, nlist: int, nprobe: int, m: int, seed: int,
                 metric: int, gpus: bool = True) -> faiss.Index:
    """An ``IndexIVFPQ`` over ``x[rows]`` (ids: positions in ``rows``), trained on a sample drawn
    with ``seed``, filled in blocks, searching ``nprobe`` cells; on the GPUs where there are some
    (unless ``gpus`` is False: faiss's GPU indexes have no range search)."""
    d = x.shape[1]
    if m < 1 or d % m:
        raise ValueError(f"the product quantiser's {m} sub-vectors must divide the {d} dimensions")
    if not 1 <= nprobe <= nlist <= len(rows):
        raise ValueError(f"need 1 <= nprobe ({nprobe}) <= nlist ({nlist}) <= rows ({len(rows)})")
    size = min(len(rows), max(TRAIN_ROWS_PER_CELL * nlist, 39 * 256))
    sample = np.sort(np.random.default_rng(seed).permutation(len(rows))[:size])
    bits = min(8, int(np.log2(len(sample))))  # a quantiser needs a training row per centroid
    quantiser = faiss.IndexFlatIP(d) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFPQ(quantiser, d, nlist, m, bits, metric)
    index.cp.seed = index.pq.cp.seed = seed
    # Small pools have few rows per cell and per code: not worth a warning.
    index.cp.min_points_per_centroid = index.pq.cp.min_points_per_centroid = 1
    index.train(as_rows(x[rows[sample]]))
    index = _on_gpus(index) if gpus else index
    for i in range(0, len(rows), KNN_DATABASE_BLOCK):
        index.add(as_rows(x[rows[i : i + KNN_DATABASE_BLOCK]]))
    index.nprobe = nprobe
    return index


def knn_l2_ivfpq(queries: np.ndarray, database: np.ndarray, k: int, rows: np.ndarray | None = None,
                 nlist: int = 0, nprobe: int = 16, m: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``knn_l2`` through an IVF-PQ index of the database rows searched: approximate neighbours,
    exact squared distances (their candidates re-scored from ``database``, as in
    ``knn_inner_product_ivfpq``). nlist 0 = 4·√M cells, m 0 = D/4 bytes an item. Returns
    distances (Q, k) float32 and positions (Q, k) int64 in ``rows``, nearest first, ties to the
    lower position (+inf and -1 where fewer than k were found). Memory: M·(m + 8) bytes of index.
    """
    queries, searched = _l2_inputs(queries, database, k, rows)
    nlist, m = ivf_shape(len(searched), database.shape[1], nlist, m)
    index = _ivfpq_index(database, searched, nlist, min(nprobe, nlist), m, seed, faiss.METRIC_L2)
    _, found = index.search(queries, min(len(searched), PQ_CANDIDATES * k))
    exact = _rescored(queries, _Positions(database, searched), found, l2=True)
    order = _order(exact, np.where(found >= 0, found, np.iinfo(np.int64).max))[:, :k]
    return np.take_along_axis(exact, order, 1), np.take_along_axis(found, order, 1)


class CompressedInnerProducts:
    """An IVF-PQ index of unit rows ``x`` (N, D) that answers with exact inner products.

    Built once and asked twice by ProbCover (a purity sample's neighbours, then the δ-ball
    graph). The compressed codes only propose candidates; each is re-scored from ``x``, which
    may be a memory map. Memory: N·(m + 8) bytes of index. nlist 0 = 4·√N cells, m 0 = D/4 bytes.
    """

    def __init__(self, x: np.ndarray, nlist: int = 0, nprobe: int = 16, m: int = 0, seed: int = 0) -> None:
        nlist, m = ivf_shape(len(x), x.shape[1], nlist, m)
        self.x = x
        self.index = _ivfpq_index(x, np.arange(len(x)), nlist, min(nprobe, nlist), m, seed,
                                  faiss.METRIC_INNER_PRODUCT, gpus=False)
        self._slack: float | None = None

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k rows of highest inner product with each query among ``PQ_CANDIDATES`` × k proposed:
        similarities (Q, k) float32 and rows (Q, k) int64, best first (-inf and -1 where fewer)."""
        queries = as_rows(queries)
        _, found = self.index.search(queries, min(len(self.x), PQ_CANDIDATES * k))
        exact = _rescored(queries, self.x, found)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(found, order, 1)

    def pairs_above(self, threshold: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every pair (i, j) with ⟨x_i, x_j⟩ > ``threshold`` exactly, in blocks of query rows.

        faiss's range search on the codes, widened by the largest code error ‖x − decode(code)‖
        (for a unit query the compressed inner product is off by at most that), so inside the
        probed cells no pair is missed; the candidates are then re-scored and cut at
        ``threshold``. Only pairs whose other row sits in an unprobed cell can be lost.
        """
        n = len(self.x)
        widened = threshold - self._largest_code_error()
        for start in range(0, n, KNN_QUERY_BLOCK):
            queries = as_rows(self.x[start : start + KNN_QUERY_BLOCK])
            limits, _, found = self.index.range_search(queries, widened)
            rows = np.repeat(np.arange(len(queries)), np.diff(limits.astype(np.int64)))
            keep = _rescored_pairs(queries, self.x, rows, found) > threshold
            yield rows[keep] + start, found[keep].astype(np.int64)

    def _largest_code_error(self) -> float:
        if self._slack is None:
            error = 0.0
            for start in range(0, len(self.x), KNN_DATABASE_BLOCK):
                block = as_rows(self.x[start : start + KNN_DATABASE_BLOCK])
                decoded = self.index.sa_decode(self.index.sa_encode(block))
                error = max(error, float(np.sqrt(((block - decoded) ** 2).sum(axis=1)).max()))
            self._slack = error
        return self._slack


def _rescored_pairs(queries: np.ndarray, x: np.ndarray, rows: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Exact ⟨queries[rows[p]], x[found[p]]⟩ for every pair p, (P,) float32; ``RESCORE_BLOCK`` floats at a time."""
    exact = np.empty(len(found), dtype=np.float32)
    if not len(found):
        return exact
    distinct = np.unique(found)
    vectors = as_rows(x[distinct])  # each candidate row read once, in order
    at = np.searchsorted(distinct, found)
    step = max(1, RESCORE_BLOCK // x.shape[1])
    for i in range(0, len(found), step):
        exact[i : i + step] = np.einsum("pd,pd->p", queries[rows[i : i + step]], vectors[at[i : i + step]])
    return exact


class _Positions:
    """``database`` seen through ``rows``: item i is database row rows[i] (for re-scoring by position)."""

    def __init__(self, database: np.ndarray, rows: np.ndarray) -> None:
        self.database, self.rows, self.shape = database, rows, (len(rows), database.shape[1])

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        return self.database[self.rows[positions]]


def _on_gpus(index: faiss.Index) -> faiss.Index:
    """``index`` moved to every GPU when faiss was built with GPU support and sees one (faiss-gpu); else itself."""
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return faiss.index_cpu_to_all_gpus(index) if gpus > 0 else index


def _without_self(sims: np.ndarray, ids: np.ndarray, first_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k + 1 results less the row itself (or, when absent, its weakest result)."""
    own = ids == np.arange(first_row, first_row + len(ids))[:, None]
    own[~own.any(axis=1), -1] = True
    keep = ~own
    k = ids.shape[1] - 1
    return sims[keep].reshape(len(ids), k), ids[keep].reshape(len(ids), k)


def kmeans(x: np.ndarray, k: int, niter: int, seed: int, nredo: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """faiss k-means: centroids (k, D) float32 and each row's cluster (N,) int64.

    faiss re-seeds an empty cluster by splitting a large one, so every cluster is used;
    ``nredo`` runs keep the one with the lowest objective.
    """
    x = as_rows(x)
    model = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, nredo=nredo, verbose=False, spherical=False)
    model.train(x)
    _, assignment = model.index.search(x, 1)
    return model.centroids.copy(), assignment[:, 0].astype(np.int64)


def pca_whiten(x: np.ndarray, dim: int) -> np.ndarray:
    """Project rows onto their top ``dim`` principal components with whitening (N, dim)."""
    x = as_rows(x)
    if not 1 <= dim <= min(x.shape):
        raise ValueError(f"PCA to {dim} dimensions needs at least {dim} rows and {dim} features, got {x.shape}")
    pca = faiss.PCAMatrix(x.shape[1], dim, -0.5)  # eigen_power -0.5 = whitening
    pca.train(x)
    return pca.apply(x)


def pca_matrix(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss's PCA of rows ``x`` (N, F) to ``dim`` components, as (A (dim, F), b (dim,)) float32:
    the projection of a row r is A·r + b (the centring folded into b)."""
    x = as_rows(x)
    if not 1 <= dim <= min(x.shape):
        raise ValueError(f"PCA to {dim} dimensions needs at least {dim} rows and {dim} features, got {x.shape}")
    pca = faiss.PCAMatrix(x.shape[1], dim)
    pca.train(x)
    a = faiss.vector_to_array(pca.A).reshape(dim, x.shape[1])
    return a.astype(np.float32), faiss.vector_to_array(pca.b).astype(np.float32)


def kmeans_each(sets: list[np.ndarray], ks: list[int], niter: int, seed: int) -> list[np.ndarray]:
    """faiss k-means of many small sets of rows: set i (n_i, D) into ks[i] <= n_i clusters.

    Returns the centroids of each set, (ks[i], D) float32. A set of a few dozen rows
    costs faiss more in OpenMP start-up than in arithmetic (docs/benchmarks.md, "Small
    k-means and one thread"), so the sets run on one thread, which is then given back. One cluster is the mean, which is what k-means converges to at once.
    """
    if len(sets) != len(ks):
        raise ValueError(f"{len(sets)} sets but {len(ks)} cluster counts")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return [_small_kmeans(as_rows(x), int(k), niter, seed) for x, k in zip(sets, ks)]
    finally:
        faiss.omp_set_num_threads(threads)


def _small_kmeans(x: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    if not 1 <= k <= len(x):
        raise ValueError(f"cannot cluster {len(x)} rows into {k} clusters")
    if k == 1:
        return x.mean(axis=0, keepdims=True)
    # min_points_per_centroid = 1: a few rows per cluster is the point here, not a warning.
    model = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1)
    model.train(x)
    return model.centroids.copy()


# Database rows per faiss.knn call in knn_l2: with D = 512, a 128 MB float32 block.
KNN_L2_BLOCK = 65536


def knn_l2(queries: np.ndarray, database: np.ndarray, k: int,
           rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database rows of every query row by squared L2 distance.

    queries (Q, D); database (N, D), any array that slices (a memmap is read block by
    block); ``rows`` (M,) the database rows to search, default all. Returns distances
    (Q, k) float32 and positions (Q, k) int64 in ``rows`` (or the database), nearest
    first, ties to the lower position. Memory: O(KNN_L2_BLOCK · D + Q · k).
    """
    queries, searched = _l2_inputs(queries, database, k, rows)
    best = np.full((len(queries), 0), np.inf, dtype=np.float32)
    where = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(searched), KNN_L2_BLOCK):
        block = as_rows(database[searched[start : start + KNN_L2_BLOCK]])
        found, at = faiss.knn(queries, block, min(k, len(block)), metric=faiss.METRIC_L2)
        best, where = np.hstack([best, found]), np.hstack([where, at.astype(np.int64) + start])
        # Sort by (distance, position): blocks come in position order, so ties keep the lower one.
        order = _order(best, where)[:, :k]
        best, where = np.take_along_axis(best, order, 1), np.take_along_axis(where, order, 1)
    return best, where


def _l2_inputs(queries: np.ndarray, database: np.ndarray, k: int, rows: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``knn_l2``'s checked inputs: the queries as float32 rows and the database rows searched."""
    queries = as_rows(queries)
    searched = np.arange(len(database)) if rows is None else np.asarray(rows, dtype=np.int64)
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dimensions, the database {database.shape[1]}")
    if not 1 <= k <= len(searched):
        raise ValueError(f"k must be in [1, {len(searched)}], got {k}")
    return queries, searched


def ivf_shape(rows: int, dim: int, nlist: int = 0, m: int = 0) -> tuple[int, int]:
    """An inverted file's cells and a product quantiser's bytes an item, 0 meaning the
    defaults: 4·√rows cells (at most one per row) and D/4 bytes."""
    return min(nlist or max(1, round(4 * np.sqrt(rows))), rows), m or max(1, dim // 4)


def _order(distances: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per row, the column order by distance, then position: (Q, m) int64."""
    by_position = np.argsort(positions, axis=1, kind="stable")
    by_distance = np.argsort(np.take_along_axis(distances, by_position, 1), axis=1, kind="stable")
    return np.take_along_axis(by_position, by_distance, 1)
