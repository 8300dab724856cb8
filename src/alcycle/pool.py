"""The pool table: one row per item, keyed by a stable string id.

Every array that stages exchange (pixels, probabilities, embeddings) has one row per
manifest row, in manifest order. Conversion between ids and row indices lives here, and
so does the cycle number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alcycle.annotations.store import list_batches
from alcycle.errors import BadFileError

MANIFEST_COLUMNS = ["id", "path", "split"]
LABELED_COLUMNS = ["id", "label", "cycle", "source", "annotator"]
SPLITS = ("pool", "test")


def cycle_number(annotations: Path) -> int:
    """The cycle number: how many annotation batches ``annotations`` holds (batch k labels cycle k).

    Not the labeled pool's largest ``cycle``: after a removal batch that removes the newest
    labels, the pool no longer shows the batch, but the batch still counts.
    """
    return len(list_batches(annotations))


def read_manifest(path: Path) -> pd.DataFrame:
    """Read ``manifest.csv`` (id, path, split), in its stored row order."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise BadFileError(f"{path}: missing column(s) {missing}; expected {MANIFEST_COLUMNS}")
    return frame


def read_labeled(path: Path) -> pd.DataFrame:
    """Read the labeled pool (id, label, cycle, source, annotator); an absent file is an empty pool.

    Pools written before annotators were recorded lack that column: it reads as "".
    """
    if not Path(path).exists():
        return empty_labeled()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) == LABELED_COLUMNS[:-1]:
        frame["annotator"] = ""
    if list(frame.columns) != LABELED_COLUMNS:
        raise BadFileError(f"{path}: columns {list(frame.columns)}; expected {LABELED_COLUMNS}")
    frame["cycle"] = frame["cycle"].astype(int)
    return frame


def empty_labeled() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=int if c == "cycle" else str) for c in LABELED_COLUMNS})


def rows_of(manifest: pd.DataFrame, ids: pd.Series | list[str]) -> np.ndarray:
    """Row indices (int64) of ``ids`` in the manifest; an unknown id raises KeyError."""
    index = pd.Index(manifest["id"])
    rows = index.get_indexer(list(ids))
    if (rows < 0).any():
        unknown = [i for i, r in zip(ids, rows) if r < 0]
        raise KeyError(f"ids not in the manifest: {unknown[:5]}")
    return rows.astype(np.int64)


def split_rows(manifest: pd.DataFrame, split: str) -> np.ndarray:
    """Row indices of one split, in manifest order."""
    return np.flatnonzero(manifest["split"].to_numpy() == split)


def class_index(classes: tuple[str, ...], labels: pd.Series) -> np.ndarray:
    """Map class names to integer targets in the order of ``params.classes``."""
    lookup = {name: i for i, name in enumerate(classes)}
    return np.array([lookup[label] for label in labels], dtype=np.int64)
