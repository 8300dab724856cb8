"""Benchmark: one full cycle, a no-op `dvc repro`, and accuracy after 5 random cycles.

Runs the real pipeline on the shipped MNIST-5k set (4,000 pool, 1,000 test) in a
temporary project:

    python benchmarks/cycle.py [--seeds 0 1 2] [--cycles 5] [--budget 20]

Goals (issue 2): a full cycle <= 60 s on a 2-core machine (prepare excluded, as it
runs once), a no-op `dvc repro` <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def sh(cwd: Path, *cmd: str) -> float:
    """Run a command, fail loudly, return its wall time in seconds."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def run_seed(seed: int, cycles: int, budget: int, workdir: Path) -> dict:
    project = workdir / f"seed-{seed}"
    project.mkdir()
    # alcycle init commits what it writes: the project gets a git identity of its own.
    sh(project, "git", "init", "--quiet")
    sh(project, "git", "config", "user.email", "bench@alcycle.invalid")
    sh(project, "git", "config", "user.name", "alcycle benchmark")
    sh(workdir, str(BIN / "alcycle"), "init", str(project), "--mnist")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seed"] = seed
    params["select"].update(strategy="random", budget=budget)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = sh(project, str(BIN / "dvc"), "repro")  # prepare + cycle 0
    cycle_times, noop_times, curve = [], [], []
    for _ in range(cycles):
        sh(project, str(BIN / "alcycle"), "oracle")
        cycle_times.append(sh(project, str(BIN / "dvc"), "repro"))
        noop_times.append(sh(project, str(BIN / "dvc"), "repro"))
        metrics = json.loads((project / "metrics/evaluate.json").read_text())
        curve.append((metrics["n_labels"], metrics["test_accuracy"]))
    return {"seed": seed, "first_repro_s": first, "cycle_s": cycle_times, "noop_s": noop_times, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--budget", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alcycle-bench-") as tmp:
        results = [run_seed(seed, args.cycles, args.budget, Path(tmp)) for seed in args.seeds]
    print(f"MNIST-5k (4,000 pool / 1,000 test), random selection, {args.budget} labels per cycle, "
          f"{os.cpu_count()} CPU cores")
    for r in results:
        cycles = ", ".join(f"{t:.1f}" for t in r["cycle_s"])
        noops = ", ".join(f"{t:.2f}" for t in r["noop_s"])
        curve = "  ".join(f"{n}:{acc:.4f}" for n, acc in r["curve"])
        print(f"seed {r['seed']}: prepare + cycle 0 {r['first_repro_s']:.1f} s")
        print(f"  full cycle (oracle batch -> dvc repro) s: {cycles}   (median {sorted(r['cycle_s'])[len(r['cycle_s']) // 2]:.1f})")
        print(f"  no-op dvc repro s: {noops}   (max {max(r['noop_s']):.2f})")
        print(f"  test accuracy by labels: {curve}")
    final = [r["curve"][-1][1] for r in results]
    print(f"test accuracy after {args.cycles} cycles of {args.budget} random labels: "
          + ", ".join(f"{a:.4f}" for a in final) + f" (mean {sum(final) / len(final):.4f})")


if __name__ == "__main__":
    main()
