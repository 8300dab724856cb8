"""One campaign cell: the interactive cycle's own stage functions, in-process, with the oracle.

After one embed (a frozen backbone's features), each cycle runs label-import → train →
extract → evaluate → select → oracle on a scratch project (``work/<cell>/``) that links the campaign's prepared data and
pretrained weights, so a cell is exactly what ``dvc repro`` + ``alcycle oracle``
would do, minus DVC's bookkeeping between the stages. The cell's result is one JSON
file: its learning curve, the ids picked at each cycle and how long it took.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

import yaml

from alcycle.campaign.definition import Campaign, Cell
from alcycle.fileio import atomic_write_text
from alcycle.layout import Layout
from alcycle.oracle import answer
from alcycle.params import Params
from alcycle.pool import read_labeled
from alcycle.stages import embed, evaluate, extract, label_import, select, train
from alcycle.stages.evaluate import flat_params

# The campaign's shared inputs, linked into every cell's scratch project.
SHARED = ("prepared", "truth", "pretrained", "vit", "gan")


def cell_output(root: Path, cell: Cell) -> Path:
    return Path(root) / "cells" / f"{cell.name}.json"


def run_cell(root: Path, campaign: Campaign, cell: Cell, echo: Callable[[str], None] = print,
             tracking_uri: str = "", tags: dict[str, str] | None = None) -> dict:
    """Run ``cell`` of the campaign in folder ``root`` and write ``cells/<cell>.json``; returns its content.

    ``tracking_uri``: the MLflow store, when the caller resolved it (a Ray task runs where
    ``$MLFLOW_TRACKING_URI`` may differ); "" resolves it here, from the cell's settings.
    ``tags``: more tags for the cell's MLflow run (the Ray node that runs it)."""
    from alcycle.tracking import CellRun, resolve_tracking_uri

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    root = Path(root)
    base = Layout(root)
    params = campaign.cell_params(yaml.safe_load(base.params.read_text(encoding="utf-8")), cell)
    layout = _scratch_project(base, cell)
    tracking_uri = tracking_uri or resolve_tracking_uri(params.track.tracking_uri, root)
    tags = {"alcycle.cell": cell.name, "strategy": cell.strategy, "option": cell.option, "seed": str(cell.seed),
            "alcycle.campaign": campaign.name, **(tags or {})}
    run = CellRun(tracking_uri, f"campaign-{campaign.name}", root, tags, flat_params(params))
    progress = Progress(root, campaign, cell, echo)
    curve, picks = [], []
    try:
        # Once per cell, as dvc repro runs it once per backbone: the recipe may freeze it.
        embed.run(layout, params)
        for cycle in range(campaign.cycles + 2):
            labeled = _train_and_extract(layout, params)
            if cycle > 0:
                summary = evaluate.run(layout, params, log_to_mlflow=False)
                accuracy = summary["test_accuracy"]
                run.log_cycle(cycle, len(labeled), {"test_accuracy": accuracy})
                # GAAL: how many labels are synthesised images, and how many of those unrecognisable
                made: dict[str, float] = {k: summary[k] for k in ("n_synthesised", "n_unrecognisable") if k in summary}
                curve.append({"cycle": cycle, "n_labels": len(labeled), "test_accuracy": accuracy, **made})
                progress.cycle_done(cycle, len(labeled), accuracy)
            if cycle <= campaign.cycles:
                batch = select.run(layout, dataclasses.replace(
                    params, select=dataclasses.replace(params.select, budget=campaign.budgets[cycle])))
                picks.append(batch["id"].tolist())
                # One reference classifier for synthesised images serves every cell of the campaign.
                answer(layout, params, reference_cache=root / "work" / ".oracle")
    except BaseException:
        run.finish("FAILED")
        raise
    run.finish()
    result = {"cell": dataclasses.asdict(cell), "curve": curve, "picks": picks, "mlflow_run_id": run.run_id,
              "seconds": round(progress.elapsed, 1)}
    atomic_write_text(cell_output(root, cell), json.dumps(result, indent=1) + "\n")
    shutil.rmtree(layout.root)
    return result


def _train_and_extract(layout: Layout, params: Params):
    label_import.run(layout, params)
    train.run(layout, params)
    extract.run(layout, params)
    return read_labeled(layout.labeled)


def _scratch_project(base: Layout, cell: Cell) -> Layout:
    """A fresh ``work/<cell>`` project whose prepared data and pretrained weights are the campaign's."""
    layout = Layout(base.root / "work" / cell.name)
    if layout.root.exists():
        shutil.rmtree(layout.root)  # a cell always starts from nothing labeled
    for name in SHARED:
        source = getattr(base, name)
        source = source.parent if name == "truth" else source  # the truth is a folder
        target = layout.root / source.relative_to(base.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve())
    layout.annotations.mkdir(parents=True)
    return layout


class Progress:
    """Which cell and cycle a campaign is on, and an estimate of the time left.

    The campaign estimate counts the cells without a result file, at the mean duration
    of the finished ones (or of this one, projected, before any has finished).
    """

    def __init__(self, root: Path, campaign: Campaign, cell: Cell, echo: Callable[[str], None]) -> None:
        self.root, self.campaign, self.cell, self.echo = root, campaign, cell, echo
        self.start = time.perf_counter()
        self.cells = campaign.cells
        self.index = self.cells.index(cell) + 1

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def cycle_done(self, cycle: int, n_labels: int, accuracy: float) -> None:
        evaluations = self.campaign.cycles + 1
        cell_total = self.elapsed / cycle * evaluations
        finished = [json.loads(p.read_text())["seconds"] for c in self.cells
                    if c != self.cell and (p := cell_output(self.root, c)).exists()]
        waiting = len(self.cells) - len(finished) - 1
        per_cell = sum(finished) / len(finished) if finished else cell_total
        left = (cell_total - self.elapsed) + waiting * per_cell
        self.echo(f"[campaign {self.campaign.name}] cell {self.index}/{len(self.cells)} {self.cell.name}: "
                  f"cycle {cycle}/{evaluations}, {n_labels} labels, test accuracy {accuracy:.4f}; "
                  f"cell {_duration(cell_total - self.elapsed)} left, campaign ~{_duration(left)} left "
                  f"({waiting} cell(s) waiting)")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
