"""What a trained classifier says about images: probabilities, embeddings, predicted loss, MC passes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from alcycle import rng
from alcycle.classifier import Classifier
from alcycle.features import atomic_memmap
from alcycle.training import single_threaded


def predict(model: Classifier, pixels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, C) and embeddings (N, D), float32, for uint8 ``pixels`` (N, C, H, W)."""
    outputs = predict_all(model, pixels, batch_size)
    return outputs["probs"], outputs["embeddings"]


@torch.inference_mode()
def predict_all(model: Classifier, pixels: np.ndarray, batch_size: int,
                mc_samples: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Everything the model can say about each image, float32, one row per image:

    probs (N, C) and embeddings (N, D) always; predicted_loss (N,) when the model has a
    loss prediction module; mc_probs (N, T, C) with T = ``mc_samples`` when it has
    dropout: T passes of dropout + head over the embeddings, masks drawn from ``seed``.
    Dropout sits only before the head, so the backbone runs once, not T times.
    Memory: O(N·(C + D)) for the outputs, one batch of pixels at a time.
    """
    was_training = model.training
    model.eval()
    parts = [batch_outputs(model, pixels[start : start + batch_size]) for start in range(0, len(pixels), batch_size)]
    model.train(was_training)
    result = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else {}
    return with_mc_probs(model, result, mc_samples, seed)


@torch.inference_mode()
def batch_outputs(model: Classifier, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """``predict_all``'s arrays for one batch of uint8 ``pixels`` (B, C, H, W), the model in eval mode."""
    features = model.embed(torch.from_numpy(np.array(pixels)))  # a copy, even of a memmap
    outputs = {"probs": torch.softmax(model.head(features), dim=1).numpy().astype(np.float32),
               "embeddings": features.numpy().astype(np.float32)}
    if model.loss_module is not None and model.taps is not None:
        outputs["predicted_loss"] = model.loss_module(model.taps.latest()).numpy().astype(np.float32)
    return outputs


def with_mc_probs(model: Classifier, outputs: dict[str, np.ndarray], mc_samples: int, seed: int
                  ) -> dict[str, np.ndarray]:
    """``outputs`` and, when the model has dropout, its MC-dropout passes over their embeddings."""
    if model.settings.dropout > 0 and mc_samples > 0:
        outputs["mc_probs"] = mc_dropout_probs(model, outputs["embeddings"], mc_samples, seed)
    return outputs


class ClassifierBatches:
    """``batch_outputs`` of the checkpoint ``model_path`` over the pixel store ``pixels_path``,
    batch by batch, for ``ray_ops.map_batches``: paths travel to the workers, each worker
    loads the model and opens the store once."""

    def __init__(self, model_path: Path, pixels_path: Path, batch_size: int) -> None:
        self.model_path, self.pixels_path, self.batch_size = model_path, pixels_path, batch_size
        self.model: Classifier | None = None

    def __call__(self, start: int) -> dict[str, np.ndarray]:
        if self.model is None:
            from alcycle.checkpoints import load_model

            self.model, _ = load_model(self.model_path)
            self.pixels = np.load(self.pixels_path, mmap_mode="r")
        return batch_outputs(self.model, self.pixels[start : start + self.batch_size])


def predict_all_on_cluster(address: str, model: Classifier, model_path: Path, pixels_path: Path, batch_size: int,
                           mc_samples: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """``predict_all`` with the batches run as Ray Data batch inference on the cluster at ``address``.

    The same batches through the same code as the local loop, so the arrays are the same, row
    for row; the MC-dropout passes (the head alone, over the gathered embeddings) run here,
    as in ``predict_all``. ``model`` is the checkpoint at ``model_path``, loaded here too.
    Holds every output in memory; extract writes them instead (``write_all`` over
    ``cluster_batches``).
    """
    rows = len(np.load(pixels_path, mmap_mode="r"))  # the header only
    outputs: dict[str, np.ndarray] = {}
    for covered, batch in cluster_batches(address, model_path, pixels_path, batch_size):
        for name, values in batch.items():
            if name not in outputs:
                outputs[name] = np.empty((rows, *values.shape[1:]), dtype=np.float32)
            outputs[name][covered] = values
    return with_mc_probs(model, outputs, mc_samples, seed)


def local_batches(model: Classifier, pixels: np.ndarray, batch_size: int
                  ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """(rows, ``batch_outputs``) for each batch of ``pixels`` in order, the model in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(pixels), batch_size):
            yield slice(start, start + batch_size), batch_outputs(model, pixels[start : start + batch_size])
    finally:
        model.train(was_training)


def cluster_batches(address: str, model_path: Path, pixels_path: Path, batch_size: int
                    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """``local_batches``' batches computed on the Ray cluster at ``address``, in the order they arrive."""
    from alcycle.ray_ops import map_batches

    work = ClassifierBatches(Path(model_path).resolve(), Path(pixels_path).resolve(), batch_size)
    rows = len(np.load(pixels_path, mmap_mode="r"))  # the header only
    for batch in map_batches(address, rows, batch_size, work):
        yield batch.pop("row"), batch


def write_all(model: Classifier, batches: Iterable[tuple[slice | np.ndarray, dict[str, np.ndarray]]], rows: int,
              folder: Path, batch_size: int, mc_samples: int = 0, seed: int = 0) -> dict[str, Path]:
    """``predict_all``'s arrays written to ``folder/<name>.npy`` as the ``batches`` (rows, outputs)
    arrive, in any order: O(batch) in memory, however many rows. Each file appears only whole.

    The MC-dropout passes run afterwards over the written embeddings, chunk by chunk
    (``write_mc_probs``), so they too never hold more than a chunk.
    """
    written: dict[str, Path] = {}
    with ExitStack() as files:
        arrays: dict[str, np.ndarray] = {}
        for covered, batch in batches:
            for name, values in batch.items():
                if name not in arrays:
                    written[name] = folder / f"{name}.npy"
                    arrays[name] = files.enter_context(atomic_memmap(written[name], (rows, *values.shape[1:])))
                arrays[name][covered] = values
    if model.settings.dropout > 0 and mc_samples > 0:
        written["mc_probs"] = folder / "mc_probs.npy"
        embeddings = np.load(written["embeddings"], mmap_mode="r")
        write_mc_probs(model, embeddings, written["mc_probs"], batch_size, mc_samples, seed)
    return written


@torch.inference_mode()
def mc_dropout_probs(model: Classifier, embeddings: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """(N, T, C) float32 class probabilities of T passes with fresh dropout masks on the features (N, D)."""
    keep = 1.0 - model.settings.dropout
    generator = rng.mc_dropout_generator(seed)
    features = torch.from_numpy(embeddings)
    passes = []
    for _ in range(samples):
        mask = torch.bernoulli(torch.full_like(features, keep), generator=generator) / keep
        passes.append(torch.softmax(model.head(features * mask), dim=1))
    return torch.stack(passes, dim=1).numpy().astype(np.float32)


@torch.inference_mode()
def write_mc_probs(model: Classifier, embeddings: np.ndarray, path: Path, batch_size: int,
                   samples: int, seed: int) -> None:
    """``mc_dropout_probs`` written to ``path`` (N, T, C) float32, pass by pass (T = ``samples``),
    each pass chunk by chunk in row order: the masks are the same draws as one full pass's.

    On one thread: the head's small products cost less than waking a second thread for each
    (at 10⁵ rows, chunks of 512: 3.4 s on one thread, 39–72 s on two beside another job, 5.9 s
    for one full pass; docs/benchmarks.md, "Extract's memory")."""
    keep = 1.0 - model.settings.dropout
    generator = rng.mc_dropout_generator(seed)
    n = len(embeddings)
    was_training = model.training
    model.eval()
    try:
        with single_threaded(), atomic_memmap(path, (n, samples, model.head.out_features)) as mc:
            for t in range(samples):
                for start in range(0, n, batch_size):
                    chunk = torch.from_numpy(np.array(embeddings[start : start + batch_size]))
                    mask = torch.bernoulli(torch.full_like(chunk, keep), generator=generator) / keep
                    mc[start : start + len(chunk), t] = torch.softmax(model.head(chunk * mask), dim=1).numpy()
    finally:
        model.train(was_training)
