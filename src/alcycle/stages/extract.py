"""extract: one pass over every item, writing what the model says about it.

probs.npy (N, C) and embeddings.npy (N, D) always; mc_probs.npy (N, T, C) when the
model has dropout (``extract.mc_samples`` passes, for BALD) and predicted_loss.npy (N,)
when it has a loss prediction module (for Learning Loss). Row i belongs to manifest
row i. These arrays are what every strategy and the evaluation read.
"""

from __future__ import annotations

import numpy as np

from alcycle.fileio import atomic_save_npy
from alcycle.contract import Stage, cached
from alcycle.layout import Layout
from alcycle.checkpoints import load_model
from alcycle.inference import predict_all
from alcycle.params import Params

_L = Layout()
STAGE = Stage(
    name="extract",
    deps=(_L.model, _L.pixels),
    params=("seed", "extract"),
    outs=(cached(_L.extracted),),
    code=("checkpoints.py", "backbones", "classifier.py", "loss_prediction.py", "inference.py", "rng.py"),
)


def run(layout: Layout, params: Params) -> dict[str, np.ndarray]:
    model, _ = load_model(layout.model)
    pixels = np.load(layout.pixels, mmap_mode="r")
    outputs = predict_all(model, pixels, params.extract.batch_size, params.extract.mc_samples, params.seed)
    for name, array in outputs.items():
        atomic_save_npy(layout.extracted / f"{name}.npy", array)
    return outputs
