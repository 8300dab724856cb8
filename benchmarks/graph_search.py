"""Benchmark: ProbCover's δ-ball graph and TypiClust's typicality, exact against IVF-PQ (search: ivfpq).

    python benchmarks/graph_search.py [--n 60000] [--dim 128] [--nprobe 16] [--alpha 0.95]

The data are label_propagation.py's (10 classes, each 4 Gaussian sub-clusters, noisy),
L2-normalised as ProbCover sees them. One process, side by side:

- ProbCover: the purity radius δ (k-means into 10, alpha), then the δ-ball graph, each by
  exact blocked inner products and through one ``CompressedInnerProducts`` index: wall time,
  δ, edges, and the share of the exact graph's edges the compressed one holds (it never holds
  one that is not there: every candidate is re-scored). Then the first 100 greedy picks of each
  graph and how many of the exact graph's items the approximate picks cover.
- TypiClust: typicality over the whole set taken as one big cluster (the case at 10⁷ with few
  clusters), exact against approximate (20 neighbours): wall time, Spearman rank correlation,
  and whether the most typical item is the same.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from label_propagation import make_data
from scipy import stats

from alcycle import faiss_ops
from alcycle.strategies import probcover, typiclust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=0.95)
    parser.add_argument("--budget", type=int, default=100)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    features, _, _ = make_data(rng, args.n, args.dim, classes=10, per_class=10)
    x = faiss_ops.l2_normalise(features)
    print(f"N = {args.n:,} × {args.dim}, alpha = {args.alpha}, nprobe = {args.nprobe}")

    start = time.perf_counter()
    index = faiss_ops.CompressedInnerProducts(x, nprobe=args.nprobe, seed=0)
    built = time.perf_counter() - start
    graphs, deltas = {}, {}
    for name, searched in (("exact", None), ("ivfpq", index)):
        start = time.perf_counter()
        deltas[name] = probcover.purity_delta(x, 10, args.alpha, seed=0, rng=np.random.default_rng(1), index=searched)
        purity = time.perf_counter() - start
        start = time.perf_counter()
        graphs[name] = probcover.ball_graph(x, deltas[name], searched)
        graph = time.perf_counter() - start
        extra = f" (+ {built:.1f} s index)" if searched is not None else ""
        print(f"probcover {name:>5}: δ {deltas[name]:.4f} in {purity:.1f} s, graph {graphs[name].nnz:,} edges "
              f"in {graph:.1f} s{extra}")
    # The approximate graph at the exact δ: which of the exact edges it holds.
    same_delta = probcover.ball_graph(x, deltas["exact"], index)
    held = same_delta.multiply(graphs["exact"]).nnz / graphs["exact"].nnz
    print(f"probcover ivfpq at the exact δ: {same_delta.nnz:,} edges, {held:.3f} of the exact graph's, "
          f"{same_delta.nnz - same_delta.multiply(graphs['exact']).nnz} not in it")
    unlabeled = np.zeros(args.n, dtype=bool)
    exact_picks = probcover.greedy_cover(graphs["exact"], unlabeled, args.budget, np.random.default_rng(0)).rows
    approx_picks = probcover.greedy_cover(same_delta, unlabeled, args.budget, np.random.default_rng(0)).rows
    covered = lambda picks: graphs["exact"][picks].max(axis=0).nnz / args.n  # noqa: E731
    print(f"probcover {args.budget} picks: cover {covered(exact_picks):.4f} (exact graph) vs "
          f"{covered(approx_picks):.4f} (ivfpq graph), measured on the exact graph; "
          f"{len(set(exact_picks) & set(approx_picks))} picks in common")

    start = time.perf_counter()
    exact = typiclust.typicality(x)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    approximate = typiclust.typicality(x, search="ivfpq", seed=0)
    approximate_s = time.perf_counter() - start
    rho = stats.spearmanr(exact, approximate).statistic
    print(f"typiclust, one cluster of {args.n:,}: exact {exact_s:.1f} s, ivfpq {approximate_s:.1f} s "
          f"(ratio {approximate_s / exact_s:.2f}); Spearman {rho:.4f}; most typical item "
          f"{'the same' if np.argmax(exact) == np.argmax(approximate) else 'different'} "
          f"(exact's is {np.argsort(np.argsort(-approximate))[np.argmax(exact)] + 1}. in the approximate order)")


if __name__ == "__main__":
    main()
