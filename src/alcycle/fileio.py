"""Atomic writes and content digests for the files users depend on."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file, then rename it to ``path``.

    Readers see the old file or the new one, never a mix: the temporary file lives in
    the same folder, so ``os.replace`` is a rename on one file system, which POSIX
    makes atomic. The fsync makes the rename safe against a crash too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the usual permissions of a new file instead.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write a table as CSV with Unix line endings (one line per row, diff-friendly)."""
    atomic_write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array))


@contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target`` that replaces it whole on success.

    A failure removes the staging folder and leaves ``target`` as it was, so readers never
    see a half-written folder and stale files never survive a rebuild.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    # mkdtemp makes the folder private (0700); the outputs are as readable as their parent.
    staging.chmod(target.parent.stat().st_mode & 0o777)
    try:
        yield staging
        if target.exists():
            retired = staging.with_suffix(".old")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the block, blocking until
    it is free. The kernel releases it when the process dies, so a killed holder never leaves
    it held."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
