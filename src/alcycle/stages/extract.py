"""extract: one pass over every item, writing what the model says about it.

probs.npy (N, C) and embeddings.npy (N, D) always; mc_probs.npy (N, T, C) when the
model has dropout (``extract.mc_samples`` passes, for BALD) and predicted_loss.npy (N,)
when it has a loss prediction module (for Learning Loss). Row i belongs to manifest
row i. These arrays are what every strategy and the evaluation read. They are written
batch by batch into memory maps (O(batch) in memory at any pool size), locally or, with
``compute.ray_address``, as Ray Data batch inference on a cluster.

With a frozen backbone the embeddings are embed's (``data/features``), never copied
here: only the head runs, over them, chunk by chunk (O(chunk) in memory).
"""

from __future__ import annotations

import numpy as np

from alcycle.features import open_embeddings
from alcycle.head import write_head_outputs
from alcycle.contract import Stage, cached
from alcycle.layout import Layout
from alcycle.checkpoints import load_model
from alcycle.classifier import Classifier
from alcycle.compute import ray_address
from alcycle.inference import cluster_batches, local_batches, write_all
from alcycle.params import Params

_L = Layout()
STAGE = Stage(
    name="extract",
    # data/features: a frozen backbone's embeddings, which only the head reads then.
    deps=(_L.model, _L.pixels, _L.features),
    params=("seed", "extract"),
    outs=(cached(_L.extracted),),
    code=("checkpoints.py", "backbones", "classifier.py", "loss_prediction.py", "inference.py", "rng.py", "features.py",
          "head.py", "compute.py", "ray_ops.py"),
)


def run(layout: Layout, params: Params) -> dict[str, np.ndarray]:
    model, saved = load_model(layout.model)
    if model.settings.freeze_backbone:
        return run_frozen(layout, params, model, saved["backbone"]["name"])
    ep = params.extract
    pixels = np.load(layout.pixels, mmap_mode="r")
    address = ray_address(params.compute)
    # On a cluster the same batches through the same code on its nodes, so the same arrays.
    batches = (cluster_batches(address, layout.model, layout.pixels, ep.batch_size) if address
               else local_batches(model, pixels, ep.batch_size))
    written = write_all(model, batches, len(pixels), layout.extracted, ep.batch_size, ep.mc_samples, params.seed)
    return {name: np.load(path, mmap_mode="r") for name, path in written.items()}

def run_frozen(layout: Layout, params: Params, model: Classifier, backbone: str) -> dict[str, np.ndarray]:
    """The head's outputs over embed's features of ``backbone``, as read-only memory maps; the backbone never runs."""
    manifest_rows = len(np.load(layout.pixels, mmap_mode="r"))  # the header only
    embeddings = open_embeddings(layout.features, {"frozen": True, "backbone": backbone}, manifest_rows)
    # An embeddings.npy left by an earlier unfrozen run would be a stale second copy of the features.
    (layout.extracted / "embeddings.npy").unlink(missing_ok=True)
    written = write_head_outputs(model, embeddings, layout.extracted, params.extract.batch_size,
                                 params.extract.mc_samples, params.seed)
    return {name: np.load(path, mmap_mode="r") for name, path in written.items()}
