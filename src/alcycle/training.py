"""The one way alcycle runs a Lightning Trainer: one CPU epoch, deterministic, quiet."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader


def lightning_fit(model: pl.LightningModule, loaders: DataLoader | dict[str, DataLoader], max_steps: int = -1,
                  callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """One epoch of ``loaders`` (at most ``max_steps`` steps) with Lightning on the CPU, deterministic,
    with no logger, checkpoint, progress bar or model summary: each stage prints its own progress.

    A dict of loaders gives each step one batch of each, named by its key, until the
    shortest loader ends (Lightning's ``CombinedLoader`` in ``min_size`` mode).
    """
    trainer = pl.Trainer(max_epochs=1, max_steps=max_steps, accelerator="cpu", devices=1, deterministic=True,
                         logger=False, callbacks=list(callbacks), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        # One process on a small machine: extra loader workers would only compete with training.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # Lightning's own use of a deprecated torch pytree API: nothing a user can act on.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
        data = CombinedLoader(loaders, mode="min_size") if isinstance(loaders, dict) else loaders
        trainer.fit(model, train_dataloaders=data)
    return trainer


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
