"""train reads the pool from the memory-mapped store in batches, and trains exactly as it did
when the pool was copied into memory (same batches, same order, same weights)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import conftest
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from alcycle import pixel_store
from alcycle.layout import Layout
from alcycle.params import Params, load_params
from alcycle.semi import PoolRows
from alcycle.stages import train


def tiny_project(root: Path, mode: str) -> tuple[Layout, Params]:
    """60 toy digits (every 6th a test item), 8 labeled; 12 steps, pseudo-labels refreshed every 4."""
    layout = Layout(root)
    pixels, targets = conftest.toy_digits(n=60)
    ids = [f"i{k:02d}" for k in range(60)]
    split = ["test" if k % 6 == 0 else "pool" for k in range(60)]
    layout.prepared.mkdir(parents=True)
    pd.DataFrame({"id": ids, "path": [f"images/{i}.png" for i in ids], "split": split}).to_csv(layout.manifest,
                                                                                              index=False)
    np.save(layout.pixels, pixels)
    labeled = [k for k in range(60) if split[k] == "pool"][:8]
    pd.DataFrame({"id": [ids[k] for k in labeled], "label": [str(targets[k]) for k in labeled], "cycle": 0,
                  "source": "x", "annotator": ""}).to_csv(layout.labeled, index=False)
    layout.annotations.mkdir(parents=True)
    params = load_params(conftest.write_params(root, **{
        "  steps: 300": "  steps: 12", "    k: 50": "    k: 5", "    delta: 0.1 ": "    delta: 0.6 ",
        "    every: 100              # re-propagate": "    every: 4              # re-propagate",
        "    every: 100              # re-assign": "    every: 4              # re-assign"}))
    return layout, dataclasses.replace(params, classes=("0", "1"),
                                       train=dataclasses.replace(params.train, semi_supervised=mode))


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["label_propagation", "ceal"])
def test_training_from_the_store_matches_training_from_an_in_memory_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    seen = []
    real_refresh = train._refresh

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        refresh = real_refresh(*args, **kwargs)
        seen.append(type(refresh.pool_pixels))
        return refresh

    monkeypatch.setattr(train, "_refresh", spy)
    layout, params = tiny_project(tmp_path / "store", mode)
    streamed = weights_digest(train.run(layout, params))
    assert seen == [pixel_store.Rows]  # a lazy view of the pool rows, not a copy
    streamed_pseudo = layout.pseudo_labels.read_text()
    assert len(streamed_pseudo.splitlines()) > 1  # the pool did train under pseudo-labels

    # The previous data path: pixels[pool_rows] copied out of the map, a TensorDataset over it.
    monkeypatch.setattr(train.pixel_store, "Rows", lambda pixels, rows: np.array(pixels[rows]))
    monkeypatch.setattr(train, "PoolRows", lambda pool: TensorDataset(torch.from_numpy(np.array(pool)),
                                                                      torch.arange(len(pool))))
    layout, params = tiny_project(tmp_path / "memory", mode)
    assert weights_digest(train.run(layout, params)) == streamed
    assert layout.pseudo_labels.read_text() == streamed_pseudo


def test_pool_rows_yield_what_a_tensor_dataset_over_a_copy_yields(tmp_path: Path) -> None:
    pixels, _ = conftest.toy_digits(n=9)
    np.save(tmp_path / "pixels.npy", pixels)
    rows = np.array([7, 2, 5, 0])
    lazy = PoolRows(pixel_store.Rows(pixel_store.open_pixels(tmp_path / "pixels.npy"), rows))
    copied = TensorDataset(torch.from_numpy(pixels[rows]), torch.arange(4))
    loader = torch.utils.data.DataLoader
    for (a_pixels, a_rows), (b_pixels, b_rows) in zip(loader(lazy, batch_size=3), loader(copied, batch_size=3)):
        assert torch.equal(a_pixels, b_pixels) and a_pixels.dtype == torch.uint8
        assert torch.equal(a_rows, b_rows) and a_rows.dtype == torch.int64
    assert len(lazy) == 4
