"""The one way alcycle runs a Lightning Trainer: one epoch, deterministic, quiet, where ``compute`` says."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader

from alcycle.compute import trainer_arguments

if TYPE_CHECKING:
    from alcycle.params import ComputeParams


def lightning_fit(model: pl.LightningModule, loaders: DataLoader | dict[str, DataLoader], max_steps: int = -1,
                  callbacks: Sequence[pl.Callback] = (), compute: ComputeParams | None = None) -> pl.Trainer:
    """One epoch of ``loaders`` (at most ``max_steps`` steps) with Lightning, deterministic, with no
    logger, checkpoint, progress bar or model summary: each stage prints its own progress.

    ``compute``: accelerator, devices, nodes, strategy and precision (None: one CPU process).
    Under DDP every process runs this with its own share of each step's draws (the loaders'
    samplers are ``compute.PerProcess``) and its own dropout stream (``PerRankDropout``).

    A dict of loaders gives each step one batch of each, named by its key, until the
    shortest loader ends (Lightning's ``CombinedLoader`` in ``min_size`` mode).
    """
    trainer = pl.Trainer(max_epochs=1, max_steps=max_steps, deterministic=True, logger=False,
                         callbacks=[*callbacks, PerRankDropout()], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, **trainer_arguments(compute))
    with warnings.catch_warnings():
        # One process on a small machine: extra loader workers would only compete with training.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # Lightning's own use of a deprecated torch pytree API: nothing a user can act on.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
        data = CombinedLoader(loaders, mode="min_size") if isinstance(loaders, dict) else loaders
        trainer.fit(model, train_dataloaders=data)
    return trainer


class PerRankDropout(pl.Callback):
    """Gives each process after the first of a distributed fit its own stream of global draws
    (training-time dropout): ``torch.initial_seed() + rank``. The first process, and a fit on
    one process, keep the stream the stage seeded (``rng.seeded``), so runs on one process
    are unchanged."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank > 0:
            torch.manual_seed(torch.initial_seed() + trainer.global_rank)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Torch's intra-op threads set to one for the block, then restored.

    For small models (a linear head, VAAL's VAE): waking and joining a second thread for
    each operation costs more than the work, and on a shared machine a busy core makes
    every such join wait (a cycle's head training ran over ten times slower; see
    docs/benchmarks.md, "Small k-means and one thread").
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
