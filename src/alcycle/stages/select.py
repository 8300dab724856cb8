"""select: the next batch of ``budget`` pool items to label, with their scores.

This module is ``alcycle.stages.select``; it is never run as a script, so it cannot
shadow the standard library's ``select``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alcycle.fileio import atomic_write_csv
from alcycle.layout import Layout
from alcycle.params import Params
from alcycle.pool import read_labeled, read_manifest, split_rows
from alcycle.stages.label_import import list_batches
from alcycle.strategies import SelectionContext, select

QUERY_COLUMNS = ["id", "path", "score", "strategy", "cycle"]


def build_context(manifest: pd.DataFrame, labeled_ids: set[str], probs: np.ndarray, embeddings: np.ndarray):
    """The pool split as a ``SelectionContext``, plus the manifest rows it covers."""
    rows = split_rows(manifest, "pool")
    ids = manifest["id"].to_numpy()[rows]
    context = SelectionContext(
        ids=ids,
        labeled=np.isin(ids, list(labeled_ids)),
        probs=probs[rows],
        embeddings=embeddings[rows],
    )
    return context, rows


def query_table(
    manifest: pd.DataFrame, labeled_ids: set[str], probs: np.ndarray, embeddings: np.ndarray,
    strategy: str, budget: int, rng: np.random.Generator, cycle: int, prepared: str,
) -> pd.DataFrame:
    """The query batch, best first: id, image path, score, strategy and the cycle it was made in.

    ``prepared`` is the folder the manifest's paths are relative to, as the annotator sees it.
    """
    context, rows = build_context(manifest, labeled_ids, probs, embeddings)
    selection = select(context, strategy, budget, rng)
    picked = rows[selection.rows]
    return pd.DataFrame(
        {
            "id": manifest["id"].to_numpy()[picked],
            "path": (f"{prepared}/" + manifest["path"]).to_numpy()[picked],
            "score": np.round(selection.scores, 6),
            "strategy": strategy,
            "cycle": cycle,
        }
    )


def run(layout: Layout, params: Params) -> pd.DataFrame:
    manifest = read_manifest(layout.manifest)
    labeled = read_labeled(layout.labeled)
    cycle = len(list_batches(layout.annotations))
    strategy = params.select.strategy if len(labeled) else params.select.cold_start
    # One stream per (seed, cycle): reproducible, yet random picks differ from cycle to cycle.
    rng = np.random.default_rng([params.seed, cycle])
    queries = query_table(
        manifest,
        set(labeled["id"]),
        np.load(layout.extracted / "probs.npy"),
        np.load(layout.extracted / "embeddings.npy"),
        strategy,
        params.select.budget,
        rng,
        cycle,
        layout.prepared.relative_to(layout.root).as_posix(),
    )
    atomic_write_csv(layout.queries, queries)
    return queries
