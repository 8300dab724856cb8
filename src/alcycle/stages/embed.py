"""embed: the frozen backbone's features of every image, computed once per backbone.

With ``train.freeze_backbone`` the features of an image never change from cycle to
cycle, so this stage writes them once (``data/features/embeddings.npy``, (N, D)
float32, in chunks: O(chunk) in memory) and ``train`` and ``extract`` run only the
head over them. It reads the pixels and the pretrained weights, never a label, so
new labels never re-run it. Without a frozen backbone it writes only a note saying
so (DVC needs the output).
"""

from __future__ import annotations

import numpy as np

from alcycle.compute import ray_address
from alcycle.contract import Stage, cached
from alcycle.features import EMBEDDINGS, describe, pretrained_backbone, write_embeddings, write_source
from alcycle.layout import Layout
from alcycle.params import Params

_L = Layout()
STAGE = Stage(
    name="embed",
    # The pixels and the backbone's weights only: new labels never re-run it.
    deps=(_L.pixels, _L.pretrained),
    # What changes the features, and whether there are any; extract.batch_size is the inference batch.
    params=("train.backbone", "train.freeze_backbone", "train.init", "extract.batch_size"),
    outs=(cached(_L.features),),
    code=("features.py", "backbones", "checkpoints.py", "classifier.py", "fileio.py", "compute.py", "ray_ops.py"),
)


def run(layout: Layout, params: Params) -> dict:
    """Write ``layout.features``: the embeddings and what they came from, or the note that there are none."""
    folder = layout.features
    folder.mkdir(parents=True, exist_ok=True)
    if not params.train.freeze_backbone:
        (folder / EMBEDDINGS).unlink(missing_ok=True)
        source: dict = {"frozen": False}
    else:
        pixels = np.load(layout.pixels, mmap_mode="r")
        backbone = pretrained_backbone(layout.pretrained, params.train.backbone, in_channels=pixels.shape[1])
        rows, dim = write_embeddings(backbone, pixels, folder / EMBEDDINGS, params.extract.batch_size,
                                     cluster=ray_address(params.compute), pretrained=layout.pretrained)
        source = {**describe(layout.pretrained, params.train.backbone), "rows": rows, "dim": dim}
    write_source(folder, source)
    return source
