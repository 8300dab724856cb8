"""Benchmark: what a stage costs before it does any work, and a no-op `dvc repro`.

In a temporary project on a slice of the shipped MNIST set (cycle 0 and one oracle
cycle run first), times, each `--repeats` times:

- `dvc repro` with nothing new (no stage runs);
- `alcycle label-import` (reads params.yaml, rebuilds the pool from the batches);
- reading params.yaml in a fresh interpreter (what every stage does first).

    python benchmarks/stage_overhead.py [--subsample 600] [--repeats 5] [--baseline CHECKOUT]

`--baseline` names another alcycle checkout with its own `.venv` (an older revision,
say): its `alcycle label-import` runs on a copy of the project, interleaved with this
checkout's, so the ratio is measured side by side. Keys the baseline does not know
are dropped from its copy's params.yaml.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
UNKNOWN_KEY = re.compile(r"unknown key '([\w.]+)'")


def run(cwd: Path, *cmd: str, bin_dir: Path = BIN, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command with ``bin_dir`` first on PATH; its wall time in seconds and the result."""
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start, done


def make_project(folder: Path, subsample: int) -> Path:
    project = folder / "project"
    project.mkdir()
    # alcycle init commits what it writes: the project gets a git identity of its own.
    run(project, "git", "init", "--quiet")
    run(project, "git", "config", "user.email", "bench@alcycle.invalid")
    run(project, "git", "config", "user.name", "alcycle benchmark")
    run(folder, str(BIN / "alcycle"), "init", str(project), "--mnist", "--subsample", str(subsample))
    run(project, str(BIN / "dvc"), "repro")
    run(project, str(BIN / "alcycle"), "oracle")
    run(project, str(BIN / "dvc"), "repro")
    return project


def baseline_copy(project: Path, baseline_bin: Path) -> Path:
    """A copy of the project whose params.yaml the baseline accepts."""
    import yaml

    copy = project.parent / "baseline"
    shutil.copytree(project, copy, symlinks=True)
    for _ in range(20):
        _, done = run(copy, str(baseline_bin / "alcycle"), "label-import", bin_dir=baseline_bin, check=False)
        match = UNKNOWN_KEY.search(done.stderr)
        if done.returncode == 0 or match is None:
            if done.returncode:
                raise SystemExit(f"baseline label-import failed:\n{done.stderr}")
            return copy
        params = yaml.safe_load((copy / "params.yaml").read_text())
        *sections, key = match[1].split(".")
        section = params
        for name in sections:
            section = section[name]
        del section[key]
        (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raise SystemExit("baseline: too many unknown keys")


def line(name: str, times: list[float]) -> str:
    return f"  {name:<34} median {statistics.median(times):6.2f} s   (" + ", ".join(f"{t:.2f}" for t in times) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsample", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another alcycle checkout with its own .venv")
    args = parser.parse_args()
    read_params = [sys.executable, "-c", "from alcycle.params import load_params; load_params('params.yaml')"]
    with tempfile.TemporaryDirectory(prefix="alcycle-overhead-") as tmp:
        project = make_project(Path(tmp), args.subsample)
        baseline_bin = args.baseline.resolve() / ".venv" / "bin" if args.baseline else None
        copy = baseline_copy(project, baseline_bin) if baseline_bin else None
        times: dict[str, list[float]] = {"no-op dvc repro": [], "alcycle label-import": [], "read params.yaml": []}
        if copy:
            times["alcycle label-import (baseline)"] = []
        for _ in range(args.repeats):
            times["no-op dvc repro"].append(run(project, str(BIN / "dvc"), "repro")[0])
            times["alcycle label-import"].append(run(project, str(BIN / "alcycle"), "label-import")[0])
            times["read params.yaml"].append(run(project, *read_params)[0])
            if copy:
                baseline = run(copy, str(baseline_bin / "alcycle"), "label-import", bin_dir=baseline_bin)[0]
                times["alcycle label-import (baseline)"].append(baseline)
    print(f"MNIST subsample {args.subsample}, 2 batches, {args.repeats} repeats, {os.cpu_count()} CPU cores")
    for name, values in times.items():
        print(line(name, values))
    if copy:
        ratio = statistics.median(times["alcycle label-import (baseline)"]) / statistics.median(
            times["alcycle label-import"])
        print(f"  label-import: baseline / this checkout = {ratio:.1f}x")


if __name__ == "__main__":
    main()
