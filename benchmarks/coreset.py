"""Benchmark: exact k-center greedy against the numpy floor and a per-pick full-distance loop.

    python benchmarks/coreset.py [--n 1000000] [--dim 512] [--budget 1000] [--labeled 1000]
                                 [--repeats 2] [--sub-n 20000] [--sub-budget 100]

All on one run's seeded N(0, 1) float32 features (1M × 512 = 2 GB), the labeled rows
as the initial centres:
(a) alcycle's ``k_center_greedy`` (progress bar off);
(b) the floor: a plain numpy loop written here, per pick one GEMV over the features
    and an in-place minimum, after the same start-up distances to the labeled rows;
(c) the style of common AL libraries: every pick recomputes the distances from all
    points to ALL chosen centres (``pairwise_distances(X, centres).min(axis=1)``, in
    numpy). Its work grows with the number of centres, so it runs on a subsample and
    is scaled up by its cost model (printed with the result).
(a) and (b) alternate ``--repeats`` times; the best of each is kept (the machine is noisy).
Phases: "start-up" is the blocked distances to the labeled rows; "picks" is the rest
(centring, row norms and the greedy loop). (a) and (b) both centre the features with
``coreset.centred``, so their float32 arithmetic and picks agree.
Goals: (a) / (b) <= 1.2, identical picks, memory beyond the features one centred
float32 copy of them plus O(N).
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_info

coreset = importlib.import_module("alcycle.strategies.coreset")  # the package re-exports a function of that name

FLOOR_ROWS = 16_384  # rows per block of the floor's start-up distances


def numpy_floor(x: np.ndarray, labeled: np.ndarray, budget: int, first: int) -> tuple[np.ndarray, dict]:
    """The plain loop: picks (budget,) int64 and the seconds of its two phases."""
    start = time.perf_counter()
    x = coreset.centred(x)
    sq = np.einsum("ij,ij->i", x, x)
    mark = time.perf_counter()
    min_dist = np.full(len(x), np.inf, dtype=np.float32)
    if len(labeled):
        c, c_sq = x[labeled], sq[labeled]
        block = np.empty((FLOOR_ROWS, len(labeled)), dtype=np.float32)
        for r in range(0, len(x), FLOOR_ROWS):
            d = np.matmul(x[r : r + FLOOR_ROWS], c.T, out=block[: len(x[r : r + FLOOR_ROWS])])
            d *= -2.0
            d += sq[r : r + FLOOR_ROWS, None]
            d += c_sq
            np.minimum(min_dist[r : r + FLOOR_ROWS], d.min(axis=1), out=min_dist[r : r + FLOOR_ROWS])
        min_dist[labeled] = -np.inf
    start_up = time.perf_counter() - mark
    d = np.empty_like(min_dist)
    picks = np.empty(budget, dtype=np.int64)
    for step in range(budget):
        p = first if step == 0 and not len(labeled) else int(np.argmax(min_dist))
        picks[step] = p
        np.matmul(x, x[p], out=d)
        d *= -2.0
        d += sq
        d += sq[p]
        np.minimum(min_dist, d, out=min_dist)
        min_dist[p] = -np.inf
    return picks, {"start-up": start_up, "picks": time.perf_counter() - start - start_up}


def alcycle_run(x: np.ndarray, labeled: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, dict]:
    """alcycle's k_center_greedy as one call; its start-up timed by spying on the helper it calls."""
    original, spent = coreset._squared_distances_to, []

    def timed(*args):
        mark = time.perf_counter()
        result = original(*args)
        spent.append(time.perf_counter() - mark)
        return result

    coreset._squared_distances_to = timed
    try:
        start = time.perf_counter()
        picks, _ = coreset.k_center_greedy(x, labeled, budget, np.random.default_rng(seed))
        total = time.perf_counter() - start
    finally:
        coreset._squared_distances_to = original
    return picks, {"start-up": spent[0], "picks": total - spent[0]}


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances, computed as sklearn's euclidean_distances does."""
    d = (a * a).sum(axis=1)[:, None] - 2.0 * (a @ b.T) + (b * b).sum(axis=1)[None, :]
    return np.sqrt(np.maximum(d, 0.0, out=d), out=d)


def full_distance_per_pick(x: np.ndarray, labeled: np.ndarray, budget: int, first: int) -> np.ndarray:
    """Each pick measures every point against every chosen centre: O(N·D·(K + t)) at pick t."""
    chosen = labeled.tolist()
    for _ in range(budget):
        if not chosen:
            chosen.append(first)
            continue
        nearest = pairwise_distances(x, x[chosen]).min(axis=1)
        nearest[chosen] = -np.inf
        chosen.append(int(np.argmax(nearest)))
    return np.array(chosen[len(labeled) :], dtype=np.int64)


def centre_visits(labeled: int, budget: int) -> int:
    """Σ over picks t < budget of (labeled + t): the distances per point that (c) computes."""
    return budget * labeled + budget * (budget - 1) // 2


def measure_memory(x: np.ndarray, labeled: np.ndarray, budget: int, seed: int) -> float:
    """Peak MiB that numpy allocates inside k_center_greedy (tracemalloc; features excluded)."""
    tracemalloc.start()
    try:
        coreset.k_center_greedy(x, labeled, budget, np.random.default_rng(seed))
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def alternate(x: np.ndarray, labeled: np.ndarray, args) -> tuple[dict, dict, float]:
    """(a), (b), (a), (b), ...: phase times per run, each one's picks, and (a)'s peak-RSS growth in MiB."""
    first = int(np.random.default_rng(args.seed).integers(len(x)))  # (a)'s first pick when nothing is labeled
    runs: dict[str, list[dict]] = {"(a) alcycle": [], "(b) numpy floor": []}
    picks: dict[str, np.ndarray] = {}
    rss_growth = 0.0
    for repeat in range(args.repeats):
        for name in runs:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            if name.startswith("(a)"):
                picks[name], times = alcycle_run(x, labeled, args.budget, args.seed)
                if repeat == 0:  # (a) runs first, so the high-water mark so far is the features
                    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            else:
                picks[name], times = numpy_floor(x, labeled, args.budget, first)
            runs[name].append(times)
            print(f"  run {repeat + 1} {name:16s} start-up {times['start-up']:7.2f} s  picks {times['picks']:7.2f} s  "
                  f"total {sum(times.values()):7.2f} s", flush=True)
    return runs, picks, rss_growth


def report_floor(runs: dict, picks: dict, rss_growth: float, tracemalloc_mb: float, x: np.ndarray, args) -> float:
    best = {name: min(runs[name], key=lambda t: sum(t.values())) for name in runs}
    print(f"\nbest of {args.repeats} (s)      start-up     picks     total   per pick")
    for name, t in best.items():
        print(f"{name:20s}{t['start-up']:9.2f}{t['picks']:10.2f}{sum(t.values()):10.2f}"
              f"{1000 * t['picks'] / args.budget:9.1f} ms")
    a, b = best["(a) alcycle"], best["(b) numpy floor"]
    ratio = sum(a.values()) / sum(b.values())
    print(f"{'ratio (a)/(b)':20s}{a['start-up'] / b['start-up']:9.2f}{a['picks'] / b['picks']:10.2f}{ratio:10.2f}"
          f"   (goal <= 1.2)")
    same = np.array_equal(picks["(a) alcycle"], picks["(b) numpy floor"])
    print(f"identical picks (a) vs (b), all {args.budget}: {same}")
    print(f"(a) memory beyond the features ({x.nbytes / 2**20:.0f} MiB): peak RSS growth {rss_growth:.0f} MiB "
          f"(getrusage, first run); numpy peak {tracemalloc_mb:.0f} MiB (tracemalloc, {min(args.budget, 20)} picks)")
    if not same:
        raise SystemExit("(a) and (b) picked differently")
    return sum(b.values())


def report_library_style(x: np.ndarray, args, floor_s: float) -> None:
    """(c) on the first sub_n rows, checked against alcycle there, then scaled to the full problem."""
    rng = np.random.default_rng(args.seed + 1)
    n, sub_labeled = min(args.sub_n, len(x)), min(args.labeled, args.sub_n // 2)
    sub, labeled = x[:n], np.sort(rng.choice(n, size=sub_labeled, replace=False))
    first = int(np.random.default_rng(args.seed).integers(n))
    start = time.perf_counter()
    theirs = full_distance_per_pick(sub, labeled, args.sub_budget, first)
    spent = time.perf_counter() - start
    ours, _ = coreset.k_center_greedy(sub, labeled, args.sub_budget, np.random.default_rng(args.seed))
    scale = (len(x) / n) * centre_visits(args.labeled, args.budget) / centre_visits(sub_labeled, args.sub_budget)
    print(f"\n(c) per-pick full distances, subsample n = {n}, {sub_labeled} labeled, {args.sub_budget} picks: "
          f"{spent:.2f} s; same picks as alcycle there: {np.array_equal(ours, theirs)}")
    print("    cost model: time ∝ N · Σ_(t<b) (K + t) = N · (b·K + b(b-1)/2)  (D fixed)")
    print(f"    scaled: {spent:.2f} s × ({len(x)}/{n}) × {centre_visits(args.labeled, args.budget)}"
          f"/{centre_visits(sub_labeled, args.sub_budget)} = {spent * scale:.0f} s "
          f"= {spent * scale / 3600:.1f} h  ({spent * scale / floor_s:.0f}× the floor)")
    widest = len(x) * (args.labeled + args.budget - 1) * 4 / 2**30
    print(f"    its last pick also needs an N × (K + b - 1) float32 distance matrix: {widest:.1f} GiB per temporary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sub-n", type=int, default=20_000)
    parser.add_argument("--sub-budget", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = np.empty((args.n, args.dim), dtype=np.float32)
    rng.standard_normal(out=x, dtype=np.float32)  # in place: no float64 temporary of 2× the features
    labeled = np.sort(rng.choice(args.n, size=args.labeled, replace=False))
    pools = ", ".join(f"{p['prefix']} {p['num_threads']} threads" for p in threadpool_info())
    print(f"k-center greedy: N = {args.n}, D = {args.dim} float32 ({x.nbytes / 2**30:.2f} GiB), "
          f"K = {args.labeled} labeled, b = {args.budget} picks; {os.cpu_count()} CPU cores, {pools}")
    runs, picks, rss_growth = alternate(x, labeled, args)
    tracemalloc_mb = measure_memory(x, labeled, min(args.budget, 20), args.seed)
    floor_s = report_floor(runs, picks, rss_growth, tracemalloc_mb, x, args)
    report_library_style(x, args, floor_s)


if __name__ == "__main__":
    main()
