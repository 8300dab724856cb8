"""Synthetic image folders for the scale benchmarks: seeded, learnable classes, PNG files in class folders.

    python benchmarks/synthetic_images.py OUT --n 10000 [--classes 10] [--size 64] [--seed 0] [--workers N]

Writes ``OUT/class-<k>/<index>.png`` (RGB, ``size`` × ``size``), ``n`` images spread evenly over
the classes. Class k is a stripe pattern at angle π·k/classes over a class tint, with a random
phase, frequency jitter, brightness and pixel noise per image, so a small CNN can learn the
classes and no two images are alike. Image ``i`` depends only on (seed, i): the same folder
whatever the number of workers. ``benchmarks/scale.py`` (and ``prepare_store.py``) import
``write_images``.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

CHUNK = 500  # images per task


def image(index: int, classes: int, size: int, seed: int) -> tuple[int, np.ndarray]:
    """(class, uint8 (size, size, 3)) of image ``index``."""
    rng = np.random.default_rng([seed, index])
    label = index % classes
    angle = np.pi * label / classes
    y, x = np.mgrid[0:size, 0:size] / size
    frequency = 4 + rng.uniform(-0.5, 0.5)
    wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    tint = 0.5 + 0.4 * np.array([np.cos(angle), np.sin(angle), np.cos(2 * angle)])
    pixels = (0.5 + 0.35 * wave[..., None]) * tint * rng.uniform(0.7, 1.0) * 255
    pixels += rng.normal(0, 12, pixels.shape)
    return label, np.clip(pixels, 0, 255).astype(np.uint8)


def _write_range(root: Path, start: int, stop: int, classes: int, size: int, seed: int) -> int:
    for index in range(start, stop):
        label, pixels = image(index, classes, size, seed)
        Image.fromarray(pixels, mode="RGB").save(root / f"class-{label}" / f"{index:07d}.png")
    return stop - start


def write_images(root: Path, n: int, classes: int = 10, size: int = 64, seed: int = 0,
                 workers: int | None = None) -> list[str]:
    """Write ``n`` images under ``root`` (which must not hold other images); returns the class names."""
    names = [f"class-{k}" for k in range(classes)]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    ranges = [(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]
    workers = workers or len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(workers) as pool:
        written = sum(pool.map(_write_range, *zip(*[(root, a, b, classes, size, seed) for a, b in ranges])))
    assert written == n
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    write_images(args.out, args.n, args.classes, args.size, args.seed, args.workers)


if __name__ == "__main__":
    main()
