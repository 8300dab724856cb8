"""The labeled pool survives crashes, concurrent imports and huge files.

The crash and concurrency tests run real ``alcycle import`` processes: one killed with
SIGKILL at points spread over its whole run, and several started at the same moment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alcycle.annotations.importer import import_file
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import list_batches
from alcycle.layout import Layout
from alcycle.pool import read_labeled
from test_import import make_project

pytestmark = pytest.mark.slow  # kill -9, concurrent imports, a huge export

N_ITEMS = 3000
CLASSES = ("cat", "dog")


def item_ids(n: int = N_ITEMS) -> list[str]:
    return [f"item-{i:05d}" for i in range(n)]


def batch_csv(path: Path, ids: list[str], seed: int) -> Path:
    labels = np.random.default_rng(seed).choice(CLASSES, size=len(ids))
    pd.DataFrame({"id": ids, "label": labels}).to_csv(path, index=False, lineterminator="\n")
    return path


def start_import(layout: Layout, *files: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "alcycle", "--project", str(layout.root), "import", *map(str, files)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def seeded(tmp_path):
    """A project of 3,000 items with one imported batch, and a big second batch to import."""
    layout, params = make_project(tmp_path, item_ids(), CLASSES)
    import_file(layout, params, batch_csv(tmp_path / "first.csv", item_ids()[:10], seed=0))
    big = batch_csv(tmp_path / "big.csv", item_ids()[10:], seed=1)
    return layout, params, big


def state(layout: Layout) -> tuple[bytes, dict[str, bytes]]:
    return layout.labeled.read_bytes(), {p.name: p.read_bytes() for p in list_batches(layout.annotations)}


def test_kill_9_anywhere_in_an_import_leaves_the_old_pool_or_the_new(seeded, tmp_path):
    layout, params, big = seeded
    pristine = tmp_path / "pristine"
    shutil.copytree(layout.root, pristine)
    old_pool, old_batches = state(layout)
    started = time.perf_counter()
    finished = start_import(layout, big)
    assert finished.wait(timeout=120) == 0, finished.stderr.read()
    duration = time.perf_counter() - started
    new_pool, new_batches = state(layout)
    assert new_pool != old_pool and len(new_batches) == len(old_batches) + 1

    outcomes = []
    # Kill points as shares of the latest full import's duration (the redo below measures it
    # again), so they keep spanning the whole run when a busy machine slows every import.
    for share in [*np.linspace(0.02, 1.0, 7), 1.5]:
        delay = share * duration
        shutil.rmtree(layout.root)
        shutil.copytree(pristine, layout.root)
        process = start_import(layout, big)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        pool, batches = state(layout)
        assert pool in (old_pool, new_pool), f"killed after {delay:.2f}s: a labeled pool that is neither"
        # The new batch is absent or complete; never a partial file under a batch name.
        assert batches in (old_batches, new_batches), f"killed after {delay:.2f}s: {sorted(batches)}"
        stored = ", batch stored" if batches == new_batches else ""
        outcomes.append(("new pool" if pool == new_pool else "old pool") + stored)
        # Importing again finishes the job, whatever the kill left.
        redo_started = time.perf_counter()
        redo = start_import(layout, big)
        assert redo.wait(timeout=120) == 0, redo.stderr.read()
        if batches != new_batches:  # a whole import again, not the no-op of a stored batch
            duration = time.perf_counter() - redo_started
        assert state(layout) == (new_pool, new_batches)
    assert "old pool" in outcomes and "new pool, batch stored" in outcomes, outcomes


def test_concurrent_imports_are_serialised_and_none_is_lost(seeded, tmp_path):
    layout, params, _ = seeded
    ids = item_ids()
    parts = [ids[10 + 600 * k: 10 + 600 * (k + 1)] for k in range(3)]
    files = [batch_csv(tmp_path / f"part-{k}.csv", part, seed=10 + k) for k, part in enumerate(parts)]
    processes = [start_import(layout, path) for path in files]
    for process in processes:
        assert process.wait(timeout=180) == 0, process.stderr.read()
    batches = list_batches(layout.annotations)
    assert [p.name[:11] for p in batches] == ["batch-0001-", "batch-0002-", "batch-0003-", "batch-0004-"]
    assert sorted(p.read_bytes() for p in batches[1:]) == sorted(p.read_bytes() for p in files)
    pool = read_labeled(layout.labeled)
    expected = pd.concat([pd.read_csv(p, dtype=str) for p in files] + [pd.read_csv(tmp_path / "first.csv", dtype=str)])
    assert dict(zip(pool["id"], pool["label"])) == dict(zip(expected["id"], expected["label"]))
    assert sorted(pool["cycle"].unique()) == [1, 2, 3, 4]


def test_a_huge_export_is_streamed_in_bounded_memory(seeded, tmp_path):
    """A 6.5 MB export whose last row is bad: read to the end in a few MB, then refused."""
    layout, params, _ = seeded
    before = state(layout)
    huge = tmp_path / "huge.csv"
    with open(huge, "w") as handle:
        handle.write("id,label\n")
        row = "".join(f"{i},cat\n" for i in item_ids(100))
        for _ in range(5000):
            handle.write(row)
        handle.write("item-00001,cat\nnot-an-item,cat\n")
    assert huge.stat().st_size > 6_000_000
    tracemalloc.start()
    try:
        with pytest.raises(AnnotationError, match=r"line 500003: id 'not-an-item' is not in the pool manifest"):
            import_file(layout, params, huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"peak {peak / 1e6:.1f} MB for a {huge.stat().st_size / 1e6:.1f} MB file"
    assert state(layout) == before


def test_an_interrupted_write_leaves_no_batch_behind(seeded, monkeypatch):
    """An error while the pool is being written (disk full, say) leaves the stored batch,
    never a half-written pool; importing again completes."""
    layout, params, big = seeded
    old_pool, _ = state(layout)
    import alcycle.annotations.rebuild as rebuild

    def fail(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(rebuild, "atomic_write_text", fail)
    with pytest.raises(OSError):
        import_file(layout, params, big)
    assert layout.labeled.read_bytes() == old_pool
    monkeypatch.undo()
    result = import_file(layout, params, big)
    assert not result.new and len(read_labeled(layout.labeled)) == N_ITEMS
    assert not [name for name in os.listdir(layout.labeled.parent) if name.endswith(".tmp")]
