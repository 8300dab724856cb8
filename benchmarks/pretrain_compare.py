"""Benchmark: SimCLR against DeepCluster on MNIST-5k, the same probes on each one's frozen features.

    python benchmarks/pretrain_compare.py [--methods deepcluster simclr] [--budgets 20 100] [--seed 0]

For each ``pretrain.method`` (shipped parameters otherwise): its pretraining wall time,
then test accuracy at each budget of random oracle labels for two probes on the frozen
backbone (``train.freeze_backbone``): a linear head, and a linear head with label
propagation over the pool (``unlabeled.learning_curve``: the real stages embed, label-import,
train, extract, evaluate).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

from unlabeled import learning_curve

from alcycle.layout import Layout
from alcycle.params import Params, load_params
from alcycle.scaffold import MNIST_CLASSES, render_params
from alcycle.stages import prepare, pretrain

PROBES = {
    "frozen + linear": {"init": "pretrained", "freeze_backbone": True},
    "frozen + label propagation": {"init": "pretrained", "freeze_backbone": True,
                                   "semi_supervised": "label_propagation"},
}


def linked_project(base: Layout, folder: Path, paths: list[Path]) -> Layout:
    """A project at ``folder`` whose ``paths`` (files of ``base``) are links to ``base``'s."""
    for path in paths:
        target = folder / path.relative_to(base.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    return Layout(folder)


def pretrained(base: Layout, params: Params, method: str, folder: Path) -> tuple[Layout, float]:
    """``pretrain.method`` run on ``base``'s pixels in its own project; the seconds it took."""
    layout = linked_project(base, folder, [base.prepared, base.truth.parent])
    start = time.perf_counter()
    pretrain.run(layout, dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, method=method)))
    return layout, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["deepcluster", "simclr"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory(prefix="alcycle-pretrain-") as tmp:
        base = Layout(Path(tmp) / "base")
        base.root.mkdir()
        base.params.write_text(render_params("mnist", "", MNIST_CLASSES, 28, 1, 0))
        params = dataclasses.replace(load_params(base.params), seed=args.seed)
        prepare.run(base, params)
        for method in args.methods:
            layout, seconds = pretrained(base, params, method, Path(tmp) / method)
            print(f"{method}: pretraining {seconds:.0f} s", flush=True)
            for probe, overrides in PROBES.items():
                trial = dataclasses.replace(params, train=dataclasses.replace(params.train, **overrides))
                curve = learning_curve(layout, trial, args.budgets, Path(tmp) / f"{method}-{probe}")
                rows.append((method, probe, seconds, curve))
                print(f"{method:12s} {probe:28s} " + "  ".join(f"{a:.4f}" for a in curve), flush=True)
    print(f"\nMNIST-5k, random labels, seed {args.seed}: test accuracy on frozen pretrained features")
    print(f"{'method':12s} {'probe':28s} {'pretrain s':>10s}" + "".join(f"{b:>10d}" for b in args.budgets))
    for method, probe, seconds, curve in rows:
        print(f"{method:12s} {probe:28s} {seconds:>10.0f}" + "".join(f"{a:>10.4f}" for a in curve))


if __name__ == "__main__":
    main()
