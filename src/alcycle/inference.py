"""What a trained classifier says about images: probabilities, embeddings, predicted loss, MC passes."""

from __future__ import annotations

import numpy as np
import torch

from alcycle import rng
from alcycle.classifier import Classifier


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
    outputs: dict[str, list[np.ndarray]] = {"probs": [], "embeddings": []}
    if model.loss_module is not None:
        outputs["predicted_loss"] = []
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(np.array(pixels[start : start + batch_size]))  # a copy, even of a memmap
        features = model.embed(batch)
        outputs["probs"].append(torch.softmax(model.head(features), dim=1).numpy())
        outputs["embeddings"].append(features.numpy())
        if model.loss_module is not None and model.taps is not None:
            outputs["predicted_loss"].append(model.loss_module(model.taps.latest()).numpy())
    model.train(was_training)
    result = {name: np.concatenate(parts).astype(np.float32) for name, parts in outputs.items()}
    if model.settings.dropout > 0 and mc_samples > 0:
        result["mc_probs"] = mc_dropout_probs(model, result["embeddings"], mc_samples, seed)
    return result


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
