"""The oracle: answers the current query batch from the ground truth, as an annotator would.

Only for datasets whose labels are known (MNIST, class sub-folders, a CSV label
column). It writes the next annotation batch; ``dvc repro`` then imports it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alcycle.annotations.store import store_new
from alcycle.errors import AlcycleError
from alcycle.layout import Layout
from alcycle.pool import cycle_number


class OracleError(AlcycleError, RuntimeError):
    """The oracle cannot answer: stale queries or missing ground truth."""


def answer(layout: Layout) -> Path:
    """Write the labels of ``layout.queries`` as the next annotation batch; returns its path."""
    if not layout.queries.exists():
        raise OracleError(f"{layout.queries}: no query batch yet; run `dvc repro` first")
    queries = pd.read_csv(layout.queries, dtype={"id": str}, keep_default_na=False)
    imported = cycle_number(layout.annotations)
    made_in = int(queries["cycle"].iloc[0]) if len(queries) else -1
    if made_in != imported:
        raise OracleError(
            f"{layout.queries} was made at cycle {made_in} but {imported} batch(es) are in "
            f"{layout.annotations}; run `dvc repro` to import them and select anew"
        )
    truth = pd.read_csv(layout.truth, dtype=str, keep_default_na=False).set_index("id")["label"]
    unknown = [i for i in queries["id"] if i not in truth.index]
    if unknown:
        raise OracleError(f"{layout.truth}: no ground truth for {len(unknown)} queried item(s), e.g. {unknown[0]}")
    batch = pd.DataFrame({"id": queries["id"], "label": truth.loc[queries["id"]].to_numpy()})
    return store_new(layout, batch.to_csv(index=False, lineterminator="\n").encode("utf-8"), ".csv")
