"""What every annotation reader yields, whatever tool wrote the file.

A reader turns one export file into a stream of :class:`Annotation` records, one per
annotation (an item labeled by three people gives three records). Matching records to
manifest ids, checking classes and resolving disagreements happen later, in
``alcycle.stages.label_import``, the same way for every format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alcycle.errors import AlcycleError

# Values a spreadsheet would run as a formula (OWASP's CSV-injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AnnotationError(AlcycleError, ValueError):
    """An annotation file is unusable; the message names the file, where in it, and what was expected."""


def annotation_error(path: Path, where: str, what: str) -> AnnotationError:
    """``"<path>, <where>: <what>"``, e.g. ``"batch.json, task 3: class '7x' is unknown; ..."``."""
    return AnnotationError(f"{path}, {where}: {what}")


@dataclass(frozen=True)
class Annotation:
    """One annotation of one item, as the file states it.

    ``item`` is alcycle's id when ``by == "id"``, else the image reference exactly as the
    file wrote it (``by == "file"``: a URL, a path or a bare file name). ``label`` is None
    for a cancelled (skipped) annotation and for a removal. ``where`` locates the record
    for error messages: ``"line 12"``, ``"task 3, annotation 7"``, ``"image 'a.png'"``.
    """

    item: str
    by: str  # "id" or "file"
    label: str | None
    where: str
    annotator: str = ""  # "" when the format does not say who labeled
    when: str = ""  # ISO 8601 time of the annotation; "" when the format does not say
    cancelled: bool = False
    removed: bool = False  # an explicit removal (``alcycle label remove``)
    reason: str = ""  # why it was removed
