"""What the project knows it stored: a missing batch, a hand edit of the pool and a batch
that changes nothing are each said out loud, and the pool on disk stays as it was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from alcycle.annotations.importer import import_file, remove_labels
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import list_batches
from alcycle.stages.label_import import run
from test_import import EXPORTS, labels_of, make_project, mnist_project

IDS = [f"item-{i}" for i in range(8)]


def three_batches(tmp_path: Path):
    """A project with three stored batches of two labels each, and its pool."""
    layout, params = make_project(tmp_path, IDS, ("cat", "dog"))
    for number in range(3):
        batch = tmp_path / f"export-{number}.csv"
        batch.write_text(f"id,label\nitem-{2 * number},cat\nitem-{2 * number + 1},dog\n")
        import_file(layout, params, batch)
    return layout, params


@pytest.mark.parametrize("which", [0, 1, 2], ids=["first", "middle", "newest"])
def test_a_deleted_batch_stops_label_import_naming_it_and_the_fix(tmp_path, which):
    layout, params = three_batches(tmp_path)
    pool, report = layout.labeled.read_bytes(), layout.import_report.read_bytes()
    gone = list_batches(layout.annotations)[which]
    gone.unlink()
    with pytest.raises(AnnotationError) as caught:
        run(layout, params)
    message = str(caught.value)
    assert f"{gone.name}: missing from {layout.annotations}" in message
    assert f"git checkout -- {layout.annotations / gone.name}" in message
    assert "alcycle label remove" in message
    assert layout.labeled.read_bytes() == pool and layout.import_report.read_bytes() == report


def test_a_deleted_batch_stops_the_next_import_too(tmp_path):
    layout, params = three_batches(tmp_path)
    pool = layout.labeled.read_bytes()
    gone = list_batches(layout.annotations)[-1]
    gone.unlink()
    extra = tmp_path / "extra.csv"
    extra.write_text("id,label\nitem-7,cat\n")
    with pytest.raises(AnnotationError, match=f"{gone.name}: missing from"):
        import_file(layout, params, extra)
    assert layout.labeled.read_bytes() == pool and len(list_batches(layout.annotations)) == 2


def test_the_pool_alone_names_a_missing_batch(tmp_path):
    """Without the report (deleted too, or a project older than it) the pool's sources still tell."""
    layout, params = three_batches(tmp_path)
    layout.import_report.unlink()
    gone = list_batches(layout.annotations)[-1]
    gone.unlink()
    with pytest.raises(AnnotationError, match=f"{gone.name}: missing from .*named by {layout.labeled}"):
        run(layout, params)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_git_names_a_missing_batch_when_the_pool_and_report_are_gone(tmp_path):
    layout, params = three_batches(tmp_path)
    git(layout.root, "init", "-q")
    git(layout.root, "config", "user.email", "test@example.com")
    git(layout.root, "config", "user.name", "Test")
    git(layout.root, "add", "data/annotations")
    git(layout.root, "commit", "-q", "-m", "batches")
    layout.import_report.unlink()
    layout.labeled.unlink()
    gone = list_batches(layout.annotations)[1]
    gone.unlink()
    with pytest.raises(AnnotationError, match=f"{gone.name}: missing from .*tracked by git"):
        run(layout, params)


def test_a_removal_is_the_way_labels_leave(tmp_path):
    layout, params = three_batches(tmp_path)
    remove_labels(layout, params, ["item-4", "item-5"], "wrong batch")
    assert sorted(labels_of(layout)) == IDS[:4]
    assert run(layout, params)["id"].tolist() == IDS[:4]


def test_a_hand_edit_of_the_pool_is_reported_when_discarded(tmp_path, capsys):
    layout, params = three_batches(tmp_path)
    written = layout.labeled.read_text()
    edited = written.replace("item-0,cat", "item-0,dog").replace("item-3,dog", "item-3,cat")
    edited += "item-7,cat,9,by-hand.csv,\n"
    layout.labeled.write_text(edited)
    run(layout, params)
    out = capsys.readouterr().out
    assert f"discarded a hand edit of {layout.labeled}: 3 row(s) differed" in out
    assert "alcycle import" in out and "alcycle label remove" in out
    assert layout.labeled.read_text() == written
    run(layout, params)
    assert "hand edit" not in capsys.readouterr().out


def test_an_import_reports_a_hand_edit_it_discards(tmp_path):
    layout, params = three_batches(tmp_path)
    layout.labeled.write_text(layout.labeled.read_text().replace("item-1,dog", "item-1,cat"))
    extra = tmp_path / "extra.csv"
    extra.write_text("id,label\nitem-6,cat\n")
    result = import_file(layout, params, extra)
    assert "discarded a hand edit of" in result.describe() and "1 row(s) differed" in result.describe()
    assert labels_of(layout)["item-1"] == "dog"


def test_the_same_labels_in_another_format_are_not_stored(tmp_path):
    """Label Studio's JSON and CSV exports of one project hold the same annotations."""
    layout, params = mnist_project(tmp_path)
    first = import_file(layout, params, EXPORTS / "labelstudio.json")
    pool, report = layout.labeled.read_bytes(), layout.import_report.read_bytes()
    again = import_file(layout, params, EXPORTS / "labelstudio.csv")
    assert not again.new and again.stored is None
    assert "adds or changes no label; not stored" in again.describe()
    assert list_batches(layout.annotations) == [first.stored]
    assert layout.labeled.read_bytes() == pool and layout.import_report.read_bytes() == report
    assert json.loads(report)["batches"][-1]["batch"] == first.stored.name


def test_a_label_studio_task_annotated_twice_by_one_user_takes_the_later(tmp_path):
    """Label Studio keeps a second submission by the same user as a second annotation."""
    layout, params = mnist_project(tmp_path)

    def annotation(number: int, choice: str, when: str) -> dict:
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
        return {"id": number, "completed_by": 1, "was_cancelled": False, "result": result,
                "created_at": when, "updated_at": when}

    task = {"id": 7, "data": {"image": "/data/upload/1/mnist-0002.png", "alcycle_id": "mnist-0002"},
            "annotations": [annotation(11, "7", "2026-11-20T09:00:00Z"), annotation(12, "1", "2026-11-20T09:05:00Z")]}
    export = tmp_path / "export.json"
    export.write_text(json.dumps([task]))
    result = import_file(layout, params, export)
    assert labels_of(layout) == {"mnist-0002": "1"}
    assert "1 label(s) replaced by the same annotator's later annotation" in result.describe()
    [corrected] = json.loads(layout.import_report.read_text())["batches"][0]["disagreements"]
    assert corrected == {"batch": result.stored.name, "id": "mnist-0002", "annotator": "1", "replaced": ["7"],
                         "chosen": "1", "rule": "majority"}
    assert json.loads(layout.import_report.read_text())["annotator_disagreements"] == 1
