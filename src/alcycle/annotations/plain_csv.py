"""alcycle's own CSV batches: labels (``id,label``) and removals (``id,removed_because``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from alcycle.annotations.records import Annotation, annotation_error
from alcycle.annotations.textio import check_annotator, csv_records, open_utf8, text

LABEL_HEADER = ("id", "label")
REMOVAL_HEADER = ("id", "removed_because")
OPTIONAL = ("annotator", "time")  # other columns are ignored


def is_labels_header(names: list[str]) -> bool:
    """Whether a CSV header with these column ``names`` is a label batch's."""
    return set(LABEL_HEADER) <= set(names) and "removed_because" not in names


def is_removals_header(names: list[str]) -> bool:
    """Whether a CSV header with these column ``names`` is a removal batch's."""
    return set(REMOVAL_HEADER) <= set(names) and "label" not in names


def read_labels(path: Path) -> Iterator[Annotation]:
    """One record per row of a CSV with header ``id,label`` (``annotator``, ``time`` optional)."""
    for line, cells, columns in _rows(path, LABEL_HEADER):
        item, label = cells[columns["id"]], cells[columns["label"]]
        if not item or not label:
            raise annotation_error(path, f"line {line}", "has an empty id or label; expected a non-empty `id,label`")
        yield Annotation(item, "id", label, f"line {line}", *_who_when(path, line, cells, columns))


def read_removals(path: Path) -> Iterator[Annotation]:
    """One removal per row of a CSV with header ``id,removed_because`` (written by ``alcycle label remove``)."""
    for line, cells, columns in _rows(path, REMOVAL_HEADER):
        item, reason = cells[columns["id"]], cells[columns["removed_because"]]
        if not item or not reason:
            what = "has an empty id or reason; expected a non-empty `id,removed_because`"
            raise annotation_error(path, f"line {line}", what)
        annotator, when = _who_when(path, line, cells, columns)
        yield Annotation(item, "id", None, f"line {line}", annotator, when, removed=True, reason=reason)


def _rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str], dict[str, int]]]:
    """Data rows as (line, cells, column index by name) after checking the header and field counts."""
    wanted = f"`{','.join(header)}`"
    with open_utf8(path) as stream:
        records = csv_records(path, text(stream), f"expected plain {wanted} rows")
        first = next(records, None)
        if first is None:
            raise annotation_error(path, "line 1", f"has no rows; expected a header {wanted} and at least one row")
        header_line, names = first
        if any(names.count(name) != 1 for name in header):
            what = f"header is {','.join(names)!r}; expected header {wanted}"
            raise annotation_error(path, f"line {header_line}", what)
        columns = {name: names.index(name) for name in (*header, *OPTIONAL) if name in names}
        empty = True
        for line, cells in records:
            if len(cells) != len(names):
                what = f"has {len(cells)} field(s); expected {len(names)} like the header"
                raise annotation_error(path, f"line {line}", what)
            empty = False
            yield line, cells, columns
        if empty:
            what = f"has no rows after the header; expected at least one {wanted} row"
            raise annotation_error(path, f"line {header_line}", what)


def _who_when(path: Path, line: int, cells: list[str], columns: dict[str, int]) -> tuple[str, str]:
    annotator = cells[columns["annotator"]] if "annotator" in columns else ""
    when = cells[columns["time"]] if "time" in columns else ""
    return check_annotator(path, f"line {line}", annotator), when
