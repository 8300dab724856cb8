"""prepare: decode the pool into one memory-mapped pixel array and a manifest.

Images are decoded in parallel and streamed into the store (``pixel_store``), so memory
does not grow with the pool; no per-image copy is written (``select`` writes the query
batch's own images for the labeling tools). The ground truth and the original paths (which
may name a class folder) go to ``data/truth``, apart from everything that training reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alcycle import pixel_store
from alcycle.decoding import decode_into
from alcycle.fileio import atomic_write_csv, replacing_folder
from alcycle.contract import Stage, cached
from alcycle.layout import Layout
from alcycle.params import Params, PrepareParams
from alcycle.pool import MANIFEST_COLUMNS
from alcycle.sources import IMAGE_EXTENSIONS, Item, SourceError, list_items

_L = Layout()
STAGE = Stage(
    name="prepare",
    deps=(),
    reads_dataset=True,
    params=("classes", "prepare"),
    outs=(cached(_L.prepared), cached(_L.truth_folder)),
    code=("sources", "decoding.py", "pixel_store.py"),
)

IMAGES = "images"  # the manifest's path is images/<id>.png, under the folder select writes (layout.query_images)
SOURCES_CSV = "sources.csv"  # beside layout.truth: id -> original path
SKIPPED_COLUMNS = ["path", "line", "reason"]  # layout.skipped; line: the CSV manifest's, else empty
LISTED = 20  # unreadable images an error names one by one; it counts the rest

Unreadable = list[tuple[Item, str]]  # each unreadable item with the decoder's reason


def run(layout: Layout, params: Params) -> pd.DataFrame:
    """Write the pixels and manifest under ``layout.prepared`` and the truth; return the manifest.

    Both folders are rebuilt from scratch in staging folders and swapped in at the end,
    so a failed run leaves the previous outputs whole and stale files never survive.
    Unreadable images fail the run, all named at once, or with ``on_unreadable: skip`` are
    left out and listed in ``layout.skipped``.
    """
    items = list_items(params.prepare, params.classes)
    keep, split = draw_split(len(items), params.prepare, np.array([i.split for i in items], dtype=object))
    items = [items[row] for row in keep]
    with replacing_folder(layout.prepared) as prepared, replacing_folder(layout.truth.parent) as truth_dir:
        unreadable = write_pixels(items, prepared / layout.pixels.relative_to(layout.prepared), params.prepare)
        n_read = len(items)
        if unreadable or params.prepare.on_unreadable == "skip":
            items, split = _leave_out(unreadable, items, split, params.prepare, layout)
            # Only skip writes the list, so refuse keeps data/prepared as it was before the setting.
            atomic_write_csv(prepared / layout.skipped.relative_to(layout.prepared), _skipped_table(unreadable))
        manifest, truth, sources = _tables(items, split)
        atomic_write_csv(prepared / layout.manifest.relative_to(layout.prepared), manifest)
        atomic_write_csv(truth_dir / layout.truth.name, truth)
        atomic_write_csv(truth_dir / SOURCES_CSV, sources)
    if params.prepare.on_unreadable == "skip":
        print(f"prepare: skipped {len(unreadable)} of {n_read} images that cannot be read; listed in {layout.skipped}")
    return manifest


def _tables(items: list[Item], split: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The manifest (training reads it), the ground truth and each item's original path."""
    manifest = pd.DataFrame(
        {"id": [i.id for i in items], "path": [f"{IMAGES}/{i.id}.png" for i in items], "split": split},
        columns=MANIFEST_COLUMNS,
    )
    if any(i.time is not None for i in items):  # the csv source's arrival times, for a stream
        manifest["time"] = [i.time or "" for i in items]
    truth = pd.DataFrame(
        [(i.id, i.label) for i in items if i.label is not None], columns=["id", "label"], dtype=str
    )
    sources = pd.DataFrame({"id": [i.id for i in items], "source": [i.source for i in items]})
    return manifest, truth, sources


def draw_split(n: int, params: PrepareParams, fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept by ``subsample`` (int64, ascending) and the split of each kept row ("pool"/"test").

    ``fixed`` (n,) object: the split a source gave each item ("pool"/"test"), None where
    the draw decides. One generator seeded with ``split_seed`` draws the subsample (from
    each fixed split in proportion to its size), then ``test_fraction`` of the kept items
    without a fixed split become test rows.
    """
    if params.subsample < 0:
        raise SourceError(f"'prepare.subsample' is {params.subsample}; use 0 (all items) or a positive count")
    if params.subsample > n:
        raise SourceError(f"'prepare.subsample' is {params.subsample} but the source has only {n} items")
    given = np.full(n, None, dtype=object) if fixed is None else np.asarray(fixed, dtype=object)
    odd = sorted({str(value) for value in given[~pd.isna(given)]} - {"pool", "test"})
    if odd:
        raise SourceError(f"the source gave items the split {odd[0]!r}; expected 'pool', 'test' or none")
    rng = np.random.default_rng(params.split_seed)
    keep = np.arange(n, dtype=np.int64)
    if params.subsample > 0:
        keep = _proportional(given, params.subsample, rng)
    undecided = pd.isna(given[keep])
    free = np.flatnonzero(undecided)
    n_test = round(params.test_fraction * len(free))
    split = np.where(undecided, "pool", given[keep]).astype(object)
    split[free[rng.permutation(len(free))[:n_test]]] = "test"
    if not (split == "pool").any():
        raise SourceError(
            f"'prepare.test_fraction' {params.test_fraction} of {len(keep)} items leaves no pool items"
        )
    return keep, split


def _proportional(given: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` rows (int64, ascending) drawn from each group of ``given`` in proportion.

    Groups are the fixed splits and the undecided items; shares are rounded by largest
    remainder. With one group this is today's single draw, so old subsamples stay as they were.
    """
    groups = [np.flatnonzero(given == value) for value in ("pool", "test")]
    groups = [rows for rows in [*groups, np.flatnonzero(pd.isna(given))] if len(rows)]
    if len(groups) == 1:
        return np.sort(groups[0][rng.choice(len(groups[0]), size=size, replace=False)]).astype(np.int64)
    exact = np.array([len(rows) for rows in groups]) * size / len(given)
    counts = np.floor(exact).astype(int)
    counts[np.argsort(-(exact - counts), kind="stable")[: size - counts.sum()]] += 1
    drawn = [rows[rng.choice(len(rows), size=k, replace=False)] for rows, k in zip(groups, counts)]
    return np.sort(np.concatenate(drawn)).astype(np.int64)


def write_pixels(items: list[Item], path: Path, params: PrepareParams) -> Unreadable:
    """Decode every item, in parallel, into the pixel store at ``path``.

    The store holds uint8 (N', C, S, S): the N' readable items in item order. Returns the
    others with the decoder's reason, sorted by where the user finds them (CSV line, then
    path). O(N'·C·S²) on disk; O(workers · chunk) images in memory.
    """
    size = params.image_size
    with pixel_store.create(path, (len(items), params.channels, size, size)) as store:
        written, failures = decode_into(items, store)
    if 0 < written < len(items) and params.on_unreadable == "skip":
        pixel_store.keep_first(path, written)
    unreadable = [(items[index], reason) for index, reason in failures]
    unreadable.sort(key=lambda pair: (pair[0].line or 0, pair[0].source))
    return unreadable


def _leave_out(
    unreadable: Unreadable, items: list[Item], split: np.ndarray, params: PrepareParams, layout: Layout
) -> tuple[list[Item], np.ndarray]:
    """The readable items and their split; fails under ``refuse`` or when no pool item is left.

    The split was drawn over every item, so fixing a skipped image later moves no other one
    between pool and test.
    """
    where = f"{params.path or params.source}: {len(unreadable)} of {len(items)} images cannot be read"
    skipped = layout.skipped.relative_to(layout.root)
    if params.on_unreadable != "skip":
        raise SourceError(
            f"{where}; expected a readable image file ({', '.join(IMAGE_EXTENSIONS)}) for each. Fix or remove "
            f"them, or set prepare.on_unreadable: skip to leave them out (listed in {skipped}):{_listing(unreadable)}"
        )
    bad = {item.id for item, _ in unreadable}
    rows = [row for row, item in enumerate(items) if item.id not in bad]
    if not (split[rows] == "pool").any():
        raise SourceError(f"{where}; no pool image is left, so there is nothing to label:{_listing(unreadable)}")
    return [items[row] for row in rows], split[rows]


def _listing(unreadable: Unreadable) -> str:
    """One line per unreadable item, at most ``LISTED`` of them, then how many more."""
    lines = [f"\n  {item.where}: {reason}" for item, reason in unreadable[:LISTED]]
    if len(unreadable) > LISTED:
        lines.append(f"\n  and {len(unreadable) - LISTED} more")
    return "".join(lines)


def _skipped_table(unreadable: Unreadable) -> pd.DataFrame:
    rows = [(item.source, "" if item.line is None else str(item.line), reason) for item, reason in unreadable]
    return pd.DataFrame(rows, columns=SKIPPED_COLUMNS, dtype=str)
