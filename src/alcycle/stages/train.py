"""train: fit a freshly initialised classifier on the labeled pool with a Lightning Trainer.

Reads only the labeled pool, the manifest and the pixels: never the ground truth.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from alcycle.layout import Layout
from alcycle.models import Classifier, save_model
from alcycle.params import Params
from alcycle.pool import class_index, read_labeled, read_manifest, rows_of


def build_classifier(params: Params, in_channels: int) -> Classifier:
    tp = params.train
    return Classifier(
        backbone=tp.backbone,
        in_channels=in_channels,
        num_classes=len(params.classes),
        lr=tp.lr,
        momentum=tp.momentum,
        weight_decay=tp.weight_decay,
        steps=tp.steps,
        augment=tp.augment,
        seed=params.seed,
    )


def fit(model: Classifier, pixels: np.ndarray, targets: np.ndarray, params: Params) -> Classifier:
    """Train ``model`` for ``train.steps`` steps on uint8 ``pixels`` (n, C, H, W) and ``targets`` (n,)."""
    tp = params.train
    data = TensorDataset(torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(targets))
    # Drawing with replacement makes the step count independent of how few labels there are.
    sampler = RandomSampler(
        data,
        replacement=True,
        num_samples=tp.steps * tp.batch_size,
        generator=torch.Generator().manual_seed(params.seed),
    )
    loader = DataLoader(data, batch_size=tp.batch_size, sampler=sampler, num_workers=0)
    trainer = pl.Trainer(
        max_steps=tp.steps,
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        # One process on a 2-core machine: extra loader workers would only compete with training.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, train_dataloaders=loader)
    return model.eval()


def run(layout: Layout, params: Params) -> Classifier:
    """Train on the labeled pool and write ``layout.model``; with no labels, save the initial weights."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    manifest = read_manifest(layout.manifest)
    labeled = read_labeled(layout.labeled)
    pixels = np.load(layout.pixels, mmap_mode="r")
    # Weight initialisation draws from torch's global generator; seeding it here (the
    # stage entry point) makes each cycle's fresh initialisation reproducible.
    pl.seed_everything(params.seed, verbose=False)
    model = build_classifier(params, in_channels=pixels.shape[1])
    if len(labeled):
        rows = rows_of(manifest, labeled["id"])
        fit(model, pixels[rows], class_index(params.classes, labeled["label"]), params)
    save_model(layout.model, model, labeled["id"].tolist(), params.classes)
    return model
