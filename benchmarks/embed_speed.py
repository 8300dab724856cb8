"""Benchmark: the embed stage's forward pass, channels-last in batches of 32 against plain batches of 500.

    python benchmarks/embed_speed.py [--n 3000] [--repeats 3]

``features.write_embeddings`` runs a channels-last copy of the backbone on
``FORWARD_BATCH`` (32) images at a time; before, it ran the backbone as built on whole
``extract.batch_size`` (500) chunks. Both are timed here side by side, interleaved, on
random uint8 pixels for the small CNN (28×28 gray and 64×64 RGB) and ResNet-18
(64×64 RGB), and their features compared. Prints images per second and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alcycle.backbones import build_backbone
from alcycle.classifier import Classifier
from alcycle.features import write_embeddings

CASES = (("small_cnn", 1, 28), ("small_cnn", 3, 64), ("resnet18", 3, 64))
CHUNK = 500


@torch.inference_mode()
def plain(backbone: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    """The previous way: the module as built, one contiguous 500-image batch at a time."""
    backbone.eval()
    return np.concatenate([backbone(Classifier.to_input(torch.from_numpy(pixels[i : i + CHUNK]))).numpy()
                           for i in range(0, len(pixels), CHUNK)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images per timing\n")
    print("| backbone | input | plain, batch 500 | channels-last, batch 32 | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    for name, channels, size in CASES:
        torch.manual_seed(0)
        backbone = build_backbone(name, channels)
        pixels = np.random.default_rng(0).integers(0, 256, (args.n, channels, size, size), dtype=np.uint8)
        best = {"plain": float("inf"), "fast": float("inf")}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "embeddings.npy"
            for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
                start = time.perf_counter()
                reference = plain(backbone, pixels)
                best["plain"] = min(best["plain"], time.perf_counter() - start)
                start = time.perf_counter()
                write_embeddings(backbone, pixels, path, CHUNK)
                best["fast"] = min(best["fast"], time.perf_counter() - start)
            diff = float(np.abs(np.load(path) - reference).max())
        rates = {k: args.n / v for k, v in best.items()}
        print(f"| {name} | {channels}×{size}×{size} | {rates['plain']:,.0f} img/s | {rates['fast']:,.0f} img/s "
              f"| {rates['fast'] / rates['plain']:.1f}× | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
