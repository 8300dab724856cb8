"""What the project knows it stored, checked whenever the labeled pool is rebuilt.

The annotation folder is append-only: every batch that ever entered the pool must still be
there, or the pool would silently shrink. Three witnesses name the batches: label-import's
report (``metrics/label_import.json``, every batch the last rebuild read), the labeled pool
(each label's ``source`` batch) and git (batches in the index or in ``HEAD``). A batch that
any of them names and the folder lacks stops the rebuild.

The pool itself is rebuilt from the batches, never edited: a hand edit of
``data/labeled.csv`` is discarded, and said so, with how many rows differed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import NOT_BATCHES
from alcycle.layout import Layout

RELABEL_PREFIX = "relabel:"


@dataclass(frozen=True)
class LastRebuild:
    """What the last rebuild left behind, read once: the batches its report lists (None
    without a readable report), the pool on disk (None when absent or unreadable), and
    whether that pool is still the one the rebuild wrote (None when the report predates
    the pool's recorded digest)."""

    batches: list[str] | None
    pool: str | None
    edited: bool | None

    def built_from(self, batches: list[Path]) -> int | None:
        """How many of ``batches`` the pool on disk was built from, if known."""
        if self.batches is None or self.batches != [p.name for p in batches[: len(self.batches)]]:
            return None
        return len(self.batches)

    def sources(self) -> set[str]:
        """The batches the pool on disk names; none from a hand-edited pool, which names what
        the hand wrote, not what was stored."""
        if self.pool is None or self.edited:
            return set()
        try:
            rows = csv.DictReader(self.pool.splitlines())
            return {row["source"].removeprefix(RELABEL_PREFIX) for row in rows if row.get("source")}
        except csv.Error:
            return set()


def last_rebuild(layout: Layout) -> LastRebuild:
    """Read the report and the pool on disk, each once."""
    try:
        report = json.loads(layout.import_report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {}  # no report yet: the other witnesses speak
    report = report if isinstance(report, dict) else {}
    try:
        batches = [batch["batch"] for batch in report["batches"]]
    except (KeyError, TypeError):
        batches = None
    try:
        data = layout.labeled.read_bytes()
        pool = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return LastRebuild(batches, None, None)
    recorded = report.get("labeled_sha256")
    edited = hashlib.sha256(data).hexdigest() != recorded if recorded else None
    return LastRebuild(batches, pool, edited)


def _git_batches(folder: Path) -> set[str]:
    """Names of the files git knows in ``folder`` (index and ``HEAD``); none outside a git work tree."""
    names: set[str] = set()
    for command in (["ls-files"], ["ls-tree", "-r", "--name-only", "HEAD"]):
        try:
            done = subprocess.run(["git", *command, "--", "."], cwd=folder, capture_output=True, text=True, check=False)
        except OSError:  # no git on this machine
            return names
        if done.returncode == 0:
            names.update(line for line in done.stdout.splitlines() if "/" not in line)
    return {n for n in names if not n.startswith(".") and Path(n).suffix not in NOT_BATCHES}


def check_none_missing(layout: Layout, present: list[Path], last: LastRebuild) -> None:
    """Refuse to rebuild the pool while a batch that the project stored is missing from the folder."""
    here = {p.name for p in present}
    witnesses: dict[str, list[str]] = defaultdict(list)
    for name in last.batches or []:
        witnesses[name].append(f"listed in {layout.import_report}")
    for name in last.sources():
        witnesses[name].append(f"named by {layout.labeled}")
    if layout.annotations.is_dir():
        for name in _git_batches(layout.annotations):
            witnesses[name].append("tracked by git")
    missing = sorted(name for name in witnesses if name not in here)
    if not missing:
        return
    lines = [f"{name}: missing from {layout.annotations} ({'; '.join(witnesses[name])})" for name in missing]
    restore = " ".join(str(layout.annotations / name) for name in missing)
    raise AnnotationError(
        "\n".join(lines) + "\nbatches are append-only and the pool is rebuilt from all of them: restore "
        f"{'it' if len(missing) == 1 else 'them'} with `git checkout -- {restore}` (or copy back the export "
        "you imported); to take labels away, use `alcycle label remove ID... --reason TEXT`"
    )


def _rows(text: str) -> Counter:
    return Counter(tuple(row) for row in list(csv.reader(text.splitlines()))[1:] if row)


def pool_text(table: pd.DataFrame) -> str:
    """The labeled pool as written: CSV with Unix line endings, one line per row (diff-friendly)."""
    return table.to_csv(index=False, lineterminator="\n")


def discarded_edit(layout: Layout, last: LastRebuild, expected: pd.DataFrame | None) -> str:
    """A note when the pool on disk is not the one the last rebuild wrote (``expected``), else ""."""
    if expected is None or last.pool is None or last.edited is False:
        return ""
    on_disk, rebuilt = last.pool, pool_text(expected)
    if on_disk == rebuilt:
        return ""
    old, new = _rows(on_disk), _rows(rebuilt)
    changed = {row[0] for row in (old - new) + (new - old)}
    return (
        f"discarded a hand edit of {layout.labeled}: {len(changed)} row(s) differed from what the batches give; "
        "the pool is rebuilt from data/annotations: add labels with `alcycle import FILE`, take them away "
        "with `alcycle label remove ID... --reason TEXT`"
    )
