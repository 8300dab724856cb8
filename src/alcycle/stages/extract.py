"""extract: one pass over every item, writing class probabilities and embeddings.

These two arrays are what every strategy and the evaluation read; row i belongs to
manifest row i.
"""

from __future__ import annotations

import numpy as np

from alcycle.fileio import atomic_save_npy
from alcycle.layout import Layout
from alcycle.models import load_model, predict
from alcycle.params import Params


def run(layout: Layout, params: Params) -> tuple[np.ndarray, np.ndarray]:
    model, _ = load_model(layout.model)
    pixels = np.load(layout.pixels, mmap_mode="r")
    probs, embeddings = predict(model, pixels, params.extract.batch_size)
    atomic_save_npy(layout.extracted / "probs.npy", probs)
    atomic_save_npy(layout.extracted / "embeddings.npy", embeddings)
    return probs, embeddings
