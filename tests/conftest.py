"""Shared fixtures: a valid params.yaml for tiny projects."""

from __future__ import annotations

from pathlib import Path

import pytest

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
