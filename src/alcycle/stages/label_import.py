"""label-import: every annotation batch so far, folded into the labeled pool.

The stage is a pure function of the annotation folder (git-tracked, append-only) and the
pool manifest, so ``dvc repro`` rebuilds ``data/labeled.csv`` identically from a fresh
clone. The fold itself (matching, annotators, relabels, removals) is
``alcycle.annotations.rebuild``, which ``alcycle import`` runs too. Any bad input is
refused before anything is written, so the labeled pool on disk stays as it was; so does
a stored batch that has gone missing (``annotations/history.py``). A hand edit of the
pool is discarded, and said so.
"""

from __future__ import annotations

import pandas as pd

from alcycle.annotations.history import check_none_missing, discarded_edit, last_rebuild
from alcycle.annotations.rebuild import fold, write
from alcycle.annotations.store import list_batches
from alcycle.contract import Stage, committed
from alcycle.layout import Layout
from alcycle.params import Params
from alcycle.pool import read_manifest
from alcycle.synthesised import labeling_manifest

_L = Layout()
STAGE = Stage(
    name="label-import",
    deps=(_L.annotations, _L.manifest),
    params=("classes", "label_import"),
    # persist: DVC would delete the pool and its report before the stage runs, and
    # label-import reads them to find a missing batch or a hand edit.
    outs=(committed(_L.labeled, persist=True), committed(_L.import_report, "metrics", persist=True)),
    code=("annotations", "synthesised.py"),
)

__all__ = ["run"]


def run(layout: Layout, params: Params) -> pd.DataFrame:
    """Rebuild ``layout.labeled`` from every batch in ``layout.annotations``; return the table.

    The files are replaced only after every batch has been checked, and none the project
    stored is missing; a hand edit of the pool is discarded with a note.
    """
    batches = list_batches(layout.annotations)
    last = last_rebuild(layout)
    check_none_missing(layout, batches, last)
    before = last.built_from(batches)
    # Synthesised items (GAAL) are named by the images kept beside the batches.
    manifest = labeling_manifest(layout, read_manifest(layout.manifest), with_queries=False)
    imported = fold(
        [(p, p.name) for p in batches], manifest, params.classes, params.label_import,
        snapshots=() if before is None else (before,),
    )
    note = discarded_edit(layout, last, imported.earlier.get(before))
    write(layout, imported)
    if note:
        print(f"label-import: {note}")
    return imported.table
