"""Benchmark: what the unlabeled images buy on MNIST-5k (issue 3).

Runs the real stage functions in-process (label-import, train, extract, evaluate) with
an oracle answering random queries, for 3 seeds, and prints test accuracy at 20, 50,
100 and 200 labels for: plain training, +pretraining (DeepCluster), +label propagation,
+both, +CEAL, +FixMatch (with and without pretraining), and a linear classifier on frozen
pretrained features.

    python benchmarks/unlabeled.py [--seeds 0 1 2] [--budgets 20 50 100 200] [--configs plain +both ...]

Pretraining runs once (seed 0), as the pretrain stage does in a project, and only when a
chosen configuration starts from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alcycle.layout import Layout
from alcycle.params import Params, load_params
from alcycle.pool import read_manifest, split_rows
from alcycle.scaffold import SHIPPED, render_params
from alcycle.stages import embed, evaluate, extract, label_import, prepare, pretrain, train

CONFIGS = {
    "plain": {},
    "+pretraining": {"init": "pretrained"},
    "+label propagation": {"semi_supervised": "label_propagation"},
    "+both": {"init": "pretrained", "semi_supervised": "label_propagation"},
    "+CEAL": {"semi_supervised": "ceal"},
    "+FixMatch": {"semi_supervised": "fixmatch"},
    "+pretraining +FixMatch": {"init": "pretrained", "semi_supervised": "fixmatch"},
    "frozen + linear": {"init": "pretrained", "freeze_backbone": True},
}


def base_project(folder: Path, pretrained: bool = True, data: str = "mnist") -> tuple[Layout, Params]:
    layout = Layout(folder)
    folder.mkdir(parents=True)
    classes, size, channels = SHIPPED[data]
    layout.params.write_text(render_params(data, "", classes, size, channels, 0))
    params = load_params(layout.params)
    prepare.run(layout, params)
    if not pretrained:
        return layout, params
    params = dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, method="deepcluster"))
    start = time.perf_counter()
    pretrain.run(layout, params)
    print(f"pretrain (DeepCluster, {params.pretrain.epochs} epochs): {time.perf_counter() - start:.0f} s", flush=True)
    return layout, params


def learning_curve(base: Layout, params: Params, budgets: list[int], folder: Path) -> list[float]:
    """Oracle-labelled random batches up to each budget; test accuracy after each."""
    layout = Layout(folder)
    for path in (base.prepared, base.truth.parent, base.pretrained):
        if not path.exists():
            continue
        (folder / path.relative_to(base.root)).parent.mkdir(parents=True, exist_ok=True)
        (folder / path.relative_to(base.root)).symlink_to(path.resolve())
    embed.run(layout, params)  # the frozen backbone's features (frozen configs); else only a note
    manifest = read_manifest(base.manifest)
    truth = pd.read_csv(base.truth, dtype=str).set_index("id")["label"]
    order = np.random.default_rng(params.seed).permutation(manifest["id"].to_numpy()[split_rows(manifest, "pool")])
    curve, done = [], 0
    for cycle, budget in enumerate(budgets, start=1):
        ids = order[done:budget]
        batch = pd.DataFrame({"id": ids, "label": truth.loc[ids].to_numpy()})
        layout.annotations.mkdir(parents=True, exist_ok=True)
        batch.to_csv(layout.annotations / f"batch-{cycle:04d}.csv", index=False)
        done = budget
        for stage in (label_import, train, extract):
            stage.run(layout, params)
        curve.append(evaluate.run(layout, params, log_to_mlflow=False)["test_accuracy"])
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 50, 100, 200])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--data", default="mnist", choices=list(SHIPPED), help="a shipped dataset (fashion_mnist: Debian's)")
    parser.add_argument("--ceiling", action="store_true", help="also train plain on every pool label")
    parser.add_argument("--ceiling-steps", type=int, default=0, help="its train.steps (default: as shipped)")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="alcycle-unlabeled-") as tmp:
        pretrained = any(CONFIGS[name].get("init") == "pretrained" for name in args.configs)
        base, params = base_project(Path(tmp) / "base", pretrained, args.data)
        for name in args.configs:
            overrides = CONFIGS[name]
            for seed in args.seeds:
                trial = dataclasses.replace(params, seed=seed, train=dataclasses.replace(params.train, **overrides))
                results[name, seed] = learning_curve(base, trial, args.budgets, Path(tmp) / f"{name}-{seed}")
                print(f"{name:20s} seed {seed}: " + "  ".join(f"{a:.4f}" for a in results[name, seed]), flush=True)
        if args.ceiling:
            pool = int((read_manifest(base.manifest)["split"] == "pool").sum())
            for seed in args.seeds:
                steps = args.ceiling_steps or params.train.steps
                full = dataclasses.replace(params, seed=seed, train=dataclasses.replace(params.train, steps=steps))
                results["all labels", seed] = learning_curve(base, full, [pool], Path(tmp) / f"ceiling-{seed}")
                print(f"{'all labels':20s} seed {seed}: {results['all labels', seed][0]:.4f} ({pool} labels, {steps} steps)",
                      flush=True)
    print(f"\n{args.data}, random selection, test accuracy (mean ± std over seeds {args.seeds})")
    print(f"{'configuration':20s}" + "".join(f"{b:>16d}" for b in args.budgets))
    for name in args.configs:
        curves = np.array([results[name, seed] for seed in args.seeds])
        print(f"{name:20s}" + "".join(f"{m:>10.4f} ± {s:.3f}" for m, s in zip(curves.mean(0), curves.std(0))))
    if args.ceiling:
        ceiling = np.array([results["all labels", seed][0] for seed in args.seeds])
        print(f"{'all labels':20s}{ceiling.mean():>10.4f} ± {ceiling.std():.3f} (every pool label)")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
