"""``alcycle import`` and ``alcycle label remove``: add a batch to the store, rebuild the pool.

Each call holds the project's import lock from its first read to its last write, so two
imports at once are applied one after the other and neither is lost. Under the lock it
checks the new batch together with every stored one (exactly what label-import will
do), and only then writes: first the batch (atomically, under its content-hash name),
then the labeled pool (atomically); a batch that labels synthesised images (GAAL) keeps
their images in the store just before it. A crash anywhere leaves the old pool or the new
one; a batch stored just before a crash is picked up by the next import or
``dvc repro``. Importing bytes that are already stored changes nothing.
"""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from alcycle.annotations.formats import detect, suffix_of
from alcycle.annotations.history import check_none_missing, discarded_edit, last_rebuild
from alcycle.annotations.rebuild import BatchReport, Imported, fold, write
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import (
    copy_in,
    find_stored,
    import_lock,
    list_batches,
    next_number,
    stored_name,
)
from alcycle.fileio import file_digest
from alcycle.layout import Layout
from alcycle.params import Params
from alcycle.pool import read_manifest
from alcycle.synthesised import keep, labeling_manifest


@dataclass(frozen=True)
class ImportResult:
    source: Path
    stored: Path | None  # None: the batch adds or changes no label, so it was not stored
    new: bool  # False: nothing changed (the same bytes were stored already, or the same labels)
    report: BatchReport | None  # what the batch contributed (None when its bytes were already stored)
    note: str = ""  # a hand edit of the pool that this import discarded

    def describe(self) -> str:
        if self.stored is None:
            r = self.report
            text = f"{self.source}: adds or changes no label; not stored (format {r.format}, {r.labeled} label(s))"
        elif not self.new:
            text = f"{self.source}: already imported as {self.stored.name}; nothing changed"
        else:
            text = f"{self.source}: stored as {self.stored.name} (cycle {self.report.cycle}): " + _contribution(
                self.report
            )
        return text + (f"\n{self.note}" if self.note else "")


def _contribution(r: BatchReport) -> str:
    parts = [f"{r.labeled} label(s)" + (f", {r.removed} removal(s)" if r.removed else "")]
    parts.append(f"format {r.format}, matched by {' and '.join(r.matched_by)}")
    if r.cancelled:
        parts.append(f"{r.cancelled} cancelled annotation(s) skipped")
    corrected = [d for d in r.disagreements if "replaced" in d]
    if corrected:
        shown = "; ".join(f"{d['id']}: {d['replaced']} -> {d['chosen']!r} by {d['annotator']}" for d in corrected[:5])
        parts.append(f"{len(corrected)} label(s) replaced by the same annotator's later annotation ({shown})")
    disagreed = [d for d in r.disagreements if "votes" in d]
    if disagreed:
        shown = "; ".join(f"{d['id']}: {d['votes']} -> {d['chosen']!r}" for d in disagreed[:5])
        parts.append(f"{len(disagreed)} item(s) with disagreeing annotators ({shown})")
    return "; ".join(parts)


def import_file(layout: Layout, params: Params, source: Path) -> ImportResult:
    """Store ``source`` as the next batch and rebuild the labeled pool (see the module doc).
    A batch that adds or changes no label is reported and not stored."""
    source = Path(source)
    if not source.is_file():
        raise AnnotationError(f"{source}: not a file; expected an annotation export to import")
    with import_lock(layout):
        batches = list_batches(layout.annotations)
        last = last_rebuild(layout)
        check_none_missing(layout, batches, last)
        stored = [(p, p.name) for p in batches]
        digest = file_digest(source)
        # A batch may label the current query batch's synthesised images: stored, it keeps them.
        manifest = labeling_manifest(layout, read_manifest(layout.manifest), with_queries=True)
        before = last.built_from(batches)
        existing = find_stored(batches, digest)
        if existing is not None:
            # Still rebuild: a crash after storing the batch may have left the old pool.
            imported = fold(stored, manifest, params.classes, params.label_import, _known(before))
            note = discarded_edit(layout, last, imported.earlier.get(before))
            write(layout, imported)
            return ImportResult(source, existing, new=False, report=None, note=note)
        target = layout.annotations / stored_name(next_number(batches), digest, suffix_of(detect(source)))
        snapshots = _known(before) + (len(batches),)
        imported = fold(stored + [(source, target.name)], manifest, params.classes, params.label_import, snapshots)
        note = discarded_edit(layout, last, imported.earlier.get(before))
        unchanged = imported.earlier[len(batches)]
        if imported.table.equals(unchanged):
            write(layout, Imported(unchanged, imported.batches[:-1]))
            return ImportResult(source, None, new=False, report=imported.batches[-1], note=note)
        keep(layout, imported.table["id"])  # first: a stored batch always finds its images
        copy_in(source, target, digest)
        write(layout, imported)
        return ImportResult(source, target, new=True, report=imported.batches[-1], note=note)


def _known(count: int | None) -> tuple[int, ...]:
    return () if count is None else (count,)


def remove_labels(layout: Layout, params: Params, ids: list[str], reason: str) -> ImportResult:
    """Remove labels through a recorded removal batch (``id,removed_because``)."""
    if not reason.strip():
        raise AnnotationError("a removal needs a reason; expected --reason TEXT")
    # The time makes every removal a new batch, even one repeating an earlier removal.
    removed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "removed_because", "time"])
    writer.writerows([item, reason.strip(), removed_at] for item in ids)
    with tempfile.TemporaryDirectory() as folder:
        batch = Path(folder) / "removal.csv"
        batch.write_text(text.getvalue(), encoding="utf-8")
        return import_file(layout, params, batch)
