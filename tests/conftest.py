"""Shared fixtures: a valid params.yaml for tiny projects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from alcycle.params import Params, load_params
from alcycle.scaffold import MNIST_CLASSES, render_params


def write_params(folder: Path, **overrides: str) -> Path:
    """A params.yaml rendered from the shipped template, with text replacements applied."""
    text = render_params("mnist", "", MNIST_CLASSES, 28, 1, 0)
    for old, new in overrides.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "params.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def params(tmp_path: Path) -> Params:
    return load_params(write_params(tmp_path))


def make_params(tmp_path: Path, classes: tuple[str, ...] = ("cat", "dog"), **prepare: object) -> Params:
    """The shipped params for a folder source at ``tmp_path/images`` (16 px, gray, 20% test);
    ``prepare`` overrides keys of that section."""
    raw = yaml.safe_load(render_params("folder", str(tmp_path / "images"), classes, 16, 1, 0))
    raw["prepare"].update(prepare)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_params(path)


def toy_digits(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by which half of a 12×12 image is bright."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, size=n)
    pixels = rng.integers(0, 60, size=(n, 1, 12, 12)).astype(np.uint8)
    for i, t in enumerate(targets):
        pixels[i, 0, :, 6 * t : 6 * t + 6] += 180
    return pixels, targets.astype(np.int64)
