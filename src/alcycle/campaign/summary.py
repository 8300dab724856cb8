"""The campaign summary: learning curves across seeds, as DVC metrics and plots.

Writes to ``summary/``:
- ``metrics.json`` (DVC metrics, so ``dvc metrics diff`` compares campaigns): per
  ``strategy/option`` the mean test accuracy at each label count, the area under the
  mean learning curve (trapezoids, divided by the label range, so 1.0 is perfect), and
  the labels needed for the mean curve to reach 80/85/90/95/97% where it does; and, beside
  ``random`` with the same option, the mean curve's lead over random's at each label count
  and the labels random's mean curve needs to match it there (where it does);
- ``accuracy.csv``: one row per (strategy, option, label count): mean, std, seeds;
- ``learning_curves.png`` (a DVC image plot): one line per strategy/option, mean ± std bands.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from alcycle.campaign.cell import cell_output
from alcycle.campaign.definition import Campaign
from alcycle.errors import MissingInputError
from alcycle.fileio import atomic_write_bytes, atomic_write_csv, atomic_write_text

THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 0.97)


def collect(root: Path, campaign: Campaign, partial: bool = False) -> pd.DataFrame:
    """Every cell's curve as rows: strategy, option, seed, n_labels, test_accuracy.

    A missing result is an error, unless ``partial`` (a look at a campaign still running).
    """
    rows = []
    for cell in campaign.cells:
        path = cell_output(root, cell)
        if not path.exists():
            if partial:
                continue
            raise MissingInputError(f"{path}: cell {cell.name} has no result; run its stage first")
        for point in json.loads(path.read_text())["curve"]:
            rows.append({"strategy": cell.strategy, "option": cell.option, "seed": cell.seed,
                         "n_labels": point["n_labels"], "test_accuracy": point["test_accuracy"]})
    return pd.DataFrame(rows)


def curve_table(points: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (population) and seed count per (strategy, option, n_labels), in campaign order."""
    grouped = points.groupby(["strategy", "option", "n_labels"], sort=False)["test_accuracy"]
    table = grouped.agg(mean="mean", std=lambda a: float(np.std(a)), seeds="count").reset_index()
    table[["mean", "std"]] = table[["mean", "std"]].round(6)
    return table


def area_under_curve(n_labels: np.ndarray, accuracy: np.ndarray) -> float:
    """Trapezoid area under accuracy(n_labels), divided by the label range (one point: that accuracy)."""
    if len(n_labels) == 1:
        return float(accuracy[0])
    widths = np.diff(n_labels)
    return float(np.sum(widths * (accuracy[1:] + accuracy[:-1]) / 2) / (n_labels[-1] - n_labels[0]))


def labels_to_reach(n_labels: np.ndarray, accuracy: np.ndarray, threshold: float) -> int | None:
    """The first label count at which the mean accuracy is at least ``threshold``, or None."""
    reached = np.flatnonzero(accuracy >= threshold)
    return int(n_labels[reached[0]]) if len(reached) else None


def against_random(n_labels: np.ndarray, accuracy: np.ndarray, random_n: np.ndarray,
                   random_accuracy: np.ndarray) -> dict:
    """A mean curve beside random's (same option), per label count: its lead over random
    (accuracy minus random's; only counts both have), and the labels random needs to reach its
    accuracy (left out where random's curve never does: more than its largest label count).
    Dicts, not lists: ``dvc metrics show`` drops lists."""
    random_at = dict(zip(random_n.tolist(), random_accuracy.tolist()))
    lead = {str(k): round(float(v) - random_at[k], 6) for k, v in zip(n_labels.tolist(), accuracy) if k in random_at}
    to_match = {}
    for k, v in zip(n_labels, accuracy):
        needed = labels_to_reach(random_n, random_accuracy, v)
        if needed is not None:
            to_match[str(k)] = needed
    return {"lead_over_random": lead, "random_labels_to_match": to_match}


def metrics(table: pd.DataFrame) -> dict[str, dict]:
    result = {}
    curves = {key: (group["n_labels"].to_numpy(), group["mean"].to_numpy())
              for key, group in table.groupby(["strategy", "option"], sort=False)}
    for (strategy, option), (n, mean) in curves.items():
        entry = {"aulc": round(area_under_curve(n, mean), 6),
                 "accuracy": {str(k): float(v) for k, v in zip(n, mean)}}
        for threshold in THRESHOLDS:
            needed = labels_to_reach(n, mean, threshold)
            if needed is not None:
                entry[f"labels_to_{round(threshold * 100)}"] = needed
        if strategy != "random" and ("random", option) in curves:
            entry.update(against_random(n, mean, *curves["random", option]))
        result[f"{strategy}/{option}"] = entry
    return result


def plot(table: pd.DataFrame, title: str) -> bytes:
    """PNG bytes: one line per strategy/option (colour by strategy, dashes by option), ± std bands."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(dict.fromkeys(table["strategy"]))
    options = list(dict.fromkeys(table["option"]))
    colours = plt.get_cmap("tab10")
    styles = ["-", "--", ":", "-."]
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for (strategy, option), group in table.groupby(["strategy", "option"], sort=False):
        colour = colours(strategies.index(strategy) % 10)
        n, mean, std = group["n_labels"], group["mean"], group["std"]
        axes.plot(n, mean, styles[options.index(option) % 4], color=colour, marker="o", markersize=3,
                  label=f"{strategy} / {option}")
        axes.fill_between(n, mean - std, mean + std, color=colour, alpha=0.12, linewidth=0)
    if table["n_labels"].max() >= 20 * table["n_labels"].min():
        axes.set_xscale("log")  # a schedule such as 10 … 2,000 labels: the small budgets stay readable
    axes.set_xlabel("labels")
    axes.set_ylabel("test accuracy (mean ± std over seeds)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2, loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def run(root: Path, campaign: Campaign) -> dict[str, dict]:
    table = curve_table(collect(root, campaign))
    folder = Path(root) / "summary"
    result = metrics(table)
    atomic_write_csv(folder / "accuracy.csv", table)
    atomic_write_text(folder / "metrics.json", json.dumps(result, indent=1) + "\n")
    seeds = ", ".join(map(str, campaign.seeds))
    atomic_write_bytes(folder / "learning_curves.png", plot(table, f"campaign {campaign.name} (seeds {seeds})"))
    return result
