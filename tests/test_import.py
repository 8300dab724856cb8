"""``alcycle import``: real exports in, the labeled pool out; bad input never touches the pool."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from alcycle.annotations.importer import import_file, remove_labels
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import list_batches
from alcycle.layout import Layout
from alcycle.params import LabelImportParams
from alcycle.pool import read_labeled
from conftest import make_params

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
DIGITS = tuple(str(d) for d in range(10))


def make_project(tmp_path: Path, ids: list[str], classes: tuple[str, ...], test: tuple[str, ...] = ()):
    """A project with a manifest of ``ids`` (images ``images/<id>.png``) and no batches yet."""
    layout = Layout(root=tmp_path / "project")
    layout.root.mkdir()
    params = make_params(layout.root, classes=classes)
    manifest = pd.DataFrame(
        {"id": ids, "path": [f"images/{i}.png" for i in ids], "split": ["test" if i in test else "pool" for i in ids]}
    )
    layout.manifest.parent.mkdir(parents=True)
    manifest.to_csv(layout.manifest, index=False)
    layout.annotations.mkdir(parents=True)
    return layout, params


def mnist_project(tmp_path: Path):
    return make_project(tmp_path, [f"mnist-{i:04d}" for i in range(6)], DIGITS)


def labels_of(layout: Layout) -> dict[str, str]:
    pool = read_labeled(layout.labeled)
    return dict(zip(pool["id"], pool["label"]))


# What each real export gives after resolution. In the Label Studio files alice says 0 and
# bob says 6 for mnist-0001: a 1:1 tie, so the later annotation (bob's) decides.
LS_LABELS = {"0000": "5", "0001": "6", "0002": "4", "0003": "1", "0004": "9"}
CVAT_LABELS = {"0000": "5", "0001": "0", "0002": "4", "0003": "1", "0004": "9"}
BY_ID, BY_NAME = ["alcycle id"], ["image file name"]
IMPORTS = {
    "labelstudio.json": ("labelstudio-json", BY_ID, LS_LABELS),
    "labelstudio-min.json": ("labelstudio-json-min", BY_ID, LS_LABELS),
    "labelstudio.csv": ("labelstudio-csv", BY_ID, LS_LABELS),
    "labelstudio.tsv": ("labelstudio-tsv", BY_ID, LS_LABELS),
    "labelstudio-upload.json": ("labelstudio-json", BY_NAME, {"0000": "5", "0002": "4", "0005": "2"}),
    "cvat-images.xml": ("cvat-images-xml", BY_NAME, CVAT_LABELS),
    "cvat-imagenet.zip": ("cvat-imagenet", BY_NAME, CVAT_LABELS),
    "cvat-imagenet-images.zip": ("cvat-imagenet", BY_NAME, CVAT_LABELS),
}


@pytest.mark.parametrize("name", IMPORTS)
def test_real_exports_become_the_labeled_pool(tmp_path, name):
    layout, params = mnist_project(tmp_path)
    fmt, matched_by, expected = IMPORTS[name]
    result = import_file(layout, params, EXPORTS / name)
    assert result.new and result.report.format == fmt and result.report.matched_by == matched_by
    assert labels_of(layout) == {f"mnist-{k}": v for k, v in expected.items()}
    assert result.stored.parent == layout.annotations and result.stored.read_bytes() == (EXPORTS / name).read_bytes()
    pool = read_labeled(layout.labeled)
    assert set(pool["source"]) == {result.stored.name} and set(pool["cycle"]) == {1}
    report = json.loads(layout.import_report.read_text())
    if name in ("labelstudio.json", "labelstudio-min.json", "labelstudio.csv", "labelstudio.tsv"):
        assert report["annotator_disagreements"] == 1
        [disagreement] = report["batches"][0]["disagreements"]
        assert disagreement["id"] == "mnist-0001" and disagreement["chosen"] == "6"
        assert disagreement["votes"] == {"0": ["alice@example.com"], "6": ["bob@example.com"]}
        assert "1 item(s) with disagreeing annotators" in result.describe()
    if name == "labelstudio.json":
        assert result.report.cancelled == 1 and "1 cancelled annotation(s) skipped" in result.describe()
        assert pool.set_index("id").loc["mnist-0000", "annotator"] == "alice@example.com"


def test_the_same_export_twice_changes_nothing(tmp_path):
    layout, params = mnist_project(tmp_path)
    first = import_file(layout, params, EXPORTS / "labelstudio.json")
    before = layout.labeled.read_bytes()
    again = import_file(layout, params, EXPORTS / "labelstudio.json")
    assert not again.new and again.stored == first.stored
    assert "already imported as" in again.describe()
    assert list_batches(layout.annotations) == [first.stored]
    assert layout.labeled.read_bytes() == before


def test_format_comes_from_content_not_the_extension(tmp_path):
    layout, params = mnist_project(tmp_path)
    disguised = tmp_path / "export.csv"
    disguised.write_bytes((EXPORTS / "cvat-images.xml").read_bytes())
    result = import_file(layout, params, disguised)
    assert result.report.format == "cvat-images-xml" and result.stored.suffix == ".xml"


def test_a_labelstudio_tsv_is_stored_as_tsv_and_gives_the_csv_pool(tmp_path):
    pools = {}
    for name in ("labelstudio.csv", "labelstudio.tsv"):
        (tmp_path / name).mkdir()
        layout, params = mnist_project(tmp_path / name)
        result = import_file(layout, params, EXPORTS / name)
        assert result.stored.suffix == Path(name).suffix
        pools[name] = read_labeled(layout.labeled).drop(columns="source")
    pd.testing.assert_frame_equal(pools["labelstudio.tsv"], pools["labelstudio.csv"])
    assert len(pools["labelstudio.tsv"]) == 5


def test_batches_are_numbered_and_named_by_content_hash(tmp_path):
    layout, params = mnist_project(tmp_path)
    first = import_file(layout, params, EXPORTS / "cvat-images.xml")
    second = import_file(layout, params, EXPORTS / "labelstudio-upload.json")
    assert first.stored.name.startswith("batch-0001-") and second.stored.name.startswith("batch-0002-")
    pool = read_labeled(layout.labeled).set_index("id")
    assert pool.loc["mnist-0005", "cycle"] == 2 and pool.loc["mnist-0001", "cycle"] == 1


def test_remove_is_recorded_and_is_the_only_way_out(tmp_path):
    layout, params = mnist_project(tmp_path)
    import_file(layout, params, EXPORTS / "cvat-images.xml")
    result = remove_labels(layout, params, ["mnist-0003"], "smudged digit")
    assert "mnist-0003" not in labels_of(layout) and len(labels_of(layout)) == 4
    text = result.stored.read_text()
    assert text.startswith("id,removed_because,time\nmnist-0003,smudged digit,")
    assert result.report.removed == 1 and result.report.cycle == 2


# ---------------------------------------------------------------------------------------
# Bad or hostile input: each gets a clear error naming the file, and the pool stays as it was.


def ls_task(
    image: str, choice: str = "cat", alcycle_id: str | None = None, cancelled: bool = False, annotator: object = 1
) -> dict:
    data = {"image": image} | ({"alcycle_id": alcycle_id} if alcycle_id else {})
    result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
    return {
        "id": 1,
        "data": data,
        "annotations": [
            {
                "id": 1,
                "completed_by": annotator,
                "was_cancelled": cancelled,
                "result": [] if cancelled else result,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            }
        ],
    }


def ls_json(*tasks: dict) -> bytes:
    return json.dumps(list(tasks)).encode()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


CVAT_XML = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
    b'<image id="0" name="b.png" width="8" height="8">%s</image></annotations>\n'
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
    b'<annotations><version>1.1</version><image id="0" name="&lol2;"/></annotations>\n'
)

# A central directory entry that needs zip version 6.4 (0x40), then the end-of-central-directory record.
NEWER_ZIP = b"PK\x01\x02\x00\x00\x40" + bytes(107) + b"PK\x05\x06" + bytes(8) + (114).to_bytes(4, "little") + bytes(6)

LS_TSV = (
    b'"alcycle_id"\t"annotation_id"\t"annotator"\t"choice"\t"created_at"\t"id"\t"image"\t"lead_time"\t"updated_at"\r\n'
    b'"b"\t11\t"ann@example.com"\t"dog"\t"2026-01-01T00:00:00Z"\t1\t"images/b.png"\t2.5\t"2026-01-01T00:00:00Z"\r\n'
    b'"c"\t12\t"ann@example.com"\t"cat"\t"2026-01-01T00:00:00Z"\t2\t"images/c.png"\t2.5\t"2026-01-01T00:00:00Z"\r\n'
)

# name: (file content, what the message must say)
BAD_INPUTS = {
    "unknown id": (b"id,label\nb,dog\nzz,cat\n", "line 3: id 'zz' is not in the pool manifest"),
    "unknown image file name": (
        ls_json(ls_task("/data/upload/1/0badc0de-nope.png")),
        "matches no image in the pool manifest",
    ),
    "unknown class": (b"id,label\nb,bird\n", "class 'bird' is unknown; expected exactly one of: cat, dog"),
    "class differs by case": (b"id,label\nb,Dog\n", "class 'Dog' differs from 'dog' only by case or whitespace"),
    "class differs by inner space": (
        b"id,label\nb,d og\n",
        "class 'd og' differs from 'dog' only by case or whitespace",
    ),
    "class with a no-break space": (
        ls_json(ls_task("b.png", "dog\u00a0", "b")),
        "differs from 'dog' only by case or whitespace",
    ),
    "duplicate conflicting rows": (
        b"id,label\nb,cat\nc,dog\nb,dog\n",
        "line 4: id 'b' is labeled 'dog' but line 2 labeled it 'cat'",
    ),
    "cancelled-only export": (
        ls_json(ls_task("b.png", alcycle_id="b", cancelled=True), ls_task("c.png", alcycle_id="c", cancelled=True)),
        "every one of its 2 annotation(s) is cancelled",
    ),
    "export with no annotations": (b"[]", "has no annotations"),
    "empty file": (b"", "is empty"),
    "whitespace only": (b"  \n\n", "is empty; expected one of: Label Studio JSON"),
    "truncated JSON": (
        ls_json(ls_task("b.png", alcycle_id="b"), ls_task("c.png", alcycle_id="c"))[:-30],
        "after task 1: malformed or truncated JSON",
    ),
    "JSON object, not a list": (b'{"data": {"image": "b.png"}}', "is a JSON object, not a list"),
    "truncated XML": (CVAT_XML % b'<tag label="cat" source="manual"/>'[:-20], "malformed or truncated XML"),
    "XML entity bomb": (BILLION_LAUGHS, "declares a DTD or entities"),
    "two tags on one image": (CVAT_XML % b'<tag label="cat"/><tag label="dog"/>', "expected at most one tag"),
    "UTF-16 with BOM": ("id,label\nb,dog\n".encode("utf-16"), "starts with a UTF-16 byte-order mark; expected a UTF-8"),
    "latin-1 bytes": ("id,label\nb,d\u00e9\n".encode("latin-1"), "not valid UTF-8"),
    "path traversal in an image reference": (ls_json(ls_task("../../../etc/passwd")), "climbs out of its folder"),
    "path traversal in a local-files URL": (
        ls_json(ls_task("/data/local-files/?d=../../b.png")),
        "climbs out of its folder",
    ),
    "zip that needs a newer zip version": (  # found by the fuzz test: zipfile raises NotImplementedError
        NEWER_ZIP,
        "zip: is not a readable zip archive (zip file version 6.4)",
    ),
    "path traversal in a zip member": (
        zipped({"synsets.txt": b"cat\ndog\n", "../default.txt": b"b.png 0\n"}),
        "member '../default.txt': is an absolute path or climbs out",
    ),
    "formula in the annotator": (
        b'id,label,annotator\nb,dog,=HYPERLINK("http://x")\n',
        "starts with '=', which a spreadsheet runs as a formula",
    ),
    "formula as a class": (b"id,label\nb,=1+2\n", "class '=1+2' looks like a spreadsheet formula"),
    "formula as an id": (b"id,label\n@SUM(A1),dog\n", "id '@SUM(A1)' is not in the pool manifest"),
    "test-split item": (b"id,label\nt,cat\n", "test items must never be labeled"),
    "header only": (b"id,label\n", "line 1: has no rows after the header"),
    "stray quote": (b'id,label\nb,"do"g\n', "malformed CSV"),
    "truncated Label Studio TSV": (
        LS_TSV[:-40],
        "line 3: malformed TSV (unexpected end of data); expected a Label Studio TSV export",
    ),
    "Label Studio TSV row missing fields": (
        LS_TSV[:-50] + b'"\r\n',
        "line 3: has 5 field(s); expected 9 like the header",
    ),
    "Label Studio TSV with an unknown class": (LS_TSV.replace(b'"cat"', b'"bird"'), "line 3: class 'bird' is unknown"),
    "plain id,label with tabs": (
        b"id\tlabel\nb\tdog\n",
        "line 1: is tab-separated (header 'id\\tlabel'); expected commas",
    ),
    "relabel refused": (b"id,label\na,dog\n", "set label_import.on_conflict: relabel"),
    "two Choices tags": (
        json.dumps(
            [
                {
                    "id": 1,
                    "data": {"image": "b.png", "alcycle_id": "b"},
                    "annotations": [
                        {
                            "id": 1,
                            "completed_by": 1,
                            "was_cancelled": False,
                            "result": [
                                {
                                    "from_name": "label",
                                    "to_name": "image",
                                    "type": "choices",
                                    "value": {"choices": ["cat"]},
                                },
                                {
                                    "from_name": "quality",
                                    "to_name": "image",
                                    "type": "choices",
                                    "value": {"choices": ["dog"]},
                                },
                            ],
                        }
                    ],
                }
            ]
        ).encode(),
        "label_import.choice_name",
    ),
}


@pytest.mark.parametrize("content, expected", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_and_the_pool_is_untouched(tmp_path, content, expected):
    layout, params = make_project(tmp_path, ["a", "b", "c", "t"], ("cat", "dog"), test=("t",))
    import_file(layout, params, write(tmp_path / "first.csv", b"id,label\na,cat\n"))
    stored = {p.name: p.read_bytes() for p in layout.annotations.iterdir()}
    pool, report = layout.labeled.read_bytes(), layout.import_report.read_bytes()
    bad = write(tmp_path / "bad-export", content)
    with pytest.raises(AnnotationError) as caught:
        import_file(layout, params, bad)
    message = str(caught.value)
    assert str(bad) in message and expected in message, message
    assert layout.labeled.read_bytes() == pool and layout.import_report.read_bytes() == report
    assert {p.name: p.read_bytes() for p in layout.annotations.iterdir()} == stored
    assert not [p for p in layout.labeled.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_table_has_at_least_25_bad_inputs():
    assert len(BAD_INPUTS) >= 25


def test_removing_an_unlabeled_item_is_refused(tmp_path):
    layout, params = make_project(tmp_path, ["a", "b"], ("cat", "dog"))
    import_file(layout, params, write(tmp_path / "first.csv", b"id,label\na,cat\n"))
    before = layout.labeled.read_bytes()
    with pytest.raises(AnnotationError, match="id 'b'.*only a labeled item can be removed"):
        remove_labels(layout, params, ["b"], "never labeled")
    with pytest.raises(AnnotationError, match="needs a reason"):
        remove_labels(layout, params, ["a"], "  ")
    assert layout.labeled.read_bytes() == before and len(list_batches(layout.annotations)) == 1


def test_annotators_refuse_rule_blocks_the_import(tmp_path):
    layout, params = mnist_project(tmp_path)
    params = dataclasses.replace(params, label_import=LabelImportParams("refuse", "refuse", ""))
    with pytest.raises(AnnotationError, match="annotators disagree on id 'mnist-0001'"):
        import_file(layout, params, EXPORTS / "labelstudio.json")
    assert not layout.labeled.exists() and list_batches(layout.annotations) == []


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_round_trip_from_the_query_batch_to_the_pool(tmp_path):
    """select's Label Studio tasks, annotated the way Label Studio exports them (the tasks'
    data kept, one annotation per task, the pre-annotation accepted or corrected), import
    back by alcycle id; the same images through CVAT's ImageNet list match by file name."""
    from alcycle.annotations.labelstudio.tasks import label_studio_tasks

    layout, params = mnist_project(tmp_path)
    queries = pd.DataFrame({"id": ["mnist-0003", "mnist-0001"], "path": ["data/prepared/images/mnist-0003.png",
                            "data/prepared/images/mnist-0001.png"], "score": [0.9, 0.7], "strategy": "entropy",
                            "cycle": 1})
    tasks = label_studio_tasks(queries, ["1", "7"], "/data/local-files/?d=")
    for number, (task, answer) in enumerate(zip(tasks, ["1", "0"]), start=1):
        result = [dict(task["predictions"][0]["result"][0], value={"choices": [answer]})]
        task.update(id=number, annotations=[{"id": number, "completed_by": {"id": 1, "email": "ann@example.com"},
                                             "result": result, "was_cancelled": False,
                                             "updated_at": "2026-11-21T10:00:00Z"}])
    export = tmp_path / "project-1-at-2026-11-21.json"
    export.write_text(json.dumps(tasks))
    result = import_file(layout, params, export)
    assert result.report.matched_by == ["alcycle id"]
    assert labels_of(layout) == {"mnist-0003": "1", "mnist-0001": "0"}
    imagenet = tmp_path / "imagenet.zip"
    imagenet.write_bytes(zipped({"synsets.txt": "\n".join(DIGITS).encode(), "default.txt": b"mnist-0004.png 9\n"}))
    assert import_file(layout, params, imagenet).report.matched_by == ["image file name"]
    assert labels_of(layout)["mnist-0004"] == "9"


def test_the_commands_report_what_they_did(tmp_path):
    from click.testing import CliRunner

    from alcycle.cli import main

    layout, _ = mnist_project(tmp_path)
    runner = CliRunner()
    root = ["--project", str(layout.root)]
    files = [str(EXPORTS / "labelstudio.json"), str(EXPORTS / "labelstudio-upload.json")]
    imported = runner.invoke(main, [*root, "import", *files])
    assert imported.exit_code == 0, imported.output
    first, second = imported.output.splitlines()
    assert "stored as batch-0001-" in first and "5 label(s); format labelstudio-json, matched by alcycle id" in first
    assert "stored as batch-0002-" in second and "matched by image file name" in second
    removed = runner.invoke(main, [*root, "label", "remove", "mnist-0004", "--reason", "not a digit"])
    assert removed.exit_code == 0 and "removed 1 label(s); recorded as" in removed.output
    assert "mnist-0004" not in labels_of(layout)
    refused = runner.invoke(main, [*root, "import", str(EXPORTS / "README.md")])
    assert refused.exit_code == 1 and f"Error: {EXPORTS / 'README.md'}" in refused.output
