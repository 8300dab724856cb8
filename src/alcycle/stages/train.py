"""train: fit a freshly initialised classifier on the labeled pool with a Lightning Trainer.

Reads only the labeled pool, the manifest, the pixels (and the synthesised images GAAL asked,
kept in the annotation store) and the pretrained backbone: never the ground truth. With ``semi_supervised`` on, the unlabeled pool items join
training under pseudo-labels, which are written apart from the labeled pool.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from alcycle import bgadl, pixel_store, rng, synthesised
from alcycle.backbones import build_backbone
from alcycle.checkpoints import save_model
from alcycle.compute import FIT_KEYS, PerProcess, is_global_zero
from alcycle.classifier import Classifier, ClassifierSettings, Optimisation
from alcycle.features import describe, open_embeddings, pretrained_backbone
from alcycle.head import HeadOnly, RefreshFromEmbeddings
from alcycle.training import lightning_fit, single_threaded
from alcycle.fileio import atomic_write_csv
from alcycle.contract import Stage, cached
from alcycle.layout import Layout
from alcycle.params import Params, ParamsError
from alcycle.pool import class_index, cycle_number, read_labeled, read_manifest, rows_of, split_rows
from alcycle.methods import SEMI_SUPERVISED
from alcycle.semi import Method, PoolCallback, PoolRows, Schedule

_L = Layout()
STAGE = Stage(
    name="train",
    # data/annotations: the cycle number (CEAL's threshold) is the number of batches.
    # data/features: with a frozen backbone only the head trains, on embed's cached features.
    deps=(_L.labeled, _L.annotations, _L.manifest, _L.pixels, _L.pretrained, _L.features),
    # Not select: a strategy switch re-runs only extract onwards (train.loss_prediction.fit
    # says whether to fit the module learning_loss reads; params.py checks it against the strategy).
    params=("seed", "classes", "train", *FIT_KEYS),
    outs=(cached(_L.model), cached(_L.pseudo_labels)),
    code=("backbones", "classifier.py", "augment.py", "loss_prediction.py", "training.py", "inference.py",
          "checkpoints.py", "rng.py", "semi.py", "propagation.py", "faiss_ops.py", "features.py", "head.py",
          "pixel_store.py", "fixmatch.py", "compute.py", "bgadl.py", "gan.py", "synthesised.py"),
)


def build_classifier(params: Params, in_channels: int) -> Classifier:
    """The classifier ``params.train`` describes (with a loss prediction module when ``loss_prediction.fit``)."""
    tp = params.train
    settings = ClassifierSettings(
        num_classes=len(params.classes),
        optimisation=Optimisation(tp.lr, tp.momentum, tp.weight_decay, tp.steps),
        seed=params.seed,
        augment=tp.augment,
        freeze_backbone=tp.freeze_backbone,
        dropout=tp.dropout,
        loss_prediction=tp.loss_prediction if tp.loss_prediction.fit else None,
    )
    # Weight initialisation draws from torch's global generator: backbone first, then the head.
    return Classifier(build_backbone(tp.backbone, in_channels), settings)


def _loader(data: TensorDataset | PoolRows, params: Params, stream: int, mu: int = 1) -> DataLoader:
    """Batches of ``mu`` × batch_size per process, drawn with replacement, so the step count
    depends neither on how many items there are nor on how many processes train."""
    tp = params.train
    generator = rng.loader_generator(params.seed, stream)
    batch_size = mu * tp.batch_size
    sampler = PerProcess(lambda world: RandomSampler(data, replacement=True, num_samples=world * tp.steps * batch_size,
                                                     generator=generator))
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=0)


def fit(
    model: Classifier,
    pixels: np.ndarray,
    targets: np.ndarray,
    params: Params,
    refresh: PoolCallback | None = None,
) -> dict[str, int]:
    """Train ``model`` for ``train.steps`` steps on uint8 ``pixels`` (n, C, H, W) and ``targets`` (n,).

    With ``refresh``, every step also takes ``refresh.mu`` × batch_size items of the pool
    (pixels, rows), read from ``refresh.pool_pixels`` when drawn, which ``refresh`` gives
    their pseudo-labels. Training-time dropout and the loaders' base seeds draw from
    torch's global generator: ``run`` seeds it (``rng.seeded``). ``model`` ends in eval mode;
    returns ``fitted``: the optimiser steps taken and how many processes took them.
    """
    loaders = {"labeled": _loader(TensorDataset(torch.from_numpy(np.array(pixels)), torch.from_numpy(targets)),
                                  params, stream=rng.LABELED_LOADER)}
    callbacks = []
    if refresh is not None and len(refresh.pool_pixels):  # FixMatch's is empty once all is labeled
        # Each pool batch is read from the store when drawn: the pool is never copied whole.
        loaders["pool"] = _loader(PoolRows(refresh.pool_pixels), params, stream=rng.POOL_LOADER, mu=refresh.mu)
        callbacks.append(refresh)
    trainer = lightning_fit(model, loaders, max_steps=params.train.steps, callbacks=callbacks, compute=params.compute)
    model.eval()
    return fitted(trainer)


def fitted(trainer: pl.Trainer | None) -> dict[str, int]:
    """What the checkpoint records of a fit: optimiser steps and processes (0 and 1 without a fit)."""
    return {"steps": trainer.global_step, "processes": trainer.world_size} if trainer else {"steps": 0, "processes": 1}


def pseudo_labeller(params: Params, cycle: int) -> Method | None:
    """The ``train.semi_supervised`` method for this cycle (None for ``none``)."""
    build = SEMI_SUPERVISED.load(params.train.semi_supervised)
    return build(params.train, len(params.classes), cycle) if build else None


def initial_model(layout: Layout, params: Params, in_channels: int) -> Classifier:
    """A fresh classifier; its backbone comes from the pretrain stage when ``train.init`` says so.

    Its weights draw from torch's global generator: ``run`` calls this under ``rng.seeded``.
    """
    model = build_classifier(params, in_channels)
    if params.train.init == "pretrained":
        pretrained_backbone(layout.pretrained, params.train.backbone, in_channels, into=model.backbone)
    return model


def run(layout: Layout, params: Params) -> Classifier:
    """Train on the labeled pool and write ``layout.model`` (and the pseudo-labels used, if any)."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    if params.train.freeze_backbone:
        return run_frozen(layout, params)
    manifest = read_manifest(layout.manifest)
    labeled = read_labeled(layout.labeled)
    pixels = np.load(layout.pixels, mmap_mode="r")
    schedule = pseudo_labeller(params, cycle_number(layout.annotations))
    pool_rows = split_rows(manifest, "pool")
    refresh, trained = None, fitted(None)
    # One seeded stream of global draws for the whole run, weight initialisation then
    # training-time dropout, so each cycle's fresh model is reproducible (rng.py).
    with rng.seeded(params.seed):
        model = initial_model(layout, params, in_channels=pixels.shape[1])
        if len(labeled):
            pool_part, made = split_labeled(manifest, labeled)
            rows = rows_of(manifest, pool_part["id"])
            targets = class_index(params.classes, pool_part["label"])
            if schedule is not None:
                refresh = _refresh(schedule, pixels, manifest, pool_rows, rows, targets, params)
            images = pixels[rows]
            if len(made):  # GAAL's labeled synthesised images, read from the annotation store
                images = np.concatenate([images, synthesised.read_pixels(layout, made["id"].tolist(),
                                                                         pixels.shape[1:])])
                targets = np.concatenate([targets, class_index(params.classes, made["label"])])
            # BGADL: generated variants of the labeled images join them (train.bgadl.variants; none by default).
            images, classes = bgadl.augment(images, targets, params.train.bgadl, len(params.classes),
                                            params.seed, params.compute)
            trained = fit(model, images, classes, params, refresh)
    if not is_global_zero():
        return model  # another process of a distributed fit: rank zero writes
    save_model(layout.model, model, trained_ids(labeled), params.classes, trained)
    _write_pseudo_labels(layout, manifest, pool_rows, refresh, params.classes)
    return model


def split_labeled(manifest: pd.DataFrame, labeled: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labeled pool's manifest items and its synthesised ones (GAAL), in pool order, without the
    synthesised images an annotator called unrecognisable: those never train."""
    usable = labeled[labeled["label"] != synthesised.UNRECOGNISABLE]
    in_manifest = usable["id"].isin(manifest["id"])
    return usable[in_manifest], usable[~in_manifest]


def trained_ids(labeled: pd.DataFrame) -> list[str]:
    """The labeled ids a model trains on: all but the unrecognisable synthesised images."""
    return labeled.loc[labeled["label"] != synthesised.UNRECOGNISABLE, "id"].tolist()


def _refresh(schedule, pixels, manifest, pool_rows, labeled_rows, targets, params) -> PoolCallback:
    labels = np.full(len(pool_rows), -1, dtype=np.int64)
    position = {row: i for i, row in enumerate(pool_rows)}
    labels[[position[r] for r in labeled_rows]] = targets
    # A lazy view: pixels[pool_rows] would copy every pool image out of the memory map.
    return schedule.callback(pixel_store.Rows(pixels, pool_rows), labels, params.seed,
                             from_start=params.train.init == "pretrained")


def _write_pseudo_labels(layout, manifest, pool_rows, refresh, classes) -> None:
    """The pseudo-labels in force at the end of training (header only when there were none)."""
    table = pd.DataFrame({"id": pd.Series(dtype=str), "label": pd.Series(dtype=str),
                          "weight": pd.Series(dtype=float)})
    if refresh is not None and refresh.latest is not None:
        used = refresh.latest.weights > 0
        table = pd.DataFrame({
            "id": manifest["id"].to_numpy()[pool_rows][used],
            "label": np.asarray(classes)[refresh.latest.targets[used]],
            "weight": np.round(refresh.latest.weights[used], 6),
        })
    atomic_write_csv(layout.pseudo_labels, table)


def fit_head(model: Classifier, features: np.ndarray, targets: np.ndarray, params: Params,
             refresh: RefreshFromEmbeddings | None = None) -> dict[str, int]:
    """``fit`` for a frozen backbone: train ``model``'s head for ``train.steps`` steps on its
    features (n, D) and ``targets`` (n,), never running the backbone. The same loaders,
    steps and dropout draws as ``fit``; ``refresh`` reads the pool's cached features."""
    loaders = {"labeled": _loader(TensorDataset(torch.from_numpy(np.array(features)), torch.from_numpy(targets)),
                                  params, stream=rng.LABELED_LOADER)}
    callbacks = []
    if refresh is not None:
        pool = PoolRows(pixel_store.Rows(refresh.embeddings, refresh.pool_rows))
        loaders["pool"] = _loader(pool, params, stream=rng.POOL_LOADER)
        callbacks.append(refresh)
    with single_threaded():
        trainer = lightning_fit(HeadOnly(model), loaders, max_steps=params.train.steps, callbacks=callbacks,
                                compute=params.compute)
    model.eval()
    return fitted(trainer)


def run_frozen(layout: Layout, params: Params) -> Classifier:
    """``run`` with ``train.freeze_backbone``: the pretrained backbone and a head fitted on embed's
    features of the labeled rows (and of the pool, under pseudo-labels); ``model.pt`` is whole."""
    manifest = read_manifest(layout.manifest)
    labeled = read_labeled(layout.labeled)
    embeddings = open_embeddings(layout.features, describe(layout.pretrained, params.train.backbone), len(manifest))
    in_channels = np.load(layout.pixels, mmap_mode="r").shape[1]  # the header only
    schedule = pseudo_labeller(params, cycle_number(layout.annotations))
    pool_rows = split_rows(manifest, "pool")
    refresh, trained = None, fitted(None)
    with rng.seeded(params.seed):  # as in ``run``: initialisation, then training-time dropout
        model = initial_model(layout, params, in_channels)
        if len(labeled):
            pool_part, made = split_labeled(manifest, labeled)
            if len(made):
                raise ParamsError(f"{layout.labeled} holds {len(made)} synthesised image(s) (GAAL), which "
                                        f"embed's cached features do not cover: set train.freeze_backbone to false")
            rows = rows_of(manifest, pool_part["id"])
            targets = class_index(params.classes, pool_part["label"])
            if schedule is not None:
                # params.py refuses FixMatch here: it needs the backbone to see its views.
                assert isinstance(schedule, Schedule), "only a pseudo-labeller trains a frozen backbone's head"
                refresh = RefreshFromEmbeddings(schedule.labeller, embeddings, pool_rows,
                                                _pool_labels(pool_rows, rows, targets), schedule.every,
                                                from_start=True)  # the features are pretrained ones
            trained = fit_head(model, embeddings[rows], targets, params, refresh)
    if not is_global_zero():
        return model
    save_model(layout.model, model, trained_ids(labeled), params.classes, trained)
    _write_pseudo_labels(layout, manifest, pool_rows, refresh, params.classes)
    return model


def _pool_labels(pool_rows: np.ndarray, labeled_rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N_pool,) int64: each pool row's class index, -1 where unlabeled (``pool_rows`` is sorted)."""
    labels = np.full(len(pool_rows), -1, dtype=np.int64)
    positions = np.searchsorted(pool_rows, labeled_rows)
    if not np.array_equal(pool_rows[np.minimum(positions, len(pool_rows) - 1)], labeled_rows):
        raise KeyError("a labeled item is not in the pool split")  # as ``_refresh``'s lookup would
    labels[positions] = targets
    return labels
