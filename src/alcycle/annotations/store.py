"""The annotation folder as an append-only store of batches, each kept exactly as it arrived.

A stored batch is named ``batch-<NNNN>-<first 16 hex of its SHA-256><ext>``: its position
in the folder and its content hash (the ``batch-`` prefix sorts it after batches named
``batch-NNNN.csv`` by hand or by older versions), so ``labeled.csv``'s ``source`` column
names the exact bytes that gave each label, and label-import refuses a batch whose bytes
no longer match its name. Writers hold an exclusive lock (``data/.import.lock``) for the whole
check-store-rebuild sequence, so two imports at once are applied one after the other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alcycle.annotations.records import AnnotationError
from alcycle.fileio import atomic_write, exclusive_lock, file_digest
from alcycle.layout import Layout

STORED_NAME = re.compile(r"^batch-(?P<number>\d{4,})-(?P<digest>[0-9a-f]{16})(?P<ext>\.[a-z]+)$")
NOT_BATCHES = (".md",)  # notes for annotators may live next to the batches


def list_batches(folder: Path) -> list[Path]:
    """The batches in ``folder``, sorted by file name: every regular file except hidden
    files (locks, temporary files) and ``*.md`` notes. The format of each is read from its
    content, never from its extension. An absent folder holds no batches (git keeps no
    empty folders, so a fresh clone before the first batch has none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix not in NOT_BATCHES),
        key=lambda p: p.name,
    )


def check_stored(path: Path, name: str, position: int, digest: str) -> None:
    """Refuse a batch stored as ``name`` whose content (SHA-256 ``digest``) changed, or that is
    not at the position its number says (a batch before it was deleted, or one was added out
    of order). A batch placed by hand records nothing to check."""
    match = STORED_NAME.match(name)
    if match is None:
        return
    if int(match["number"]) != position:
        raise AnnotationError(
            f"{path}: stored as batch {int(match['number'])} but it is batch {position} in the folder; "
            "batches are append-only: restore any deleted batch from git (remove labels with "
            "`alcycle label remove`), and name batches placed by hand so that they sort in order"
        )
    if not digest.startswith(match["digest"]):
        raise AnnotationError(
            f"{path}: content changed since it was imported (its name records SHA-256 {match['digest']}…); "
            "batches are append-only: restore it (git checkout -- <file>) and import corrections as a new batch"
        )


def stored_name(number: int, digest: str, suffix: str) -> str:
    return f"batch-{number:04d}-{digest[:16]}{suffix}"


def find_stored(batches: list[Path], digest: str) -> Path | None:
    """The stored batch with exactly this SHA-256, if any."""
    for path in batches:
        match = STORED_NAME.match(path.name)
        if match and digest.startswith(match["digest"]) and file_digest(path) == digest:
            return path
    return None


def next_number(batches: list[Path]) -> int:
    """The number the next stored batch gets: its position in the folder (batches placed by
    hand count too)."""
    return len(batches) + 1


def copy_in(source: Path, target: Path, digest: str) -> None:
    """Copy ``source`` to ``target`` atomically, checking the copy's hash before it appears."""

    def write(handle) -> None:
        copied = hashlib.sha256()
        with open(source, "rb") as original:
            for block in iter(lambda: original.read(1 << 20), b""):
                copied.update(block)
                handle.write(block)
        if copied.hexdigest() != digest:
            raise AnnotationError(f"{source}: changed while it was being imported; import it again")

    atomic_write(target, write)


def store_new(layout: Layout, data: bytes, suffix: str) -> Path:
    """Store ``data`` as the next batch (no checks: for the oracle, whose labels come from
    the ground truth); returns its path. Bytes already stored are not stored twice."""
    digest = hashlib.sha256(data).hexdigest()
    with import_lock(layout):
        batches = list_batches(layout.annotations)
        existing = find_stored(batches, digest)
        if existing is not None:
            return existing
        target = layout.annotations / stored_name(next_number(batches), digest, suffix)
        atomic_write(target, lambda handle: handle.write(data))
        return target


@contextmanager
def import_lock(layout: Layout) -> Iterator[None]:
    """Hold the project's import lock for the duration of the block."""
    layout.import_lock.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(layout.import_lock):
        yield
