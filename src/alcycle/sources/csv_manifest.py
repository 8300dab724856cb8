"""The ``csv`` source: a CSV manifest of image paths, with optional labels and ids."""

from __future__ import annotations

import csv
import re
from datetime import datetime
from functools import partial
from collections.abc import Sequence
from pathlib import Path

from alcycle.params import PrepareParams
from alcycle.sources import Item, SourceError, path_id
from alcycle.sources.images import load_image

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
CSV_COLUMNS = ("path", "label", "id", "time")
_CSV_EXPECTED = "a 'path' column and optionally 'label', 'id' and 'time'"
# 'time': when the image arrived, a number or an ISO 8601 timestamp; a stream (select.stream.order:
# time) meets the pool in that order.


def csv_items(params: PrepareParams) -> list[Item]:
    """Rows of a CSV manifest: path (relative to the CSV's folder, or absolute), label, id, time."""
    csv_path = Path(params.path)
    if not csv_path.is_file():
        raise SourceError(f"{csv_path}: CSV manifest not found (prepare.path)")
    items: list[Item] = []
    lines: dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_header(csv_path, reader.fieldnames)
        for row in reader:
            where = f"{csv_path} line {reader.line_num}"
            item = _csv_item(row, csv_path.parent, where, params, line=reader.line_num)
            if item.id in lines:
                raise SourceError(f"{where}: duplicate id {item.id!r} (also on line {lines[item.id]})")
            lines[item.id] = reader.line_num
            items.append(item)
    if not items:
        raise SourceError(f"{csv_path}: no rows; expected one row per image")
    return items


def _check_header(csv_path: Path, header: Sequence[str] | None) -> None:
    if not header:
        raise SourceError(f"{csv_path} line 1: no header; expected {_CSV_EXPECTED}")
    if "split" in header:
        raise SourceError(
            f"{csv_path} line 1: a 'split' column is not supported; the split is drawn with "
            f"prepare.split_seed and prepare.test_fraction. Expected {_CSV_EXPECTED}"
        )
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if "path" not in header or unknown or len(set(header)) != len(header):
        raise SourceError(f"{csv_path} line 1: header {header}; expected {_CSV_EXPECTED}")


def _csv_item(row: dict, base: Path, where: str, params: PrepareParams, line: int) -> Item:
    if None in row or None in row.values():
        raise SourceError(f"{where}: wrong number of fields; expected one per header column")
    if not row["path"]:
        raise SourceError(f"{where}: empty path; expected an image file")
    file = base / row["path"]  # an absolute path replaces base
    if not file.is_file():
        raise SourceError(f"{where}: image file not found: {file}")
    if "id" in row and not ID_PATTERN.fullmatch(row["id"]):
        raise SourceError(f"{where}: bad id {row['id']!r}; expected letters, digits, '.', '_' or '-'")
    if "time" in row and not _is_time(row["time"]):
        raise SourceError(f"{where}: bad time {row['time']!r}; expected a number or an ISO 8601 timestamp "
                          f"such as 2026-03-01T12:00:00")
    return Item(
        id=row["id"] if "id" in row else path_id(row["path"]),
        source=row["path"],
        label=row.get("label") or None,
        load=partial(load_image, file, params.channels, params.image_size),
        line=line,
        time=row.get("time"),
    )


def _is_time(value: str) -> bool:
    """A number or an ISO 8601 timestamp (what ``stream.arrival_order`` sorts)."""
    try:
        float(value)
        return True
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value)
        return True
    except ValueError:
        return False


