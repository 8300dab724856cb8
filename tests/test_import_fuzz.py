"""Property test: no input, however malformed, corrupts the labeled pool.

Hypothesis feeds ``import_file`` CSV and TSV files (any header, cell and encoding), Label Studio
JSON built from random tasks and then maybe truncated, the real export fixtures with
random bytes changed, and raw bytes. Every input must end one of two ways: refused with
an ``AnnotationError`` naming the file, with the pool, report and stored batches exactly
as before; or accepted, with a pool that only holds manifest ids of the pool split,
known classes, every earlier label (unless it was a removal batch), and the batch
stored byte for byte. Any other exception is a bug. ``benchmarks/import_fuzz.py`` runs
the same property for longer and prints the counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alcycle.annotations.importer import import_file
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import list_batches
from alcycle.layout import Layout
from alcycle.params import Params
from alcycle.pool import read_labeled, read_manifest
from test_import import DIGITS, EXPORTS, make_project

pytestmark = pytest.mark.slow  # fuzzing: hundreds of imports

IDS = [f"mnist-{i:04d}" for i in range(6)]
FIXTURES = sorted(p.read_bytes() for p in EXPORTS.iterdir()
                  if p.suffix in (".json", ".csv", ".tsv", ".xml", ".zip") and p.name != "expected.csv")

cell = st.one_of(
    st.sampled_from(IDS + list(DIGITS) + ["", " ", "Five", "=1+1", "@x", "../x.png", "mnist-0001.png", "5\u00a0",
                                          "/data/local-files/?d=images/mnist-0002.png"]),
    st.text(max_size=10),
)
csv_text = st.builds(
    lambda sep, header, rows: "\n".join(sep.join(row) for row in [header, *rows]) + "\n",
    st.sampled_from([",", "\t"]),  # Label Studio also exports TSV; a user's own TSV must be refused cleanly
    st.sampled_from([["id", "label"], ["id", "label", "annotator", "time"], ["label", "id"], ["id", "removed_because"],
                     ["id", "class"], ["annotation_id", "annotator", "created_at", "updated_at", "lead_time", "id",
                                       "choice", "alcycle_id"]]),
    st.lists(st.lists(cell, min_size=1, max_size=8), max_size=6),
)
csv_input = st.builds(lambda text, encoding: text.encode(encoding, errors="replace"), csv_text,
                      st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
annotation = st.fixed_dictionaries({
    "id": st.integers(0, 5), "completed_by": st.one_of(st.integers(0, 3), cell), "was_cancelled": st.booleans(),
    "updated_at": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "", "yesterday"]),
    "result": st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["choices", "rectanglelabels"]), "from_name": st.sampled_from(["label", "other"]),
        "to_name": st.just("image"), "value": st.fixed_dictionaries({"choices": st.lists(cell, max_size=2)})}),
        max_size=2),
})
task = st.fixed_dictionaries({
    "id": st.integers(0, 9),
    "data": st.fixed_dictionaries({"image": cell}, optional={"alcycle_id": cell}),
    "annotations": st.lists(annotation, max_size=3),
})
json_input = st.builds(lambda tasks, cut: json.dumps(tasks).encode()[: None if cut == 0 else -cut],
                       st.lists(task, max_size=4), st.integers(0, 40))
mutated = st.builds(
    lambda data, edits: _mutate(data, edits), st.sampled_from(FIXTURES),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.binary(max_size=3)), min_size=1, max_size=4),
)
INPUTS = st.one_of(csv_input, json_input, mutated, st.binary(max_size=300))


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Replace ``cut`` bytes at each position with ``insert``."""
    for position, cut, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + cut:]
    return data


def snapshot(layout: Layout) -> tuple:
    return (layout.labeled.read_bytes(), layout.import_report.read_bytes(),
            {p.name: p.read_bytes() for p in layout.annotations.iterdir()})


def check_one(layout: Layout, params: Params, content: bytes) -> str:
    """Import ``content`` into the project, check the outcome, and put the project back.

    Returns "accepted" or "refused"."""
    old_pool = read_labeled(layout.labeled)
    before = snapshot(layout)
    export = layout.root.parent / "export"
    export.write_bytes(content)
    try:
        result = import_file(layout, params, export)
    except AnnotationError as error:
        assert str(error).startswith(str(export)), error
        assert snapshot(layout) == before
        return "refused"
    pool = read_labeled(layout.labeled)
    manifest = read_manifest(layout.manifest)
    assert set(pool["id"]) <= set(manifest.loc[manifest["split"] == "pool", "id"])
    assert set(pool["label"]) <= set(DIGITS)
    if result.new and result.report.format != "alcycle-removal":
        assert set(old_pool["id"]) <= set(pool["id"])
    assert result.stored.read_bytes() == content
    assert len(list_batches(layout.annotations)) == len(before[2]) - 1 + result.new  # README.md is no batch
    if result.new:  # back to the template's state for the next input
        result.stored.unlink()
        layout.labeled.write_bytes(before[0])
        layout.import_report.write_bytes(before[1])
    assert snapshot(layout) == before
    return "accepted"


def fuzz_project(base: Path) -> tuple[Layout, Params]:
    """A project with one imported batch and a note; every input is checked against this state."""
    layout, params = make_project(base, IDS + ["mnist-0099"], DIGITS, test=("mnist-0099",))
    (layout.annotations / "README.md").write_text("notes\n")
    first = base / "first.csv"
    first.write_text("id,label\nmnist-0005,3\n")
    import_file(layout, params, first)
    return layout, params


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Layout, Params]:
    return fuzz_project(tmp_path_factory.mktemp("fuzz"))


def fuzz(layout: Layout, params: Params, examples: int, derandomize: bool) -> Counter:
    counts: Counter = Counter()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(content=INPUTS)
    def run(content: bytes) -> None:
        counts[check_one(layout, params, content)] += 1

    run()
    return counts


def test_no_input_corrupts_the_pool(project):
    counts = fuzz(*project, examples=300, derandomize=True)
    print(f"import fuzz: {sum(counts.values())} inputs, {counts['accepted']} accepted, "
          f"{counts['refused']} refused with a clear error, 0 corrupted the pool")
    assert sum(counts.values()) >= 300
    assert counts["accepted"] > 0 and counts["refused"] > 0
