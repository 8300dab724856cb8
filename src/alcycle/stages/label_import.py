"""The ``label-import`` stage: every annotation batch so far -> the labeled pool.

The stage is a pure function of the annotation folder (git-tracked, append-only) and the
pool manifest, so ``dvc repro`` rebuilds ``data/labeled.csv`` identically from a fresh
clone. Batch ``k`` (1-based, in file-name order) gives its labels ``cycle == k``.

Any bad input raises :class:`AnnotationError` before anything is written, so the labeled
pool on disk stays as it was.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alcycle.fileio import atomic_write_csv
from alcycle.layout import Layout
from alcycle.params import CONFLICT_RULES, Params
from alcycle.pool import LABELED_COLUMNS, empty_labeled, read_manifest

HEADER = ("id", "label")
RELABEL_PREFIX = "relabel:"


class AnnotationError(ValueError):
    """An annotation batch is unusable; the message names the file, the line and what was expected."""


@dataclass(frozen=True)
class _Label:
    """The current label of one item and where it came from."""

    label: str
    cycle: int
    source: str  # what labeled.csv records: the batch file name, or "relabel:<name>"
    path: Path  # the batch file that gave it, for error messages
    line: int


def _error(path: Path, line: int, what: str) -> AnnotationError:
    return AnnotationError(f"{path}, line {line}: {what}")


def list_batches(folder: Path) -> list[Path]:
    """The annotation batches: ``*.csv`` files directly in ``folder``, sorted by file name.

    Other files (README.md, notes) are ignored. An absent folder means no batches yet:
    git does not track empty folders, so a fresh clone before the first batch has none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix == ".csv"), key=lambda p: p.name)


def _decode(path: Path) -> str:
    """The file's text as UTF-8 (an optional BOM is dropped); other bytes are an error."""
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        what = f"byte 0x{data[exc.start]:02x} is not valid UTF-8; expected a UTF-8 text file"
        raise _error(path, line, what) from exc


def _records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV records as (first line number, trimmed cells)."""
    # strict=True turns stray quotes into an error instead of a silently merged field.
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True)
    records, last_line = [], 0
    try:
        for row in reader:
            start, last_line = last_line + 1, reader.line_num
            cells = [cell.strip() for cell in row]
            if any(cells):
                records.append((start, cells))
    except csv.Error as exc:
        raise _error(path, reader.line_num, f"malformed CSV ({exc}); expected plain `id,label` rows") from exc
    return records


def read_batch(path: Path) -> pd.DataFrame:
    """Read one annotation batch: a CSV with header ``id,label`` (extra columns ignored).

    Returns columns ``id``, ``label`` (str, trimmed) and ``line`` (int, 1-based line of the
    row in the file; the header is line 1), one row per data row, in file order.
    """
    path = Path(path)
    records = _records(path, _decode(path))
    if not records:
        raise _error(path, 1, "has no rows; expected a header `id,label` and at least one row")
    header_line, header = records[0]
    if any(header.count(name) != 1 for name in HEADER):
        raise _error(path, header_line, f"header is {','.join(header)!r}; expected header `id,label`")
    if len(records) == 1:
        raise _error(path, header_line, "has no rows after the header; expected at least one `id,label` row")
    id_col, label_col = header.index("id"), header.index("label")
    ids, labels, lines = [], [], []
    for line, cells in records[1:]:
        if len(cells) != len(header):
            raise _error(path, line, f"has {len(cells)} field(s); expected {len(header)} like the header")
        if not cells[id_col] or not cells[label_col]:
            raise _error(path, line, "has an empty id or label; expected a non-empty `id,label`")
        ids.append(cells[id_col])
        labels.append(cells[label_col])
        lines.append(line)
    return pd.DataFrame({"id": ids, "label": labels, "line": pd.Series(lines, dtype="int64")})


def _check_row(
    path: Path, line: int, item: str, label: str, splits: dict[str, str], classes: tuple[str, ...]
) -> None:
    """One row against the manifest and the class list."""
    if item not in splits:
        raise _error(path, line, f"id {item!r} is not in the pool manifest; ids must come from the manifest")
    if splits[item] == "test":
        what = f"id {item!r} is in the test split; test items must never be labeled for training"
        raise _error(path, line, what)
    if label not in classes:
        raise _error(path, line, f"class {label!r} is unknown; expected one of: {', '.join(classes)}")


def _check_duplicates(path: Path, batch: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated rows for an id within a batch; a repeat with another label is an error."""
    first: dict[str, tuple[str, int]] = {}
    for item, label, line in batch[["id", "label", "line"]].itertuples(index=False):
        if item in first and first[item][0] != label:
            old_label, old_line = first[item]
            what = f"id {item!r} is labeled {label!r} but line {old_line} labeled it {old_label!r}"
            raise _error(path, line, f"{what}; expected one label per id in a batch")
        first.setdefault(item, (label, line))
    return batch.drop_duplicates("id", keep="first")


def _merge(state: dict[str, _Label], new: _Label, item: str, on_conflict: str) -> None:
    """Apply one new label to the pool state, following the relabel policy."""
    old = state.get(item)
    if old is None:
        state[item] = new
    elif old.label == new.label:
        return  # the same label again: keep the earliest cycle and source
    elif on_conflict == "relabel":
        state[item] = _Label(new.label, new.cycle, RELABEL_PREFIX + new.path.name, new.path, new.line)
    else:
        what = (
            f"id {item!r} is labeled {new.label!r} but {old.path.name} (line {old.line}) labeled it "
            f"{old.label!r}; set label_import.on_conflict: relabel in params.yaml to accept relabels"
        )
        raise _error(new.path, new.line, what)


def import_labels(
    batches: list[Path], manifest: pd.DataFrame, classes: tuple[str, ...], on_conflict: str
) -> pd.DataFrame:
    """Fold the batches, in the order given, into the labeled pool.

    Batch ``k`` of ``batches`` (1-based) labels with ``cycle == k`` and ``source`` its file
    name. ``manifest`` needs columns ``id`` and ``split``. Returns columns
    ``id, label, cycle (int), source``, one row per labeled item, sorted by id.
    """
    if on_conflict not in CONFLICT_RULES:
        raise ValueError(f"unknown on_conflict {on_conflict!r}; choose one of: {', '.join(CONFLICT_RULES)}")
    splits = dict(zip(manifest["id"], manifest["split"]))
    state: dict[str, _Label] = {}
    for cycle, path in enumerate(batches, start=1):
        path = Path(path)
        batch = read_batch(path)
        for item, label, line in batch[["id", "label", "line"]].itertuples(index=False):
            _check_row(path, line, item, label, splits, classes)
        for item, label, line in _check_duplicates(path, batch).itertuples(index=False):
            _merge(state, _Label(label, cycle, path.name, path, int(line)), item, on_conflict)
    if not state:
        return empty_labeled()
    table = pd.DataFrame(
        [(item, lab.label, lab.cycle, lab.source) for item, lab in state.items()], columns=LABELED_COLUMNS
    )
    table["cycle"] = table["cycle"].astype("int64")
    return table.sort_values("id", kind="stable").reset_index(drop=True)


def run(layout: Layout, params: Params) -> pd.DataFrame:
    """Rebuild ``layout.labeled`` from every batch in ``layout.annotations``; return the table.

    The file is replaced atomically and only after every batch has been checked.
    """
    table = import_labels(
        list_batches(layout.annotations),
        read_manifest(layout.manifest),
        params.classes,
        params.label_import.on_conflict,
    )
    atomic_write_csv(layout.labeled, table)
    return table
