"""The oracle: answers the current query batch from the ground truth, as an annotator would.

Only for datasets whose labels are known (MNIST, class sub-folders, a CSV label
column). It writes the next annotation batch; ``dvc repro`` then imports it.

Synthesised images (GAAL) have no ground truth. The oracle labels them with a reference
classifier: the project's classifier (``train.backbone``) trained from scratch on every pool
item's true label for ``REFERENCE_STEPS`` steps with seed ``REFERENCE_SEED`` (the same annotator
for every seed of a campaign), cached by the truth, manifest and recipe it was trained from. It says so: the batch's ``annotator`` column reads ``reference-classifier``
for those rows (``truth`` for the others), and it prints how many it answered and the
reference's test accuracy. An image the reference classifies with confidence (top-class
probability) below ``unrecognisable_below`` is answered ``unrecognisable``, as an annotator
would answer an image that shows no class.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alcycle import synthesised
from alcycle.annotations.store import store_new
from alcycle.errors import AlcycleError
from alcycle.fileio import atomic_write_text, file_digest
from alcycle.layout import Layout
from alcycle.params import Params, load_params
from alcycle.pool import cycle_number

REFERENCE_STEPS = 2000  # the reference classifier's optimiser steps (train.steps if that is more)
REFERENCE_SEED = 0  # one reference, one "annotator", whatever the project's seed
TRUTH, REFERENCE = "truth", "reference-classifier"  # the annotator column of a batch with synthesised images


class OracleError(AlcycleError, RuntimeError):
    """The oracle cannot answer: stale queries or missing ground truth."""


def answer(layout: Layout, params: Params | None = None, reference_cache: Path | None = None,
           unrecognisable_below: float = 0.5, reference_steps: int = REFERENCE_STEPS) -> Path:
    """Write the labels of ``layout.queries`` as the next annotation batch; returns its path.

    ``params`` (read from ``layout.params`` when None) and ``reference_cache`` (the folder that
    keeps reference classifiers, ``layout.oracle_cache`` when None) matter only for a batch of
    synthesised images; the reference trains for ``reference_steps`` (train.steps if that is more)."""
    if not layout.queries.exists():
        raise OracleError(f"{layout.queries}: no query batch yet; run `dvc repro` first")
    queries = pd.read_csv(layout.queries, dtype={"id": str}, keep_default_na=False)
    imported = cycle_number(layout.annotations)
    made_in = int(queries["cycle"].iloc[0]) if len(queries) else -1
    if made_in != imported:
        raise OracleError(
            f"{layout.queries} was made at cycle {made_in} but {imported} batch(es) are in "
            f"{layout.annotations}; run `dvc repro` to import them and select anew"
        )
    truth = pd.read_csv(layout.truth, dtype=str, keep_default_na=False).set_index("id")["label"]
    made = queries["id"].map(lambda i: bool(synthesised.ID.match(i))) & ~queries["id"].isin(truth.index)
    unknown = [i for i in queries["id"][~made] if i not in truth.index]
    if unknown:
        raise OracleError(f"{layout.truth}: no ground truth for {len(unknown)} queried item(s), e.g. {unknown[0]}")
    batch = pd.DataFrame({"id": queries["id"], "label": truth.reindex(queries["id"]).to_numpy()})
    if made.any():
        params = params or load_params(layout.params)
        reference = reference_classifier(layout, params, reference_cache or layout.oracle_cache, reference_steps)
        labels, confidence = reference.label(layout, queries["id"][made].tolist(), unrecognisable_below)
        batch.loc[made.to_numpy(), "label"] = labels
        batch["annotator"] = np.where(made, REFERENCE, TRUTH)
        low = int((confidence < unrecognisable_below).sum())
        print(f"oracle: {int(made.sum())} synthesised image(s) answered by a reference classifier trained on all "
              f"{reference.trained_on} pool truth labels (test accuracy {reference.test_accuracy:.4f}); {low} below "
              f"confidence {unrecognisable_below} answered {synthesised.UNRECOGNISABLE!r}")
        synthesised.keep(layout, queries["id"][made])  # a stored batch always finds its images
    return store_new(layout, batch.to_csv(index=False, lineterminator="\n").encode("utf-8"), ".csv")


@dataclasses.dataclass
class Reference:
    """A classifier trained on every pool truth label, standing in for an annotator of synthesised images."""

    model: Any
    classes: tuple[str, ...]
    trained_on: int
    test_accuracy: float

    def label(self, layout: Layout, ids: list[str], unrecognisable_below: float) -> tuple[list[str], np.ndarray]:
        """The class (or ``unrecognisable``) of each queried synthesised image, and its confidence."""
        from alcycle.inference import predict

        shape = np.load(layout.pixels, mmap_mode="r").shape[1:]
        images = np.stack([synthesised.read_pixels_at(synthesised.queried(layout), item, shape) for item in ids])
        probs, _ = predict(self.model, images, batch_size=256)
        confidence = probs.max(axis=1)
        labels = [synthesised.UNRECOGNISABLE if c < unrecognisable_below else self.classes[k]
                  for c, k in zip(confidence, probs.argmax(axis=1))]
        return labels, confidence


def reference_classifier(layout: Layout, params: Params, cache: Path, steps: int = REFERENCE_STEPS) -> Reference:
    """The reference classifier for this truth, manifest and recipe: from ``cache``, else trained and kept there."""
    from alcycle.checkpoints import load_model, save_model

    recipe = _reference_params(params, steps)
    key = hashlib.sha256(json.dumps({"truth": file_digest(layout.truth), "manifest": file_digest(layout.manifest),
                                     "train": dataclasses.asdict(recipe.train), "seed": recipe.seed,
                                     "classes": recipe.classes}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path, notes = cache / f"reference-{key}.pt", cache / f"reference-{key}.json"
    if path.exists() and notes.exists():
        facts = json.loads(notes.read_text(encoding="utf-8"))
        return Reference(load_model(path)[0], recipe.classes, facts["trained_on"], facts["test_accuracy"])
    model, trained_on, accuracy = _train_reference(layout, recipe)
    cache.mkdir(parents=True, exist_ok=True)
    save_model(path, model, [], recipe.classes)
    atomic_write_text(notes, json.dumps({"trained_on": trained_on, "test_accuracy": accuracy}) + "\n")
    return Reference(model, recipe.classes, trained_on, accuracy)


def _reference_params(params: Params, steps: int) -> Params:
    """``params`` with train set to a plain supervised fit from scratch of at least ``steps`` steps."""
    train = dataclasses.replace(
        params.train, init="scratch", freeze_backbone=False, semi_supervised="none",
        steps=max(params.train.steps, steps),
        loss_prediction=dataclasses.replace(params.train.loss_prediction, fit=False),
        bgadl=dataclasses.replace(params.train.bgadl, variants=0))
    return dataclasses.replace(params, train=train, seed=REFERENCE_SEED)


def _train_reference(layout: Layout, params: Params) -> tuple[Any, int, float]:
    """The reference classifier fitted on every pool truth label; how many, and its test-split accuracy."""
    from alcycle import rng
    from alcycle.inference import predict
    from alcycle.pool import class_index, read_manifest, rows_of, split_rows
    from alcycle.stages.train import build_classifier, fit

    manifest = read_manifest(layout.manifest)
    truth = pd.read_csv(layout.truth, dtype=str, keep_default_na=False).set_index("id")["label"]
    pixels = np.load(layout.pixels, mmap_mode="r")
    ids = manifest["id"].to_numpy()
    pool = [r for r in split_rows(manifest, "pool") if ids[r] in truth.index]
    test = [r for r in split_rows(manifest, "test") if ids[r] in truth.index]
    print(f"oracle: training a reference classifier on {len(pool)} pool truth labels ({params.train.steps} steps)")
    with rng.seeded(params.seed):
        model = build_classifier(params, pixels.shape[1])
        fit(model, pixels[pool], class_index(params.classes, truth.loc[ids[pool]]), params)
    accuracy = float("nan")
    if test:
        probs, _ = predict(model, pixels[rows_of(manifest, ids[test])], batch_size=256)
        accuracy = float((probs.argmax(axis=1) == class_index(params.classes, truth.loc[ids[test]])).mean())
    return model, len(pool), accuracy
