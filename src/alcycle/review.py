"""``alcycle review``: how the labeled pool changed between two git revisions, as Markdown.

Reads ``data/labeled.csv`` as git stored it at each revision (or as the working tree
holds it) and reports the items added, relabeled and removed: counts, by class, by the
batch they came from and by annotator, then each relabel and removal. Meant for the
description of a pull request that adds annotation batches.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alcycle.errors import AlcycleError
from alcycle.layout import Layout

# The pool's columns this report reads. Revisions made before the annotator column existed
# lack it: their annotator is unknown, "" as in the current file.
REQUIRED = ["id", "label", "source"]
UNKNOWN = "(unknown)"


class ReviewError(AlcycleError, RuntimeError):
    """A revision or a labeled pool that cannot be read."""


@dataclass(frozen=True)
class PoolDiff:
    """Rows keyed by id. ``added``: id, label, source, annotator (as after). ``relabeled``: id,
    old, label, source, annotator (label, source and annotator as after). ``removed``: id,
    label, source, annotator (as before)."""

    before: int
    after: int
    added: pd.DataFrame
    relabeled: pd.DataFrame
    removed: pd.DataFrame


def review(layout: Layout, rev_a: str, rev_b: str | None = None) -> str:
    """The Markdown summary of the labeled pool from ``rev_a`` to ``rev_b`` (None: the working tree)."""
    before = labeled_at(layout, rev_a)
    after = labeled_at(layout, rev_b)
    return markdown(diff_pools(before, after), f"`{rev_a}`", f"`{rev_b}`" if rev_b else "the working tree")


def labeled_at(layout: Layout, rev: str | None) -> pd.DataFrame:
    """The labeled pool at git revision ``rev`` (None: the file on disk); a missing file is an empty pool."""
    if rev is None:
        path = layout.labeled
        return parse_labeled(path.read_text(encoding="utf-8"), str(path)) if path.exists() else parse_labeled("", "")
    root = layout.root
    # A revision starting with "-" would reach git as an option.
    if rev.startswith("-") or _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode:
        raise ReviewError(f"'{rev}' is not a git revision (commit, branch or tag) of the repository at {root}")
    # git show names paths from the repository's top; the project may be a folder inside it.
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip()
    spec = f"{rev}:{prefix}{layout.labeled.relative_to(layout.root).as_posix()}"
    if _git(root, "cat-file", "-e", spec).returncode != 0:
        return parse_labeled("", spec)
    return parse_labeled(_git(root, "show", spec).stdout, spec)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    if not Path(root).is_dir():
        raise ReviewError(f"{root}: no such project folder")
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ReviewError("git is not installed; alcycle review reads the labeled pool from git") from None
    if done.returncode == 128 and "not a git repository" in done.stderr:
        raise ReviewError(f"{Path(root).resolve()} is not inside a git repository")
    return done


def parse_labeled(text: str, where: str) -> pd.DataFrame:
    """id, label, source, annotator of a labeled.csv's text ("" is an empty pool), indexed by id."""
    columns = REQUIRED + ["annotator"]
    if not text.strip():
        return pd.DataFrame({c: pd.Series(dtype=str) for c in columns}).set_index("id", drop=False)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ReviewError(f"{where}: missing column(s) {missing}; a labeled pool has id, label, cycle, source"
                          f"{', annotator' if 'annotator' in frame.columns else ' (and annotator)'}")
    duplicated = frame["id"][frame["id"].duplicated()].tolist()
    if duplicated:
        raise ReviewError(f"{where}: id {duplicated[0]!r} is listed twice; a labeled pool has one line per item")
    if "annotator" not in frame.columns:
        frame["annotator"] = ""
    return frame[columns].set_index("id", drop=False)


def diff_pools(before: pd.DataFrame, after: pd.DataFrame) -> PoolDiff:
    """What changed from ``before`` to ``after`` (both from ``parse_labeled``), each part sorted by id."""
    added = after.loc[sorted(set(after.index) - set(before.index))]
    removed = before.loc[sorted(set(before.index) - set(after.index))]
    common = sorted(set(before.index) & set(after.index))
    changed = [i for i in common if before.at[i, "label"] != after.at[i, "label"]]
    relabeled = after.loc[changed].assign(old=before.loc[changed, "label"])
    return PoolDiff(len(before), len(after), added.reset_index(drop=True),
                    relabeled[["id", "old", "label", "source", "annotator"]].reset_index(drop=True),
                    removed.reset_index(drop=True))


def markdown(diff: PoolDiff, old: str, new: str) -> str:
    """The report: counts, three breakdowns, then every relabel and removal."""
    lines = [f"## Labeled pool: {old} → {new}", "",
             f"{diff.before} → {diff.after} labeled items: **{len(diff.added)} added**, "
             f"**{len(diff.relabeled)} relabeled**, **{len(diff.removed)} removed**.", ""]
    by_class = pd.DataFrame({
        "added": diff.added["label"].value_counts(),
        "relabeled from": diff.relabeled["old"].value_counts(),
        "relabeled to": diff.relabeled["label"].value_counts(),
    })
    lines += _table("By class", "class", by_class)
    for key, title in (("source", "By source"), ("annotator", "By annotator")):
        counts = pd.DataFrame({"added": diff.added[key].value_counts(),
                               "relabeled": diff.relabeled[key].value_counts()})
        lines += _table(title, key, counts)
    if len(diff.relabeled):
        lines += ["### Relabels", ""] + [
            f"- `{r.id}`: {_cell(r.old)} → {_cell(r.label)} ({_cell(r.source)})" for r in diff.relabeled.itertuples()
        ] + [""]
    if len(diff.removed):
        lines += ["### Removals", ""] + [
            f"- `{r.id}`: {_cell(r.label)} → removed (was from {_cell(r.source)})" for r in diff.removed.itertuples()
        ] + [""]
    return "\n".join(lines)


def _table(title: str, key: str, counts: pd.DataFrame) -> list[str]:
    """A Markdown table of ``counts`` (one row per value of ``key``, sorted), or nothing when empty."""
    if counts.empty:
        return []
    counts = counts.fillna(0).astype(int).sort_index()
    rows = [f"| {_cell(value)} | " + " | ".join(str(n) for n in row) + " |"
            for value, row in zip(counts.index, counts.to_numpy())]
    header = f"| {key} | " + " | ".join(counts.columns) + " |"
    rule = "|---|" + "---:|" * len(counts.columns)
    return [f"### {title}", "", header, rule, *rows, ""]


def _cell(value: str) -> str:
    """A value as Markdown shows it inside a table or a list: "" is unknown, and ``|`` cannot end a cell."""
    return value.replace("|", "\\|") if value else UNKNOWN
