"""Every annotation batch, in order -> the labeled pool; what ``label-import`` and ``alcycle import`` run.

Batch ``k`` (1-based, in the order given) gives its labels ``cycle == k``. A batch may be
any export ``alcycle.annotations.formats`` reads (recognised by content); items are
matched by alcycle's id where the file carries it, else by image file name. Within one
batch, several annotations of one item are resolved by ``label_import.annotators``
(``annotations/resolve.py``); across batches, a changed label follows
``label_import.on_conflict``. Any bad input raises :class:`AnnotationError` before
anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from alcycle.annotations.formats import read_annotations
from alcycle.annotations.history import RELABEL_PREFIX, pool_text
from alcycle.annotations.matching import ItemMatcher
from alcycle.annotations.records import FORMULA_STARTS, Annotation, annotation_error
from alcycle.annotations.resolve import ItemVotes, decide
from alcycle.annotations.store import check_stored
from alcycle.fileio import atomic_write_text, file_digest
from alcycle.layout import Layout
from alcycle.params import ANNOTATOR_RULES, CONFLICT_RULES, LabelImportParams, ParamsError
from alcycle.pool import LABELED_COLUMNS, empty_labeled
from alcycle.synthesised import SPLIT, UNRECOGNISABLE

__all__ = ["BatchReport", "Imported", "fold", "import_labels", "write"]

MATCHED_BY = {"id": "alcycle id", "file": "image file name"}


@dataclass(frozen=True)
class _Label:
    """The current label of one item and where it came from."""

    label: str
    cycle: int
    source: str  # what labeled.csv records: the batch file name, or "relabel:<name>"
    annotator: str  # the annotators who gave this label, ";"-joined; "" when unknown
    batch: str  # the batch's name, and where in it, for error messages
    where: str


@dataclass
class BatchReport:
    """What one batch contributed; ``metrics/label_import.json`` lists one per batch."""

    batch: str
    cycle: int
    format: str
    sha256: str
    matched_by: list[str] = field(default_factory=list)
    annotations: int = 0
    cancelled: int = 0
    labeled: int = 0
    removed: int = 0
    disagreements: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Imported:
    table: pd.DataFrame  # the labeled pool: LABELED_COLUMNS, sorted by id
    batches: list[BatchReport]
    earlier: dict[int, pd.DataFrame] = field(default_factory=dict)  # the pool after the first k batches

    def report(self) -> dict:
        disagreements = [d for b in self.batches for d in b.disagreements]
        newest = self.batches[-1].disagreements if self.batches else []
        return {
            "labeled": len(self.table),
            "annotator_disagreements": len(disagreements),
            "newest_batch_disagreements": len(newest),
            "batches": [asdict(b) for b in self.batches],
        }


def _fold_case(text: str) -> str:
    return "".join(text.split()).casefold()


def _check_class(path: Path, record: Annotation, classes: tuple[str, ...], synthesised: bool) -> None:
    """Refuse a label that is not one of ``classes`` (or, for a ``synthesised`` item, ``unrecognisable``)."""
    label = record.label
    if label in classes or (synthesised and label == UNRECOGNISABLE):
        return
    near = [c for c in classes if _fold_case(c) == _fold_case(label)]
    if label == UNRECOGNISABLE:
        what = (f"class {label!r} is an answer for synthesised images only; expected exactly one of: "
                f"{', '.join(classes)} (remove a pool item's label with `alcycle label remove`)")
        raise annotation_error(path, record.where, what)
    if near:
        what = f"class {label!r} differs from {near[0]!r} only by case or whitespace"
    elif label.startswith(FORMULA_STARTS):
        what = f"class {label!r} looks like a spreadsheet formula"
    else:
        what = f"class {label!r} is unknown"
    raise annotation_error(path, record.where, f"{what}; expected exactly one of: {', '.join(classes)}")


def _read_batch(
    path: Path, name: str, cycle: int, matcher: ItemMatcher, splits: dict[str, str],
    classes: tuple[str, ...], settings: LabelImportParams,
) -> tuple[dict[str, _Label | None], BatchReport]:
    """One batch's decisions: item -> its new label, or None for a removal."""
    digest = file_digest(path)
    check_stored(path, name, cycle, digest)  # before reading: a changed batch is refused as such
    fmt, records = read_annotations(path, settings.choice_name or None)
    report = BatchReport(batch=name, cycle=cycle, format=fmt, sha256=digest)
    labels: dict[str, ItemVotes] = {}
    removals: dict[str, Annotation] = {}
    matched_by: set[str] = set()
    for record in records:
        report.annotations += 1
        if record.cancelled:
            report.cancelled += 1
            continue
        item = matcher.item_of(path, record)
        matched_by.add(MATCHED_BY[record.by])
        if splits[item] == "test":
            what = f"id {item!r} is in the test split; test items must never be labeled for training"
            raise annotation_error(path, record.where, what)
        if record.removed:
            removals[item] = record
            continue
        _check_class(path, record, classes, synthesised=splits[item] == SPLIT)
        if item not in labels:
            labels[item] = ItemVotes(path, item, settings.annotators)
        labels[item].add(record)
    if not labels and not removals:
        what = (
            f"every one of its {report.cancelled} annotation(s) is cancelled; nothing to import"
            if report.cancelled
            else "has no annotations; expected at least one labeled item"
        )
        raise annotation_error(path, "whole file", what)
    report.matched_by = sorted(matched_by)
    decisions: dict[str, _Label | None] = {}
    for item, votes in labels.items():
        label, annotators, resolutions = decide(votes)
        report.disagreements += [{"batch": name, **r, "rule": settings.annotators} for r in resolutions]
        decisions[item] = _Label(label, cycle, name, annotators, name, votes.where)
    report.labeled = len(decisions)
    for item, record in removals.items():
        if item in decisions:
            raise annotation_error(path, record.where, f"id {item!r} is both labeled and removed in one batch")
        decisions[item] = None
    report.removed = len(removals)
    return decisions, report


def _apply(state: dict[str, _Label], item: str, new: _Label | None, path: Path, on_conflict: str) -> None:
    """Apply one batch's decision for ``item`` to the pool state, following the relabel policy."""
    old = state.get(item)
    if new is None:
        if old is None:
            raise annotation_error(path, f"id {item!r}", "is not labeled; only a labeled item can be removed")
        del state[item]
    elif old is None:
        state[item] = new
    elif old.label == new.label:
        return  # the same label again: keep the earliest cycle and source
    elif on_conflict == "relabel":
        state[item] = dataclasses.replace(new, source=RELABEL_PREFIX + new.source)
    else:
        what = (
            f"id {item!r} is labeled {new.label!r} but {old.batch} ({old.where}) labeled it {old.label!r}; "
            "set label_import.on_conflict: relabel in params.yaml to accept relabels"
        )
        raise annotation_error(path, new.where, what)


def fold(
    batches: list[tuple[Path, str]], manifest: pd.DataFrame, classes: tuple[str, ...], settings: LabelImportParams,
    snapshots: tuple[int, ...] = (),
) -> Imported:
    """Fold the batches, in the order given, into the labeled pool.

    ``batches`` pairs each file with the name the pool records as its ``source`` (its
    name in the annotation folder); a stored name is checked against the file's hash and
    position (``store.check_stored``). ``manifest`` needs columns ``id``, ``path``, ``split``;
    it may hold synthesised items too (``synthesised.labeling_manifest``), which alone may be
    labeled ``unrecognisable``.
    ``Imported.earlier[k]`` is the pool after the first ``k`` batches, for each ``k`` in ``snapshots``.
    """
    if settings.on_conflict not in CONFLICT_RULES:
        raise ParamsError(f"unknown on_conflict {settings.on_conflict!r}; choose one of: {', '.join(CONFLICT_RULES)}")
    if settings.annotators not in ANNOTATOR_RULES:
        rules = ", ".join(ANNOTATOR_RULES)
        raise ParamsError(f"unknown annotators rule {settings.annotators!r}; choose one of: {rules}")
    matcher = ItemMatcher(manifest)
    splits = dict(zip(manifest["id"], manifest["split"]))
    state: dict[str, _Label] = {}
    reports = []
    earlier = {0: empty_labeled()} if 0 in snapshots else {}
    for cycle, (path, name) in enumerate(batches, start=1):
        decisions, report = _read_batch(Path(path), name, cycle, matcher, splits, classes, settings)
        for item, decision in decisions.items():
            _apply(state, item, decision, Path(path), settings.on_conflict)
        reports.append(report)
        if cycle in snapshots:
            earlier[cycle] = _table(state)
    return Imported(_table(state), reports, earlier)


def _table(state: dict[str, _Label]) -> pd.DataFrame:
    if not state:
        return empty_labeled()
    rows = [(item, lab.label, lab.cycle, lab.source, lab.annotator) for item, lab in state.items()]
    table = pd.DataFrame(rows, columns=LABELED_COLUMNS)
    table["cycle"] = table["cycle"].astype("int64")
    return table.sort_values("id", kind="stable").reset_index(drop=True)


def import_labels(
    batches: list[Path], manifest: pd.DataFrame, classes: tuple[str, ...],
    on_conflict: str = "refuse", annotators: str = "majority", choice_name: str = "",
) -> pd.DataFrame:
    """The labeled pool from ``batches`` (each recorded under its file name)."""
    settings = LabelImportParams(on_conflict=on_conflict, annotators=annotators, choice_name=choice_name)
    return fold([(Path(p), Path(p).name) for p in batches], manifest, classes, settings).table


def write(layout: Layout, imported: Imported) -> None:
    """Replace the labeled pool, then the report; each file atomically (old or new, never a mix).
    The report records the pool's digest, so a later hand edit of the pool shows."""
    text = pool_text(imported.table)
    atomic_write_text(layout.labeled, text)
    report = {**imported.report(), "labeled_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    atomic_write_text(layout.import_report, json.dumps(report, indent=2) + "\n")
