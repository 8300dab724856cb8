"""Several annotations of one item in one batch -> one label, by ``label_import.annotators``.

First each person counts once: where one annotator labeled an item twice with different
labels (Label Studio keeps a resubmission as a second annotation), their later annotation
replaces the earlier one, unless the rule is ``refuse``. Then the people's labels are
settled by the rule: ``majority`` (a tie goes to the latest annotation), ``latest`` or
``refuse``. Every resolution becomes a record for the import report, so none goes unsaid.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from alcycle.annotations.records import Annotation, annotation_error


def when(path: Path, record: Annotation) -> datetime:
    """The annotation's time; one without a zone is taken as UTC, so all times compare."""
    try:
        moment = datetime.fromisoformat(record.when)
    except ValueError:
        what = f"annotation time {record.when!r} is not an ISO 8601 time; the 'latest' rule needs one"
        raise annotation_error(path, record.where, what) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class ItemVotes:
    """The annotations of one item in one batch: per annotator, one record per distinct label,
    so memory grows with items and annotators, not with the size of the file."""

    __slots__ = ("path", "item", "rule", "by_annotator")  # one per labeled item: keep it small

    def __init__(self, path: Path, item: str, rule: str) -> None:
        self.path, self.item, self.rule = path, item, rule
        self.by_annotator: dict[str, list[Annotation]] = {}

    @property
    def where(self) -> str:
        """Where the item's first annotation is, for error messages."""
        return next(iter(self.by_annotator.values()))[0].where

    def add(self, record: Annotation) -> None:
        earlier = self.by_annotator.setdefault(record.annotator, [])
        for i, kept in enumerate(earlier):
            if kept.label == record.label:
                if kept.when and record.when and when(self.path, record) > when(self.path, kept):
                    earlier[i] = record  # the same label again, later: it counts at its later time
                return
        if earlier:
            self._check_correction(earlier[0], record)
        earlier.append(record)

    def _check_correction(self, earlier: Annotation, record: Annotation) -> None:
        """A second, different label from one person: allowed (the later wins) when it can be
        told which is later and the rule is not ``refuse``."""
        who = f"annotator {record.annotator!r}" if record.annotator else "the batch"
        if self.rule == "refuse" or not record.annotator:
            what = (
                f"id {self.item!r} is labeled {record.label!r} but {earlier.where} labeled it {earlier.label!r}; "
                f"expected one label per id from {who}"
            )
            if record.annotator:
                what += "; set label_import.annotators: latest or majority to let a person's later label count"
            raise annotation_error(self.path, record.where, what)
        if not (earlier.when and record.when):
            what = (
                f"{who} labeled id {self.item!r} {earlier.label!r} ({earlier.where}) and {record.label!r} "
                f"({record.where}) and the export gives no times to tell which is later; expected annotation "
                "times, or one label per id from each annotator"
            )
            raise annotation_error(self.path, record.where, what)

    def latest_per_annotator(self) -> tuple[dict[str, Annotation], list[dict]]:
        """Each annotator's latest annotation, and a record per annotator whose label it replaced."""
        latest: dict[str, Annotation] = {}
        corrections = []
        for annotator, records in self.by_annotator.items():
            if len(records) > 1:
                records = sorted(records, key=lambda r: when(self.path, r))
                if when(self.path, records[-1]) == when(self.path, records[-2]):
                    what = f"annotator {annotator!r} gave id {self.item!r} two labels at the same time"
                    raise annotation_error(self.path, records[-1].where, what + "; expected one label per id")
                replaced = [r.label for r in records[:-1]]
                corrections.append({"id": self.item, "annotator": annotator, "replaced": replaced,
                                    "chosen": records[-1].label})
            latest[annotator] = records[-1]
        return latest, corrections


def decide(votes: ItemVotes) -> tuple[str, str, list[dict]]:
    """One label for the item: (label, ";"-joined annotators who gave it, resolution records)."""
    by_annotator, resolutions = votes.latest_per_annotator()
    path, item, rule = votes.path, votes.item, votes.rule
    labels: dict[str, list[str]] = defaultdict(list)
    for annotator, record in by_annotator.items():
        labels[record.label].append(annotator)
    if len(labels) == 1:
        label = next(iter(labels))
        return label, _joined(labels[label]), resolutions
    ballot = ", ".join(f"{lab!r} by {', '.join(sorted(who)) or 'anonymous'}" for lab, who in sorted(labels.items()))
    first = next(iter(by_annotator.values()))
    if rule == "refuse":
        what = (
            f"annotators disagree on id {item!r} ({ballot}); set label_import.annotators: "
            "majority or latest in params.yaml to resolve disagreements"
        )
        raise annotation_error(path, first.where, what)
    counts = Counter({lab: len(who) for lab, who in labels.items()})
    top = max(counts.values())
    candidates = [lab for lab, n in counts.items() if rule == "latest" or n == top]
    if len(candidates) == 1:
        label = candidates[0]
    else:  # "latest", or a majority tie: the most recent annotation among the candidates decides
        timed = [r for r in by_annotator.values() if r.label in candidates]
        if any(not r.when for r in timed):
            what = (
                f"annotators disagree on id {item!r} ({ballot}) and the export gives no annotation times "
                f"to pick the latest; expected times, or label_import.annotators: refuse"
            )
            raise annotation_error(path, first.where, what)
        label = max(timed, key=lambda r: when(path, r)).label
    votes_by_label = {lab: sorted(who) for lab, who in sorted(labels.items())}
    return label, _joined(labels[label]), [*resolutions, {"id": item, "votes": votes_by_label, "chosen": label}]


def _joined(annotators: list[str]) -> str:
    return ";".join(sorted(a for a in annotators if a))
