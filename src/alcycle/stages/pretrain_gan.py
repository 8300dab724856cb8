"""pretrain-gan: the GAN ASAL searches, learned from every image with no label, and its features of each image.

``gan.method``: ``dcgan`` or ``wgan_gp`` trains a small GAN (``alcycle.gan``) on the pixels and
writes, in ``models/gan/``, its networks and feature map (``gan.pt``), the ``gan.features`` of
every manifest row (``features.npy``, (N, K) float32: where ASAL matches generated images to
pool images) and a grid of 64 generated images (``samples.png``) to judge the generator by eye.
``none`` writes only a note that there is no GAN; strategy asal refuses it.

The stage reads only the pixels, so new labels never make it run again.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torchvision.utils import save_image

from alcycle import rng
from alcycle.checkpoints import atomic_torch_save
from alcycle.compute import FIT_KEYS, is_global_zero
from alcycle.contract import Stage, cached
from alcycle.fileio import replacing_folder
from alcycle.gan import train_gan
from alcycle.layout import Layout
from alcycle.params import Params

_L = Layout()
STAGE = Stage(
    name="pretrain-gan",
    deps=(_L.pixels,),
    params=("seed", "gan", *FIT_KEYS),
    outs=(cached(_L.gan),),
    code=("gan.py", "simclr.py", "classifier.py", "training.py", "checkpoints.py", "rng.py", "faiss_ops.py",
          "compute.py", "fileio.py"),
)
SAMPLES = 64  # images in samples.png


def run(layout: Layout, params: Params) -> dict:
    """Write ``layout.gan``: the GAN, its features of every image and a sample grid, or a note that there is no GAN."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    g = params.gan
    if g.method == "none":
        with replacing_folder(layout.gan) as folder:
            atomic_torch_save(folder / "gan.pt", {"method": "none", "note": "no GAN; set gan.method for asal"})
        return {"method": "none"}
    pixels = np.load(layout.pixels, mmap_mode="r")
    gan = train_gan(pixels, g.method, g.latent_dim, g.width, g.steps, g.batch_size, g.lr, g.features, g.pca_dim,
                    params.seed, params.compute)
    if not is_global_zero():
        return {"method": g.method}  # another process of a distributed fit: rank zero writes
    features = gan.pool_features(pixels)
    with torch.no_grad():
        z = torch.randn(SAMPLES, g.latent_dim, generator=rng.gan_generator(params.seed))
        samples = gan.generator(z) * 0.5 + 0.5
    with replacing_folder(layout.gan) as folder:
        atomic_torch_save(folder / "gan.pt", gan.payload())
        np.save(folder / "features.npy", features)
        save_image(samples, folder / "samples.png", nrow=8)
    print(f"pretrain-gan: {g.method} written to {layout.gan}; {features.shape[1]} {g.features} features "
          f"of {len(features)} images")
    return {"method": g.method, "features": features}
