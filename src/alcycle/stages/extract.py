"""extract: one pass over every item, writing class probabilities and embeddings.

These two arrays are what every strategy and the evaluation read; row i belongs to
manifest row i.
"""

from __future__ import annotations

import numpy as np
import torch

from alcycle.fileio import atomic_save_npy
from alcycle.layout import Layout
from alcycle.models import Classifier, load_model
from alcycle.params import Params


@torch.inference_mode()
def predict(model: Classifier, pixels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, C) and embeddings (N, D), float32, for uint8 ``pixels`` (N, C, H, W)."""
    model.eval()
    probs, embeddings = [], []
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(np.array(pixels[start : start + batch_size]))  # copy out of the mmap
        features = model.embed(batch)
        probs.append(torch.softmax(model.head(features), dim=1).numpy())
        embeddings.append(features.numpy())
    return np.concatenate(probs).astype(np.float32), np.concatenate(embeddings).astype(np.float32)


def run(layout: Layout, params: Params) -> tuple[np.ndarray, np.ndarray]:
    model, _ = load_model(layout.model)
    pixels = np.load(layout.pixels, mmap_mode="r")
    probs, embeddings = predict(model, pixels, params.extract.batch_size)
    atomic_save_npy(layout.extracted / "probs.npy", probs)
    atomic_save_npy(layout.extracted / "embeddings.npy", embeddings)
    return probs, embeddings
