"""Tests for the label-import stage: known-answer tables and one table of bad inputs."""

from __future__ import annotations

import dataclasses
import hashlib

import re
from pathlib import Path

import pandas as pd
import pytest

from alcycle.layout import Layout
from alcycle.params import LabelImportParams
from alcycle.annotations.rebuild import fold, import_labels
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import list_batches
from alcycle.stages.label_import import run
from conftest import make_params

CLASSES = ("cat", "dog")
MANIFEST = pd.DataFrame(
    {
        "id": ["a", "b", "c", "t"],
        "path": ["images/a.png", "images/b.png", "images/c.png", "images/t.png"],
        "split": ["pool", "pool", "pool", "test"],
    }
)



def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def project(tmp_path: Path, on_conflict: str = "refuse", annotators: str = "majority"):
    """A minimal project: params.yaml, the manifest, an empty annotations folder."""
    layout = Layout(root=tmp_path)
    params = make_params(tmp_path, classes=("cat", "dog"))
    settings = LabelImportParams(on_conflict=on_conflict, annotators=annotators)
    params = dataclasses.replace(params, label_import=settings)
    layout.manifest.parent.mkdir(parents=True)
    MANIFEST.to_csv(layout.manifest, index=False)
    layout.annotations.mkdir(parents=True)
    return layout, params


def table(rows: list[tuple]) -> pd.DataFrame:
    """The expected pool; rows without an annotator get ""."""
    rows = [row if len(row) == 5 else (*row, "") for row in rows]
    frame = pd.DataFrame(rows, columns=["id", "label", "cycle", "source", "annotator"])
    frame["cycle"] = frame["cycle"].astype("int64")
    return frame


def test_list_batches_takes_every_file_but_notes_and_hidden_files(tmp_path):
    write(tmp_path / "batch-0002.json", "[]")
    write(tmp_path / "batch-0001.csv", "id,label\n")
    write(tmp_path / "README.md", "notes\n")
    write(tmp_path / ".import.lock", "")
    write(tmp_path / ".0003-abc.csv.x1.tmp", "id,label\n")
    write(tmp_path / "sub" / "batch-0000.csv", "id,label\n")
    assert [p.name for p in list_batches(tmp_path)] == ["batch-0001.csv", "batch-0002.json"]
    assert list_batches(tmp_path / "absent") == []


def test_plain_csv_is_trimmed_and_keeps_strings(tmp_path):
    # BOM, CRLF, padding, quoting, an extra column, a blank line, and values pandas would turn into NaN.
    content = b'\xef\xbb\xbf label , id ,note\r\n cat , a ,x\r\n\r\n"dog", "b","y, z"\r\n'
    path = write(tmp_path / "b.csv", content)
    manifest = pd.DataFrame({"id": ["NA", "a", "b"], "path": ["x.png", "a.png", "b.png"], "split": "pool"})
    result = import_labels([path], manifest, CLASSES)
    pd.testing.assert_frame_equal(result, table([("a", "cat", 1, "b.csv"), ("b", "dog", 1, "b.csv")]))


def test_two_batches_give_cycles_one_and_two_sorted_by_id(tmp_path):
    first = write(tmp_path / "batch-0001.csv", "id,label\nc,dog\na,cat\n")
    second = write(tmp_path / "batch-0002.csv", "id,label\nb,cat\n")
    result = import_labels([first, second], MANIFEST, CLASSES, "refuse")
    expected = table(
        [
            ("a", "cat", 1, "batch-0001.csv"),
            ("b", "cat", 2, "batch-0002.csv"),
            ("c", "dog", 1, "batch-0001.csv"),
        ]
    )
    pd.testing.assert_frame_equal(result, expected)


def test_no_batches_give_an_empty_pool():
    result = import_labels([], MANIFEST, CLASSES, "refuse")
    assert list(result.columns) == ["id", "label", "cycle", "source", "annotator"]
    assert len(result) == 0


def test_repeats_with_the_same_label_change_nothing(tmp_path):
    first = write(tmp_path / "batch-0001.csv", "id,label\na,cat\na,cat\n")
    second = write(tmp_path / "batch-0002.csv", "id,label\na,cat\nb,dog\n")
    result = import_labels([first, second], MANIFEST, CLASSES, "refuse")
    expected = table([("a", "cat", 1, "batch-0001.csv"), ("b", "dog", 2, "batch-0002.csv")])
    pd.testing.assert_frame_equal(result, expected)


def test_relabel_policy_replaces_label_cycle_and_source(tmp_path):
    first = write(tmp_path / "batch-0001.csv", "id,label\na,cat\nb,cat\n")
    second = write(tmp_path / "batch-0002.csv", "id,label\na,dog\n")
    result = import_labels([first, second], MANIFEST, CLASSES, "relabel")
    expected = table([("a", "dog", 2, "relabel:batch-0002.csv"), ("b", "cat", 1, "batch-0001.csv")])
    pd.testing.assert_frame_equal(result, expected)


def test_refuse_policy_names_the_earlier_batch_and_the_fix(tmp_path):
    first = write(tmp_path / "batch-0001.csv", "id,label\na,cat\n")
    second = write(tmp_path / "batch-0002.csv", "id,label\nb,dog\na,dog\n")
    with pytest.raises(AnnotationError) as caught:
        import_labels([first, second], MANIFEST, CLASSES, "refuse")
    message = str(caught.value)
    assert str(second) in message and "line 3" in message
    assert "batch-0001.csv (line 2)" in message and "'cat'" in message
    assert "set label_import.on_conflict: relabel in params.yaml to accept relabels" in message


def test_unknown_conflict_rule_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of: refuse, relabel"):
        import_labels([], MANIFEST, CLASSES, "overwrite")


def test_run_writes_the_labeled_pool_file(tmp_path):
    layout, params = project(tmp_path)
    write(layout.annotations / "batch-0001.csv", "id,label\nc,dog\na,cat\n")
    write(layout.annotations / "README.md", "how to label\n")
    result = run(layout, params)
    expected = b"id,label,cycle,source,annotator\na,cat,1,batch-0001.csv,\nc,dog,1,batch-0001.csv,\n"
    assert layout.labeled.read_bytes() == expected
    expected_table = table([("a", "cat", 1, "batch-0001.csv"), ("c", "dog", 1, "batch-0001.csv")])
    pd.testing.assert_frame_equal(result, expected_table)


def test_run_with_no_batches_writes_a_header_only_pool(tmp_path):
    layout, params = project(tmp_path)
    run(layout, params)
    assert layout.labeled.read_bytes() == b"id,label,cycle,source,annotator\n"


@pytest.mark.parametrize("on_conflict", ["refuse", "relabel"])
def test_run_follows_on_conflict_from_params(tmp_path, on_conflict):
    layout, params = project(tmp_path, on_conflict)
    write(layout.annotations / "batch-0001.csv", "id,label\na,cat\n")
    write(layout.annotations / "batch-0002.csv", "id,label\na,dog\n")
    if on_conflict == "refuse":
        with pytest.raises(AnnotationError, match="on_conflict: relabel"):
            run(layout, params)
    else:
        assert run(layout, params).loc[0, "source"] == "relabel:batch-0002.csv"


BAD_BATCHES = {
    "unknown id": (b"id,label\nb,dog\nzz,cat\n", 3, "must come from the manifest"),
    "test-split id": (b"id,label\nt,cat\n", 2, "test items must never be labeled"),
    "unknown class": (b"id,label\nb,bird\n", 2, "expected exactly one of: cat, dog"),
    "conflicting duplicate": (b"id,label\nb,cat\nc,dog\nb,dog\n", 4, "line 2"),
    "header only": (b"id,label\n", 1, "has no rows"),
    "empty file": (b"", 1, "is empty"),
    "missing label column": (b"id,class\nb,cat\n", 1, "a CSV with header id,label"),
    "too few fields": (b"id,label\nb,cat\nc\n", 3, "expected 2"),
    "too many fields": (b"id,label\nb,cat,extra\n", 2, "expected 2"),
    "empty label": (b"id,label\nb,\n", 2, "empty id or label"),
    "stray quote": (b'id,label\nb,"ca"t\n', 2, "malformed CSV"),
    "not utf-8": (b"id,label\nb,cat\nc,\xff\n", 3, "not valid UTF-8"),
    "relabel refused": (b"id,label\nb,dog\na,dog\n", 3, "on_conflict: relabel"),
}


@pytest.mark.parametrize("content, line, expected", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_bad_batch_fails_loudly_and_leaves_the_pool_untouched(tmp_path, content, line, expected):
    layout, params = project(tmp_path)
    write(layout.annotations / "batch-0001.csv", "id,label\na,cat\n")
    run(layout, params)
    before = layout.labeled.read_bytes()
    write(layout.annotations / "batch-0002.csv", content)
    with pytest.raises(AnnotationError) as caught:
        run(layout, params)
    message = str(caught.value)
    assert "batch-0002.csv" in message
    assert re.search(rf"\bline {line}\b", message), message
    assert expected in message
    assert layout.labeled.read_bytes() == before
    # no temporary file left behind next to the pool
    data_folder = sorted(p.name for p in layout.labeled.parent.iterdir())
    assert data_folder == ["annotations", "labeled.csv", "prepared"]


VOTES = "id,label,annotator,time\n" \
    "a,cat,ann,2026-01-01T10:00:00\na,dog,bob,2026-01-01T11:00:00\na,cat,cy,2026-01-01T09:00:00\n" \
    "b,cat,ann,2026-01-01T10:00:00\nb,dog,bob,2026-01-01T12:00:00\n"


@pytest.mark.parametrize("rule, expected", [
    # majority: a is 2:1 for cat; b is a 1:1 tie, broken by the latest annotation (bob's dog)
    ("majority", [("a", "cat", 1, "v.csv", "ann;cy"), ("b", "dog", 1, "v.csv", "bob")]),
    # latest: the most recent annotation wins whatever the count
    ("latest", [("a", "dog", 1, "v.csv", "bob"), ("b", "dog", 1, "v.csv", "bob")]),
])
def test_annotator_rules_pick_a_label_and_report_the_disagreement(tmp_path, rule, expected):
    batch = write(tmp_path / "v.csv", VOTES)
    settings = LabelImportParams(on_conflict="refuse", annotators=rule)
    imported = fold([(batch, "v.csv")], MANIFEST, CLASSES, settings)
    pd.testing.assert_frame_equal(imported.table, table(expected))
    report = imported.report()
    assert report["annotator_disagreements"] == 2 and report["newest_batch_disagreements"] == 2
    first = report["batches"][0]["disagreements"][0]
    assert first == {"batch": "v.csv", "id": "a", "votes": {"cat": ["ann", "cy"], "dog": ["bob"]},
                     "chosen": expected[0][1], "rule": rule}


def test_refuse_rule_names_the_item_and_the_votes(tmp_path):
    batch = write(tmp_path / "v.csv", VOTES)
    expected = r"line 2: annotators disagree on id 'a' \('cat' by ann, cy, 'dog' by bob\)"
    with pytest.raises(AnnotationError, match=expected):
        import_labels([batch], MANIFEST, CLASSES, annotators="refuse")


# ann labels a twice (cat, then dog an hour later); bob says cat. b: ann says dog, then dog again.
TWICE = "id,label,annotator,time\n" \
    "a,cat,ann,2026-01-01T10:00:00\nb,dog,ann,2026-01-01T10:00:00\na,cat,bob,2026-01-01T10:30:00\n" \
    "a,dog,ann,2026-01-01T11:00:00\nb,dog,ann,2026-01-01T11:00:00\n"


@pytest.mark.parametrize("rule, label, annotators", [
    # latest: ann's later dog is the most recent annotation of a
    ("latest", "dog", "ann"),
    # majority: ann's later dog replaces ann's cat before counting, so 1:1 with bob's cat; the latest (ann's) wins
    ("majority", "dog", "ann"),
])
def test_one_annotators_later_label_replaces_their_earlier_one(tmp_path, rule, label, annotators):
    batch = write(tmp_path / "v.csv", TWICE)
    settings = LabelImportParams(on_conflict="refuse", annotators=rule)
    imported = fold([(batch, "v.csv")], MANIFEST, CLASSES, settings)
    expected = table([("a", label, 1, "v.csv", annotators), ("b", "dog", 1, "v.csv", "ann")])
    pd.testing.assert_frame_equal(imported.table, expected)
    report = imported.report()
    corrected, disagreement = report["batches"][0]["disagreements"]
    assert corrected == {"batch": "v.csv", "id": "a", "annotator": "ann", "replaced": ["cat"], "chosen": "dog",
                         "rule": rule}
    assert disagreement["votes"] == {"cat": ["bob"], "dog": ["ann"]} and disagreement["chosen"] == label
    assert report["annotator_disagreements"] == 2 and report["newest_batch_disagreements"] == 2


def test_majority_counts_a_person_once_after_their_correction(tmp_path):
    # ann: cat then dog; bob and cy: dog. Counted once each: dog 3:0, no disagreement between people.
    content = "id,label,annotator,time\na,cat,ann,2026-01-01T10:00:00\na,dog,bob,2026-01-01T10:00:00\n" \
              "a,dog,cy,2026-01-01T10:00:00\na,dog,ann,2026-01-01T12:00:00\n"
    imported = fold([(write(tmp_path / "v.csv", content), "v.csv")], MANIFEST, CLASSES, LabelImportParams("refuse"))
    pd.testing.assert_frame_equal(imported.table, table([("a", "dog", 1, "v.csv", "ann;bob;cy")]))
    [corrected] = imported.report()["batches"][0]["disagreements"]
    assert corrected["annotator"] == "ann" and corrected["replaced"] == ["cat"]


def test_one_annotator_giving_two_labels_stays_refused_under_refuse(tmp_path):
    batch = write(tmp_path / "v.csv", TWICE)
    expected = r"line 5: id 'a' is labeled 'dog' but line 2 labeled it 'cat'; expected one label per id from " \
               r"annotator 'ann'.*label_import.annotators: latest or majority"
    with pytest.raises(AnnotationError, match=expected):
        import_labels([batch], MANIFEST, CLASSES, annotators="refuse")


def test_one_annotator_giving_two_labels_without_times_is_refused(tmp_path):
    batch = write(tmp_path / "v.csv", "id,label,annotator\na,cat,ann\nb,dog,bob\na,dog,ann\n")
    with pytest.raises(AnnotationError, match=r"line 4: annotator 'ann' labeled id 'a' 'cat' \(line 2\) and 'dog' "
                                              r"\(line 4\) and the export gives no times"):
        import_labels([batch], MANIFEST, CLASSES, annotators="majority")
    anonymous = write(tmp_path / "w.csv", "id,label\na,cat\na,dog\n")
    with pytest.raises(AnnotationError, match=r"line 3: id 'a' is labeled 'dog' but line 2 labeled it 'cat'; "
                                              r"expected one label per id from the batch"):
        import_labels([anonymous], MANIFEST, CLASSES, annotators="latest")


def test_a_tie_without_times_is_refused(tmp_path):
    batch = write(tmp_path / "v.csv", "id,label,annotator\na,cat,ann\na,dog,bob\n")
    with pytest.raises(AnnotationError, match="gives no annotation times"):
        import_labels([batch], MANIFEST, CLASSES, annotators="majority")


def test_a_removal_batch_is_the_only_way_a_label_leaves(tmp_path):
    first = write(tmp_path / "0001.csv", "id,label\na,cat\nb,dog\n")
    removal = write(tmp_path / "0002.csv", "id,removed_because,time\na,blurry image,2026-01-01T00:00:00\n")
    result = import_labels([first, removal], MANIFEST, CLASSES)
    pd.testing.assert_frame_equal(result, table([("b", "dog", 1, "0001.csv")]))
    with pytest.raises(AnnotationError, match="id 'c'.*only a labeled item can be removed"):
        again = write(tmp_path / "0003.csv", "id,removed_because\nc,typo\n")
        import_labels([first, again], MANIFEST, CLASSES)


def test_stored_batches_must_keep_their_bytes_and_their_numbering(tmp_path):
    layout, params = project(tmp_path)
    content = b"id,label\na,cat\n"
    digest = hashlib.sha256(content).hexdigest()[:16]
    stored = write(layout.annotations / f"batch-0001-{digest}.csv", content)
    assert run(layout, params)["id"].tolist() == ["a"]
    before = layout.labeled.read_bytes()
    stored.write_bytes(b"id,label\na,dog\n")
    with pytest.raises(AnnotationError, match=r"batch-0001-.*content changed since it was imported"):
        run(layout, params)
    stored.write_bytes(content)
    later = b"id,label\nb,dog\n"
    write(layout.annotations / f"batch-0003-{hashlib.sha256(later).hexdigest()[:16]}.csv", later)
    with pytest.raises(AnnotationError, match="stored as batch 3 but it is batch 2 in the folder"):
        run(layout, params)
    assert layout.labeled.read_bytes() == before


def test_stored_batches_sort_after_batches_named_by_hand(tmp_path):
    """Projects whose first batches were written as batch-NNNN.csv keep their order."""
    from alcycle.annotations.importer import import_file

    layout, params = project(tmp_path)
    write(layout.annotations / "batch-0001.csv", "id,label\na,cat\n")
    write(layout.annotations / "batch-0002.csv", "id,label\nb,dog\n")
    result = import_file(layout, params, write(tmp_path / "third.csv", "id,label\nc,cat\n"))
    assert result.stored.name.startswith("batch-0003-")
    assert [p.name for p in list_batches(layout.annotations)][-1] == result.stored.name
    assert run(layout, params).set_index("id")["cycle"].to_dict() == {"a": 1, "b": 2, "c": 3}


def test_times_with_and_without_a_zone_compare(tmp_path):
    batch = write(tmp_path / "v.csv", "id,label,annotator,time\na,cat,ann,2026-01-01T10:00:00\n"
                                      "a,dog,bob,2026-01-01T11:00:00+00:00\n")
    assert import_labels([batch], MANIFEST, CLASSES, annotators="latest")["label"].tolist() == ["dog"]
