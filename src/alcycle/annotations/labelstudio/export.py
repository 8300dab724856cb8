"""Label Studio exports of an image-classification project: JSON, JSON-MIN, CSV and TSV.

The shapes follow Label Studio's converter (``label_studio_sdk.converter``, formerly
``label-studio-converter``): JSON is the list of tasks as stored, each with its
``annotations``; JSON-MIN and CSV flatten it to one record per annotation (data keys,
the task ``id``, one column per control tag named by its ``from_name``, ``annotator``,
``annotation_id``, ``created_at``, ``updated_at``, ``lead_time``). TSV is the CSV export
written with tabs. The flat exports drop cancelled annotations and keep one record, with
empty annotation fields, for a task nobody annotated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from alcycle.annotations.labelstudio import ID_KEY, IMAGE_KEY
from alcycle.annotations.records import Annotation, annotation_error
from alcycle.annotations.textio import DELIMITED, check_annotator, csv_records, open_utf8, text

# Columns the flat exports add to the task data; none of them can hold the class.
METADATA = frozenset(
    {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement", "history"}
)
CSV_ALWAYS = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time")
SET_CHOICE = "set label_import.choice_name in params.yaml to the name of the Choices tag that holds the class"


def is_task(item: Any) -> bool:
    """Whether the first item of a JSON list is a task as stored (data, annotations)."""
    return isinstance(item, dict) and "data" in item and ("annotations" in item or "completions" in item)


def is_min_record(item: Any) -> bool:
    """Whether the first item of a JSON list is a JSON-MIN record (one flat annotation)."""
    return isinstance(item, dict) and "annotator" in item and "annotation_id" in item


def is_csv_header(names: list[str]) -> bool:
    """Whether a CSV (or TSV) header with these column ``names`` is a flat export's."""
    return set(CSV_ALWAYS) <= set(names)


def json_items(path: Path, stream: BinaryIO, noun: str) -> Iterator[tuple[int, Any]]:
    """The items of a top-level JSON list, numbered from 1, parsed one at a time."""
    count = 0
    try:
        for count, item in enumerate(ijson.items(stream, "item", use_float=True), start=1):
            yield count, item
    except ijson.JSONError as exc:
        reason = str(exc).splitlines()[0]  # yajl adds a multi-line pointer at the failing byte
        what = f"malformed or truncated JSON ({reason}); expected a complete Label Studio export (a JSON list)"
        raise annotation_error(path, f"after {noun} {count}", what) from exc


# --- JSON: the tasks as stored ---------------------------------------------------------


def read_json(path: Path, choice_name: str | None) -> Iterator[Annotation]:
    """One record per annotation of every task; a task without annotations yields nothing."""
    with open_utf8(path) as stream:
        for number, task in json_items(path, stream, "task"):
            yield from _task(path, number, task, choice_name)


def _task(path: Path, number: int, task: Any, choice_name: str | None) -> Iterator[Annotation]:
    where = f"task {number}"
    if isinstance(task, dict) and task.get("id") is not None:
        where += f" (id {task['id']})"
    annotations = task.get("annotations", task.get("completions")) if isinstance(task, dict) else None
    if not isinstance(annotations, list) or not isinstance(task.get("data"), dict):
        what = "is not a Label Studio task; expected an object with `data` and `annotations`"
        raise annotation_error(path, where, what)
    if not annotations:
        return
    item, by = _task_item(path, where, task["data"], annotations)
    for number, annotation in enumerate(annotations, start=1):
        yield _annotation(path, f"{where}, annotation {number}", item, by, annotation, choice_name)


def _task_item(path: Path, where: str, data: dict, annotations: list) -> tuple[str, str]:
    """(item, by): alcycle's id when the task carries one, else the image reference."""
    if ID_KEY in data:
        return _reference(path, where, data, ID_KEY), "id"
    # Older exports name the data key in each result ("source": "$image"); use it when present.
    sources = [r.get("source") for a in annotations if isinstance(a, dict) for r in a.get("result") or []]
    keys = [s[1:] for s in sources if isinstance(s, str) and s.startswith("$") and s[1:] in data]
    texts = [key for key, value in data.items() if isinstance(value, str)]
    if not keys and IMAGE_KEY in data:
        keys = [IMAGE_KEY]
    elif not keys and len(texts) == 1:
        keys = texts  # the only text in the task must be the image reference
    if not keys:
        what = f"has neither data.{ID_KEY} nor data.{IMAGE_KEY} (data keys: {', '.join(data) or 'none'})"
        raise annotation_error(path, where, f"{what}; expected one of them to tell which image it is")
    return _reference(path, where, data, keys[0]), "file"


def _reference(path: Path, where: str, data: dict, key: str) -> str:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise annotation_error(path, where, f"data.{key} is {value!r}; expected a non-empty string")
    return str(value)


def _annotation(path: Path, where: str, item: str, by: str, annotation: Any, choice_name: str | None) -> Annotation:
    if not isinstance(annotation, dict):
        raise annotation_error(path, where, "is not an object; expected a Label Studio annotation")
    annotator = check_annotator(path, where, _annotator(annotation.get("completed_by")))
    when = str(annotation.get("updated_at") or annotation.get("created_at") or "")
    if annotation.get("was_cancelled") or annotation.get("skipped"):
        return Annotation(item, by, None, where, annotator, when, cancelled=True)
    label = _choice(path, where, annotation.get("result") or [], choice_name)
    return Annotation(item, by, label, where, annotator, when)


def _annotator(completed_by: Any) -> str:
    """The email when the export expanded the user, else the user id (as the converter does)."""
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "")
    return "" if completed_by is None else str(completed_by)


def _choice(path: Path, where: str, results: list, choice_name: str | None) -> str:
    """The one class chosen in an annotation's ``choices`` result."""
    choices = [r for r in results if isinstance(r, dict) and r.get("type") == "choices"]
    names = sorted({str(r.get("from_name")) for r in choices})
    if choice_name is not None:
        choices = [r for r in choices if r.get("from_name") == choice_name]
        if not choices:
            what = f"has no choice from {choice_name!r} (label_import.choice_name); its choices come from: "
            raise annotation_error(path, where, what + (", ".join(names) or "no tag"))
    elif len(names) > 1:
        raise annotation_error(path, where, f"has choices from several tags ({', '.join(names)}); {SET_CHOICE}")
    if not choices:
        what = "has no choice; expected a `choices` result with one class, or a cancelled (skipped) annotation"
        raise annotation_error(path, where, what)
    picked = [c for r in choices for c in (r.get("value") or {}).get("choices") or []]
    return _one_class(path, where, picked)


def _one_class(path: Path, where: str, picked: list) -> str:
    if len(picked) == 1 and isinstance(picked[0], str) and picked[0]:
        return picked[0]
    if len(picked) == 1:
        raise annotation_error(path, where, f"chose {picked[0]!r}; expected a class name")
    shown = ", ".join(map(repr, picked)) or "none"
    what = f"chose {len(picked)} classes ({shown}); expected exactly one class (single-label classification)"
    raise annotation_error(path, where, what)


# --- JSON-MIN and CSV: one flat record per annotation ----------------------------------


class _Flat:
    """Turns flat records into annotations; the class column is fixed by the first annotated record."""

    def __init__(self, path: Path, choice_name: str | None) -> None:
        self.path, self.column = path, choice_name

    def annotation(self, where: str, record: dict[str, Any]) -> Annotation | None:
        if record.get("annotation_id") in (None, ""):
            return None  # a task nobody annotated: the converter still writes a record for it
        column = self._column(where, record)
        item, by = self._item(where, record, column)
        annotator = check_annotator(self.path, where, _annotator(record.get("annotator")))
        when = str(record.get("updated_at") or record.get("created_at") or "")
        return Annotation(item, by, self._label(where, record.get(column), column), where, annotator, when)

    def _column(self, where: str, keys: Iterable[str]) -> str:
        if self.column is None:
            candidates = _free_keys(keys)
            if len(candidates) != 1:
                what = f"cannot tell which column holds the class (candidates: {', '.join(candidates) or 'none'})"
                raise annotation_error(self.path, where, f"{what}; {SET_CHOICE}")
            self.column = candidates[0]
        return self.column

    def _item(self, where: str, record: dict[str, Any], column: str) -> tuple[str, str]:
        if ID_KEY in record:
            return _reference(self.path, where, record, ID_KEY), "id"
        others = [key for key in _free_keys(record) if key != column]
        keys = [IMAGE_KEY] if IMAGE_KEY in record else others
        if len(keys) != 1:
            what = f"has neither {ID_KEY} nor {IMAGE_KEY} (columns: {', '.join(record)})"
            raise annotation_error(self.path, where, f"{what}; expected one of them to tell which image it is")
        return _reference(self.path, where, record, keys[0]), "file"

    def _label(self, where: str, value: Any, column: str) -> str:
        if isinstance(value, str) and value.startswith(("{", "[")):
            try:  # the CSV export writes several choices as JSON text
                value = json.loads(value)
            except ValueError:
                pass
        if value in (None, ""):
            what = f"has no choice in {column!r}; expected one class, or a cancelled (skipped) annotation"
            raise annotation_error(self.path, where, what)
        if isinstance(value, dict):
            return _one_class(self.path, where, value.get("choices") or [value])
        return _one_class(self.path, where, value if isinstance(value, list) else [value])


def _free_keys(keys: Iterable[str]) -> list[str]:
    """Keys that are neither export metadata nor a known data key: where the class can be."""
    known = METADATA | {ID_KEY, IMAGE_KEY}
    return sorted(key for key in keys if key not in known and not key.endswith("_transcript"))


def read_json_min(path: Path, choice_name: str | None) -> Iterator[Annotation]:
    """One record per annotation of a JSON-MIN export (cancelled annotations are not in it)."""
    flat = _Flat(path, choice_name)
    with open_utf8(path) as stream:
        for number, record in json_items(path, stream, "record"):
            where = f"record {number}"
            if not isinstance(record, dict):
                raise annotation_error(path, where, "is not an object; expected a Label Studio JSON-MIN record")
            where += f" (task id {record.get('id')}, annotation id {record.get('annotation_id')})"
            annotation = flat.annotation(where, record)
            if annotation is not None:
                yield annotation


def read_csv(path: Path, choice_name: str | None, delimiter: str = ",") -> Iterator[Annotation]:
    """One record per row of a CSV export, or of a TSV one with ``delimiter`` a tab (no cancelled annotations)."""
    flat, kind = _Flat(path, choice_name), DELIMITED[delimiter]
    with open_utf8(path) as stream:
        records = csv_records(path, text(stream), f"expected a Label Studio {kind} export", delimiter)
        header_line, header = next(records, (1, []))
        missing = [name for name in CSV_ALWAYS if name not in header]
        if missing or len(set(header)) != len(header):
            what = f"header is {delimiter.join(header)!r}; expected a Label Studio {kind} header with "
            raise annotation_error(path, f"line {header_line}", what + ", ".join(CSV_ALWAYS))
        for line, cells in records:
            if len(cells) != len(header):
                what = f"has {len(cells)} field(s); expected {len(header)} like the header"
                raise annotation_error(path, f"line {line}", what)
            annotation = flat.annotation(f"line {line}", dict(zip(header, cells)))
            if annotation is not None:
                yield annotation
