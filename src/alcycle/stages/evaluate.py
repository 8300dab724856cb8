"""evaluate: test-split accuracy, per-class accuracy and confusion pairs; logs the cycle to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alcycle.fileio import atomic_write_csv, atomic_write_text, file_digest
from alcycle.contract import Stage, cached, committed
from alcycle.layout import Layout
from alcycle.params import Params, params_dict
from alcycle.pool import cycle_number, read_labeled, read_manifest, split_rows
from alcycle.synthesised import UNRECOGNISABLE

_L = Layout()
STAGE = Stage(
    name="evaluate",
    deps=(_L.extracted, _L.truth_folder, _L.labeled, _L.import_report, _L.annotations, _L.manifest, _L.model,
          _L.pseudo_labels),
    params=("classes", "track"),
    outs=(
        committed(_L.metrics, "metrics"),
        cached(_L.confusion, "plots", template="confusion", x="predicted", y="actual"),
        # persist: DVC never restores this stage from its run cache, so every
        # cycle really runs it and logs its MLflow run (tracking.py skips repeats).
        committed(_L.mlflow_run, persist=True),
    ),
    code=("tracking.py",),
)


def score_test_split(
    manifest: pd.DataFrame, truth: pd.DataFrame, probs: np.ndarray, classes: tuple[str, ...]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Accuracy metrics and (actual, predicted) pairs over test items whose label is known.

    probs: (N, C) in manifest row order. With no labeled test item the metrics are empty.
    """
    rows = split_rows(manifest, "test")
    known = dict(zip(truth["id"], truth["label"]))
    test_ids = manifest["id"].to_numpy()[rows]
    has_truth = np.array([i in known for i in test_ids], dtype=bool)
    rows, test_ids = rows[has_truth], test_ids[has_truth]
    if len(rows) == 0:
        return {}, pd.DataFrame({"actual": [], "predicted": []})
    actual = np.array([known[i] for i in test_ids])
    predicted = np.asarray(classes)[probs[rows].argmax(axis=1)]
    correct = actual == predicted
    metrics = {"test_accuracy": float(correct.mean()), "test_items": float(len(rows))}
    for name in classes:
        of_class = actual == name
        if of_class.any():
            metrics[f"test_accuracy_class_{name}"] = float(correct[of_class].mean())
    return metrics, pd.DataFrame({"actual": actual, "predicted": predicted})


def pseudo_label_scores(pseudo: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """How many pseudo-labels training used and, where the truth is known, how many were right.

    Training never sees the truth; only this stage compares the two.
    """
    scores = {"pseudo_labels": float(len(pseudo))}
    known = pseudo.merge(truth, on="id", suffixes=("", "_true"))
    if len(known):
        scores["pseudo_label_accuracy"] = float((known["label"] == known["label_true"]).mean())
    return scores


def flat_params(params: Params) -> dict[str, object]:
    """``params.yaml`` flattened to dotted names ("train.label_propagation.k"), as MLflow parameters."""
    def flatten(prefix: str, value: object) -> dict[str, object]:
        if not isinstance(value, dict):
            return {prefix: value}
        return {k: v for key, item in value.items() for k, v in flatten(f"{prefix}.{key}" if prefix else key, item).items()}

    return flatten("", params_dict(params))


def run(layout: Layout, params: Params, log_to_mlflow: bool = True) -> dict[str, float]:
    manifest = read_manifest(layout.manifest)
    labeled = read_labeled(layout.labeled)
    truth = pd.read_csv(layout.truth, dtype=str, keep_default_na=False)
    probs = np.load(layout.extracted / "probs.npy")
    metrics, pairs = score_test_split(manifest, truth, probs, params.classes)
    if params.train.semi_supervised != "none":
        pseudo = pd.read_csv(layout.pseudo_labels, dtype={"id": str, "label": str}, keep_default_na=False)
        metrics.update(pseudo_label_scores(pseudo, truth))
    if layout.import_report.exists():
        # The newest batch's annotator disagreements, so MLflow shows each cycle's count.
        report = json.loads(layout.import_report.read_text(encoding="utf-8"))
        metrics["annotator_disagreements"] = report["newest_batch_disagreements"]
    metrics.update(synthesised_counts(manifest, labeled))
    cycle = cycle_number(layout.annotations)
    summary = {"cycle": cycle, "n_labels": len(labeled), **metrics}
    atomic_write_text(layout.metrics, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    atomic_write_csv(layout.confusion, pairs)
    if log_to_mlflow:
        run_id = _track(layout, params, labeled, metrics, cycle)
        atomic_write_text(layout.mlflow_run, json.dumps({"cycle": cycle, "run_id": run_id}, indent=2) + "\n")
    return summary


def synthesised_counts(manifest: pd.DataFrame, labeled: pd.DataFrame) -> dict[str, int]:
    """GAAL's labeled synthesised images and how many of them were unrecognisable; nothing when there are none."""
    made = labeled[~labeled["id"].isin(manifest["id"])]
    if made.empty:
        return {}
    return {"n_synthesised": len(made), "n_unrecognisable": int((made["label"] == UNRECOGNISABLE).sum())}


def _load_model(path: Path) -> Any:
    # Imported here: torch is needed only when a new run logs the model, never for a cycle
    # that is already logged (a forced re-run, a replay from DVC's run cache).
    from alcycle.checkpoints import load_model

    return load_model(path)[0]


def _track(layout: Layout, params: Params, labeled: pd.DataFrame, metrics: dict[str, float], cycle: int) -> str:
    from alcycle import tracking

    record = tracking.CycleRecord(
        cycle=cycle,
        n_labels=len(labeled),
        strategy=params.select.strategy,
        params=flat_params(params),
        metrics=metrics,
        labeled=labeled,
        labeled_path=layout.labeled,
        digests={
            "labeled_pool": file_digest(layout.labeled),
            "manifest": file_digest(layout.manifest),
            "pixels": file_digest(layout.pixels),
            "model": file_digest(layout.model),
        },
        model=lambda: _load_model(layout.model),
        model_input=np.array(np.load(layout.pixels, mmap_mode="r")[:2]),
        artifacts=[layout.metrics, layout.labeled] + [p for p in [layout.import_report] if p.exists()],
    )
    uri = tracking.resolve_tracking_uri(params.track.tracking_uri, layout.root)
    run_id, logged = tracking.log_cycle(record, uri, params.track.experiment, layout.root)
    print(f"evaluate: cycle {cycle} {'logged as' if logged else 'already logged as'} MLflow run {run_id}")
    return run_id

