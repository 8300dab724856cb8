"""Benchmark: what the unlabeled images buy, on MNIST-5k or Fashion-MNIST.

Runs the real stage functions in-process (embed, label-import, train, extract, evaluate,
and select where a strategy picks) with an oracle answering the queries, for 3 seeds, and
prints test accuracy at each label budget for: plain training, +pretraining, +label
propagation, +both, +CEAL, +FixMatch (with and without pretraining), and a linear head
(with or without label propagation) on frozen pretrained features; ``--ceiling`` adds the
same model trained on every pool label.

    python benchmarks/unlabeled.py [--data mnist|fashion_mnist] [--seeds 0 1 2] [--budgets 20 50 100 200]
        [--configs plain +both ...] [--pretrain deepcluster|simclr] [--set train.steps=1000 ...]
        [--select typiclust] [--ceiling [--ceiling-steps 3000]] [--work DIR] [--out results.jsonl]

Pretraining runs once (seed 0), as the pretrain stage does in a project, and only when a
chosen configuration starts from it; ``--work`` keeps the prepared data and weights for
the next run. ``--out`` appends one JSON line per curve (configuration, seed, budgets,
accuracies, seconds, commit) and skips curves already there, so a long run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alcycle.layout import Layout
from alcycle.params import Params, params_from_dict
from alcycle.pool import read_manifest, split_rows
from alcycle.scaffold import SHIPPED, render_params
from alcycle.stages import embed, evaluate, extract, label_import, prepare, pretrain, select, train

CONFIGS = {
    "plain": {},
    "+pretraining": {"init": "pretrained"},
    "+label propagation": {"semi_supervised": "label_propagation"},
    "+both": {"init": "pretrained", "semi_supervised": "label_propagation"},
    "+CEAL": {"semi_supervised": "ceal"},
    "+FixMatch": {"semi_supervised": "fixmatch"},
    "+pretraining +FixMatch": {"init": "pretrained", "semi_supervised": "fixmatch"},
    "frozen + linear": {"init": "pretrained", "freeze_backbone": True},
    "frozen + label propagation": {"init": "pretrained", "freeze_backbone": True,
                                   "semi_supervised": "label_propagation"},
}


def base_project(folder: Path, pretrained: bool = True, data: str = "mnist", method: str = "deepcluster",
                 overrides: dict[str, str] | None = None) -> tuple[Layout, Params]:
    """Prepare ``data`` in ``folder`` (and pretrain with ``method``); a folder already holding them is reused."""
    layout = Layout(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classes, size, channels = SHIPPED[data]
    raw = yaml.safe_load(render_params(data, "", classes, size, channels, 0))
    for dotted, value in (overrides or {}).items():
        *sections, key = dotted.split(".")
        section = raw
        for name in sections:
            section = section[name]
        section[key] = yaml.safe_load(value)
    raw["pretrain"]["method"] = method if pretrained else "none"
    params = params_from_dict(raw, source=layout.params)
    layout.params.write_text(yaml.safe_dump(raw, sort_keys=False))
    if not (layout.prepared / "pixels.npy").exists():
        prepare.run(layout, params)
    if pretrained and not layout.pretrained.exists():
        start = time.perf_counter()
        pretrain.run(layout, params)
        print(f"pretrain ({method}): {time.perf_counter() - start:.0f} s", flush=True)
    return layout, params


def learning_curve(base: Layout, params: Params, budgets: list[int], folder: Path, strategy: str = "random") -> list[float]:
    """Oracle-labelled batches up to each budget; test accuracy after each.

    ``random``: a seeded random order of the pool. Any other strategy picks each batch with
    the select stage (its own cold start at 0 labels), as a cycle of the pipeline does.
    """
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
    layout.annotations.mkdir(parents=True, exist_ok=True)
    if strategy != "random":
        params = dataclasses.replace(params, select=dataclasses.replace(params.select, strategy=strategy,
                                                                           cold_start=strategy))
        for stage in (label_import, train, extract):  # what the cold start reads (an untrained model)
            stage.run(layout, params)
    curve, done = [], 0
    for cycle, budget in enumerate(budgets, start=1):
        if strategy == "random":
            ids = order[done:budget]
        else:
            batch_params = dataclasses.replace(params, select=dataclasses.replace(params.select, budget=budget - done))
            ids = select.run(layout, batch_params)["id"].to_numpy()
        batch = pd.DataFrame({"id": ids, "label": truth.loc[ids].to_numpy()})
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
    parser.add_argument("--pretrain", default="deepcluster", choices=["deepcluster", "simclr"])
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE",
                        help="parameter overrides for every configuration, e.g. train.steps=1000 pretrain.epochs=20")
    parser.add_argument("--select", default="random", help="the strategy that picks each batch (cold start too)")
    parser.add_argument("--ceiling", action="store_true", help="also train plain on every pool label")
    parser.add_argument("--ceiling-steps", type=int, default=0, help="its train.steps (default: as shipped)")
    parser.add_argument("--work", type=Path, help="keep the prepared data and pretrained weights here and reuse them")
    parser.add_argument("--out", type=Path, help="append one JSON line per curve; curves already there are skipped")
    parser.add_argument("--report", type=Path, help="only print Markdown tables of the curves in this JSON-lines file")
    args = parser.parse_args()
    if args.report:
        print(report(args.report))
        return
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    start = time.perf_counter()
    overrides = dict(item.split("=", 1) for item in args.set)
    label = f"{args.data} {args.pretrain} select={args.select} " + " ".join(args.set)
    done = _read_records(args.out)
    results = {}
    with tempfile.TemporaryDirectory(prefix="alcycle-unlabeled-") as tmp:
        work = args.work or Path(tmp)
        pretrained = any(CONFIGS[name].get("init") == "pretrained" for name in args.configs)
        # The prepared data and weights depend on these overrides: a folder of their own.
        upstream = "".join(f"-{k}={v}" for k, v in sorted(overrides.items()) if k.split(".")[0] in ("prepare", "pretrain"))
        base, params = base_project(work / f"base-{args.data}-{args.pretrain}{upstream}", pretrained, args.data,
                                    args.pretrain, overrides)
        trials = [(name, seed, dataclasses.replace(params, seed=seed, train=dataclasses.replace(
            params.train, **CONFIGS[name])), args.budgets) for name in args.configs for seed in args.seeds]
        ceiling = ""
        if args.ceiling:
            pool = int((read_manifest(base.manifest)["split"] == "pool").sum())
            steps = args.ceiling_steps or params.train.steps
            ceiling = f"all labels, {steps} steps"
            trials += [(ceiling, seed, dataclasses.replace(params, seed=seed, train=dataclasses.replace(
                params.train, steps=steps)), [pool]) for seed in args.seeds]
        for name, seed, trial, budgets in trials:
            key = (label, name, seed, tuple(budgets))
            if key not in done:
                trial_start = time.perf_counter()
                strategy = "random" if name == ceiling else args.select
                curve = learning_curve(base, trial, budgets, Path(tmp) / f"{name}-{seed}", strategy)
                done[key] = curve
                _append_record(args.out, label, name, seed, budgets, curve, time.perf_counter() - trial_start)
            results[name, seed] = done[key]
            print(f"{name:26s} seed {seed}: " + "  ".join(f"{a:.4f}" for a in results[name, seed]), flush=True)
    print(f"\n{label}: test accuracy (mean ± std over seeds {args.seeds})")
    print(f"{'configuration':26s}" + "".join(f"{b:>16d}" for b in args.budgets))
    for name in args.configs:
        curves = np.array([results[name, seed] for seed in args.seeds])
        print(f"{name:26s}" + "".join(f"{m:>10.4f} ± {s:.3f}" for m, s in zip(curves.mean(0), curves.std(0))))
    if ceiling:
        accuracy = np.array([results[ceiling, seed][0] for seed in args.seeds])
        print(f"{ceiling:26s}{accuracy.mean():>10.4f} ± {accuracy.std():.3f} (every pool label)")
    print(f"wall time {time.perf_counter() - start:.0f} s")


def report(path: Path) -> str:
    """Markdown tables, one per run label: mean ± std over seeds of each configuration at each budget."""
    records = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    tables = []
    for label, runs in records.groupby("label", sort=False):
        budgets = sorted({b for row in runs["budgets"] for b in row})
        lines = [f"`{label.strip()}`", "", "| configuration | seeds | " + " | ".join(map(str, budgets)) + " |",
                 "|---|---|" + "---|" * len(budgets)]
        for config, group in runs.groupby("config", sort=False):
            cells = []
            for budget in budgets:
                values = [c[b.index(budget)] for b, c in zip(group["budgets"], group["curve"]) if budget in b]
                cells.append(f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}" if values else "")
            lines.append(f"| {config} | {len(group)} | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _read_records(path: Path | None) -> dict[tuple, list[float]]:
    if path is None or not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["label"], r["config"], r["seed"], tuple(r["budgets"])): r["curve"] for r in records}


def _append_record(path: Path | None, label: str, name: str, seed: int, budgets: list[int], curve: list[float],
                   seconds: float) -> None:
    if path is None:
        return
    record = {"label": label, "config": name, "seed": seed, "budgets": budgets, "curve": curve,
              "seconds": round(seconds, 1), "commit": _commit()}
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")


def _commit() -> str:
    import subprocess

    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent)
    return result.stdout.strip()


if __name__ == "__main__":
    main()
