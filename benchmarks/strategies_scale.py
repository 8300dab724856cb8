"""Benchmark: every query strategy that reads the model's outputs, at pool sizes up to 10^6.

    python benchmarks/strategies_scale.py [--n 100000 1000000] [--dim 512] [--classes 10]
                                          [--budget 1000] [--labeled 1000] [--mc 20]

For each N, seeded synthetic inputs are written once as .npy files in a scratch folder
(probs (N, C) from random logits, embeddings (N, D) from 20 Gaussian clusters,
mc_probs (N, T, C), predicted_loss (N,)), then each strategy runs in a fresh process that
memory-maps what it needs and selects ``--budget`` items with ``--labeled`` already
labeled. Printed per strategy: wall time of ``select`` alone, the process's peak RSS
(VmHWM), and its growth during ``select`` (inputs are memory-mapped; pages a strategy
reads count towards RSS, so both are upper bounds on what it allocates).
The strategies that train a network at selection (vaal, sraal) or run a transformer over
the images (geal) are not timed here: at these sizes they run on ``select.candidates``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Strategies whose inputs are arrays the extract stage writes; the rest need images or a model.
ARRAY_STRATEGIES = ("random", "entropy", "margin", "least_confidence", "bald", "learning_loss",
                    "badge", "coreset", "typiclust")
CHUNK = 100_000


def write_inputs(folder: Path, n: int, dim: int, classes: int, mc: int, seed: int = 0) -> None:
    """The synthetic inputs as .npy files, written in chunks (O(chunk) memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim)).astype(np.float32)
    arrays = {
        "probs": np.lib.format.open_memmap(folder / "probs.npy", "w+", np.float32, (n, classes)),
        "embeddings": np.lib.format.open_memmap(folder / "embeddings.npy", "w+", np.float32, (n, dim)),
        "mc_probs": np.lib.format.open_memmap(folder / "mc_probs.npy", "w+", np.float32, (n, mc, classes)),
        "predicted_loss": np.lib.format.open_memmap(folder / "predicted_loss.npy", "w+", np.float32, (n,)),
    }
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        logits = rng.normal(0, 2, size=(m, classes)).astype(np.float32)
        arrays["probs"][start:start + m] = softmax(logits)
        arrays["embeddings"][start:start + m] = centres[rng.integers(0, 20, m)] + rng.normal(size=(m, dim))
        noisy = logits[:, None, :] + rng.normal(0, 1, size=(m, mc, classes)).astype(np.float32)
        arrays["mc_probs"][start:start + m] = softmax(noisy)
        arrays["predicted_loss"][start:start + m] = rng.gamma(2.0, size=m)
    for array in arrays.values():
        array.flush()


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def run_one(folder: Path, strategy: str, budget: int, labeled: int) -> dict:
    """In this process: load what ``strategy`` needs (memory-mapped), select, report."""
    from alcycle.strategies import SelectionContext, needs, select

    inputs = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in sorted(needs(strategy))}
    n = len(np.load(folder / "probs.npy", mmap_mode="r"))
    rng = np.random.default_rng(1)
    is_labeled = np.zeros(n, dtype=bool)
    is_labeled[rng.choice(n, size=labeled, replace=False)] = True
    context = SelectionContext(ids=np.arange(n).astype(str), labeled=is_labeled, **inputs)
    before = memory_kb("VmHWM")
    start = time.perf_counter()
    selection = select(context, strategy, budget, np.random.default_rng(2))
    seconds = time.perf_counter() - start
    peak = memory_kb("VmHWM")
    assert len(selection.rows) == budget and not is_labeled[selection.rows].any()
    return {"strategy": strategy, "seconds": seconds, "peak_mb": peak / 1024, "growth_mb": (peak - before) / 1024}


def memory_kb(field: str) -> int:
    """This process's ``VmHWM`` (peak RSS) or ``VmRSS`` in kB from /proc. Unlike getrusage's
    ru_maxrss, VmHWM starts afresh at exec, so a child never inherits its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--mc", type=int, default=20)
    parser.add_argument("--strategies", nargs="+", default=list(ARRAY_STRATEGIES))
    parser.add_argument("--one", nargs=2, metavar=("FOLDER", "STRATEGY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), args.one[1], args.budget, args.labeled)))
        return
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="alcycle-strategies-") as scratch:
            folder = Path(scratch)
            start = time.perf_counter()
            write_inputs(folder, n, args.dim, args.classes, args.mc)
            print(f"N = {n:,}: D = {args.dim}, C = {args.classes}, T = {args.mc}, budget {args.budget}, "
                  f"{args.labeled} labeled (inputs written in {time.perf_counter() - start:.0f} s)", flush=True)
            print(f"{'strategy':>18} {'seconds':>9} {'peak RSS MB':>12} {'growth MB':>10}", flush=True)
            for strategy in args.strategies:
                done = subprocess.run([sys.executable, __file__, "--one", str(folder), strategy,
                                       "--budget", str(args.budget), "--labeled", str(args.labeled)],
                                      capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.splitlines()[-1])
                print(f"{strategy:>18} {row['seconds']:9.2f} {row['peak_mb']:12.0f} {row['growth_mb']:10.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
