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
import json
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import NOT_BATCHES
from alcycle.fileio import file_digest
from alcycle.layout import Layout

RELABEL_PREFIX = "relabel:"


def _report(layout: Layout) -> dict:
    try:
        report = json.loads(layout.import_report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no report yet: the other witnesses speak
    return report if isinstance(report, dict) else {}


def reported_batches(layout: Layout) -> list[str] | None:
    """The batch names the last rebuild read, in order; None without a readable report."""
    try:
        return [batch["batch"] for batch in _report(layout)["batches"]]
    except (KeyError, TypeError):
        return None


def _edited(layout: Layout) -> bool | None:
    """Whether the pool on disk differs from the one the last rebuild wrote; None when unknown
    (no pool, or a report from before the pool's digest was recorded)."""
    recorded = _report(layout).get("labeled_sha256")
    if not recorded or not layout.labeled.is_file():
        return None
    return file_digest(layout.labeled) != recorded


def _pool_sources(layout: Layout) -> set[str]:
    if _edited(layout):
        return set()  # a hand-edited pool names what the hand wrote, not what was stored
    try:
        with open(layout.labeled, newline="", encoding="utf-8") as handle:
            return {row["source"].removeprefix(RELABEL_PREFIX) for row in csv.DictReader(handle) if row.get("source")}
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()


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


def check_none_missing(layout: Layout, present: list[Path]) -> None:
    """Refuse to rebuild the pool while a batch that the project stored is missing from the folder."""
    here = {p.name for p in present}
    witnesses: dict[str, list[str]] = defaultdict(list)
    for name in reported_batches(layout) or []:
        witnesses[name].append(f"listed in {layout.import_report}")
    for name in _pool_sources(layout):
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


def discarded_edit(layout: Layout, expected: pd.DataFrame | None) -> str:
    """A note when the pool on disk is not the one the last rebuild wrote (``expected``), else ""."""
    edited = _edited(layout)
    if expected is None or edited is False or not layout.labeled.is_file():
        return ""
    try:
        on_disk = layout.labeled.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        on_disk = ""
    rebuilt = pool_text(expected)
    if on_disk == rebuilt:
        return ""
    old, new = _rows(on_disk), _rows(rebuilt)
    changed = {row[0] for row in (old - new) + (new - old)}
    return (
        f"discarded a hand edit of {layout.labeled}: {len(changed)} row(s) differed from what the batches give; "
        "the pool is rebuilt from data/annotations: add labels with `alcycle import FILE`, take them away "
        "with `alcycle label remove ID... --reason TEXT`"
    )
