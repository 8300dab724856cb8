"""Benchmark: approximate kNN (faiss inverted file, flat or product-quantised) against exact kNN.

    python benchmarks/knn_search.py [--n 60000] [--dim 128] [--k 50] [--nprobe 8 16 32]
                                    [--methods ivf ivfpq] [--pq-m 32] [--propagate]

The data are label_propagation.py's (10 classes, each 4 Gaussian sub-clusters, noisy).
For each search, one run in one process: wall time of the kNN, and recall@k against the
exact neighbours of a sample of ``--sample`` rows (exact search of just those rows, so the
recall is measured at any N, even where exact search of every row would take hours).
With ``--propagate``, label propagation runs with each search and the share of items
whose pseudo-label agrees with the exact graph's is printed, with each one's accuracy.
"bytes/item" is what the index holds per row: D float32s (ivf) or pq_m codes (ivfpq), plus an id.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from label_propagation import make_data

from alcycle import faiss_ops
from alcycle.propagation import Search, propagate


def sample_recall(x: np.ndarray, ids: np.ndarray, rows: np.ndarray, k: int) -> float:
    """Mean share of each sampled row's true k nearest neighbours (self excluded) in ``ids``."""
    sims = x[rows] @ x.T
    sims[np.arange(len(rows)), rows] = -np.inf
    true = np.argpartition(-sims, k, axis=1)[:, :k]
    return float(np.mean([len(set(t) & set(ids[r])) / k for t, r in zip(true, rows)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--methods", nargs="+", default=["ivf", "ivfpq"], choices=["ivf", "ivfpq"])
    parser.add_argument("--pq-m", type=int, default=0, help="ivfpq bytes per item (0 = D/4, as shipped)")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--no-exact", action="store_true", help="skip exact search of every row (huge N)")
    parser.add_argument("--propagate", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    features, truth, labels = make_data(rng, args.n, args.dim, classes=10, per_class=10)
    x = faiss_ops.l2_normalise(features)
    rows = rng.choice(args.n, size=min(args.sample, args.n), replace=False)
    nlist = round(4 * np.sqrt(args.n))
    pq_m = args.pq_m or args.dim // 4
    searches = ([] if args.no_exact else [Search("exact")]) + [
        Search(method, nlist, p, pq_m=pq_m) for method in args.methods for p in args.nprobe]
    print(f"N = {args.n:,} × {args.dim}, k = {args.k}, nlist = {nlist}, recall on {len(rows):,} sampled rows")
    print(f"{'search':>14} {'kNN s':>8} {'recall@k':>9} {'bytes/item':>10}" +
          ("  agree  accuracy" if args.propagate else ""))
    reference = None
    for search in searches:
        start = time.perf_counter()
        _, ids = search.neighbours(x, args.k)
        seconds = time.perf_counter() - start
        size = {"exact": 4 * args.dim, "ivf": 4 * args.dim + 8, "ivfpq": pq_m + 8}[search.method]
        line = f"{search.method + ('' if search.method == 'exact' else f'/{search.nprobe}'):>14} " \
               f"{seconds:8.1f} {sample_recall(x, ids, rows, args.k):9.4f} {size:10d}"
        if args.propagate:
            pseudo = propagate(features, labels, 10, k=args.k, search=search).pseudo_labels
            reference = pseudo if reference is None else reference
            unlabeled = labels < 0
            agree = np.mean(pseudo[unlabeled] == reference[unlabeled])
            line += f"  {agree:6.4f}  {np.mean(pseudo[unlabeled] == truth[unlabeled]):8.4f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
