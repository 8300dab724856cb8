"""Tests for alcycle.annotations.formats: real exports in, exact records out; every bad file named."""

from __future__ import annotations

import csv
import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from alcycle.annotations import FORMATS, Annotation, AnnotationError, detect, read_annotations
from alcycle.annotations.formats import suffix_of

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
EXPECTED = list(csv.DictReader((EXPORTS / "expected.csv").open(encoding="utf-8")))
FIXTURES = sorted({row["file"] for row in EXPECTED})
FORMAT_OF = {row["file"]: row["format"] for row in EXPECTED}


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def records(path: Path, choice_name: str | None = None) -> list[Annotation]:
    return list(read_annotations(path, choice_name)[1])


def fails(path: Path, *needles: str, choice_name: str | None = None) -> str:
    """Reading ``path`` raises AnnotationError whose message names the file and every needle."""
    with pytest.raises(AnnotationError) as info:
        records(path, choice_name)
    message = str(info.value)
    assert message.startswith(f"{path}, "), message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def zip_of(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def ls_task(number: int, data: dict, results: list[dict], **annotation: object) -> dict:
    """A Label Studio task with one annotation holding ``results``."""
    done = {"id": 900 + number, "completed_by": 1, "result": results, "was_cancelled": False, **annotation}
    return {"id": number, "data": data, "annotations": [done]}


def choice(value: str | list[str], from_name: str = "choice") -> dict:
    values = value if isinstance(value, list) else [value]
    return {"from_name": from_name, "to_name": "image", "type": "choices", "value": {"choices": values}}


# --- the real exports ----------------------------------------------------------------------


def test_formats_are_the_published_list() -> None:
    assert FORMATS == (
        "alcycle-csv", "alcycle-removal", "labelstudio-json", "labelstudio-json-min",
        "labelstudio-csv", "labelstudio-tsv", "cvat-images-xml", "cvat-imagenet",
    )


def test_a_stored_batch_is_named_by_its_format() -> None:
    suffixes = [".csv", ".csv", ".json", ".json", ".csv", ".tsv", ".xml", ".zip"]
    assert [suffix_of(name) for name in FORMATS] == suffixes


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_is_detected_by_content_whatever_its_name(name: str, tmp_path: Path) -> None:
    assert detect(EXPORTS / name) == FORMAT_OF[name]
    for misleading in ("batch.csv", "batch.json", "batch.xml", "batch.zip", "no-extension"):
        copy = shutil.copyfile(EXPORTS / name, tmp_path / misleading)
        assert detect(copy) == FORMAT_OF[name], misleading


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_gives_exactly_the_expected_records(name: str) -> None:
    fmt, stream = read_annotations(EXPORTS / name)
    got = [(r.item, r.by, r.label or "", r.annotator, str(r.cancelled)) for r in stream]
    want = [(e["item"], e["by"], e["label"], e["annotator"], e["cancelled"]) for e in EXPECTED if e["file"] == name]
    assert fmt == FORMAT_OF[name]
    assert sorted(got) == sorted(want)
    if fmt != "cvat-imagenet":  # zip members come in archive order, the other formats in file order
        assert got == want


def test_labelstudio_json_locates_each_annotation_and_dates_it() -> None:
    got = records(EXPORTS / "labelstudio.json")
    assert got[2] == Annotation(
        "mnist-0001", "id", "6", "task 2 (id 102), annotation 2", "bob@example.com", "2025-03-14T09:03:00.000000Z"
    )
    cancelled = [r for r in got if r.cancelled]
    assert cancelled == [
        Annotation("mnist-0003", "id", None, "task 4 (id 104), annotation 1", "bob@example.com",
                   "2025-03-14T09:05:00.000000Z", cancelled=True)
    ]
    assert not any(r.item == "mnist-0005" for r in got)  # the task nobody annotated


def test_flat_labelstudio_exports_locate_records() -> None:
    assert records(EXPORTS / "labelstudio-min.json")[0].where == "record 1 (task id 101, annotation id 201)"
    assert [r.where for r in records(EXPORTS / "labelstudio.csv")][:2] == ["line 2", "line 3"]


def test_labelstudio_tsv_is_the_csv_export_with_tabs() -> None:
    assert detect(EXPORTS / "labelstudio.tsv") == "labelstudio-tsv"
    assert records(EXPORTS / "labelstudio.tsv") == records(EXPORTS / "labelstudio.csv")


TSV = (EXPORTS / "labelstudio.tsv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "content, needles",
    [
        (TSV[: TSV.index("bob@example.com") + 3], ("line 3", "malformed TSV (unexpected end of data)",
                                                   "expected a Label Studio TSV export")),
        (TSV[: TSV.index('"bob@example.com"')], ("line 3", "has 3 field(s); expected 9 like the header")),
        (TSV.replace('"4"', '"4"x'), ("line 5", "malformed TSV", "expected a Label Studio TSV export")),
        (TSV.replace('"lead_time"\t', ""), ("line 1", "(tab-separated)", "JSON / JSON-MIN / CSV / TSV export")),
    ],
    ids=["cut inside a field", "cut after a field", "stray quote", "no lead_time column"],
)
def test_bad_labelstudio_tsv_names_file_line_and_problem(tmp_path: Path, content: str, needles: tuple) -> None:
    fails(write(tmp_path / "t.tsv", content), *needles)


@pytest.mark.parametrize("header", ["id\tlabel", "id\tremoved_because"])
def test_plain_tsv_is_refused_with_the_expected_header(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "b.tsv", f"{header}\nmnist-0001\tx\n")
    message = fails(path, "line 1", "is tab-separated", "expected commas: a CSV with header id,label")
    assert "Label Studio's TSV export" in message


# --- alcycle's own CSV ----------------------------------------------------------------------


def test_alcycle_csv_keeps_read_batch_rules(tmp_path: Path) -> None:
    text = "\ufeffid, label ,annotator,time,note\n\n a , 5 ,ann,2025-01-02T03:04:05Z,x\nb,7,,,\n"
    path = write(tmp_path / "b.csv", text)
    assert detect(path) == "alcycle-csv"
    assert records(path) == [
        Annotation("a", "id", "5", "line 3", "ann", "2025-01-02T03:04:05Z"),
        Annotation("b", "id", "7", "line 4"),
    ]


@pytest.mark.parametrize(
    "content, needles",
    [
        ("id,label\na,5,extra\n", ("line 2", "3 field(s); expected 2")),
        ("id,label\na,\n", ("line 2", "empty id or label")),
        ('id,label\na,"5"x\n', ("line 2", "malformed CSV")),
        ("id,label\n", ("line 1", "no rows after the header")),
        ("id,label,label\na,5,6\n", ("line 1", "expected header `id,label`")),
        ("id,label,annotator\na,5,=HYPERLINK(\"x\")\n", ("line 2", "annotator '=HYPERLINK", "formula")),
        ("id,label,annotator\na,5,@SUM(A1)\n", ("line 2", "formula")),
    ],
)
def test_bad_alcycle_csv_names_file_line_and_problem(tmp_path: Path, content: str, needles: tuple) -> None:
    fails(write(tmp_path / "b.csv", content), *needles)


def test_removals_are_records_with_a_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "id,removed_because\nmnist-0001,blurry\n")
    assert detect(path) == "alcycle-removal"
    assert records(path) == [Annotation("mnist-0001", "id", None, "line 2", removed=True, reason="blurry")]
    fails(write(tmp_path / "r2.csv", "id,removed_because\nmnist-0001,\n"), "line 2", "empty id or reason")


# --- Label Studio variants ----------------------------------------------------------------------


def test_labelstudio_choice_name_picks_among_several_choices(tmp_path: Path) -> None:
    tasks = [ls_task(1, {"alcycle_id": "a"}, [choice("quality-ok", "quality"), choice("3")])]
    path = write(tmp_path / "t.json", json.dumps(tasks))
    fails(path, "task 1 (id 1), annotation 1", "choice, quality", "label_import.choice_name")
    assert [r.label for r in records(path, choice_name="choice")] == ["3"]
    assert [r.label for r in records(path, choice_name="quality")] == ["quality-ok"]
    fails(path, "no choice from 'nope'", choice_name="nope")


@pytest.mark.parametrize(
    "results, needles",
    [
        ([choice(["3", "4"])], ("chose 2 classes", "single-label")),
        ([], ("has no choice", "cancelled")),
        ([{"from_name": "box", "type": "rectanglelabels", "value": {}}], ("has no choice",)),
    ],
)
def test_labelstudio_annotation_must_choose_one_class(tmp_path: Path, results: list, needles: tuple) -> None:
    path = write(tmp_path / "t.json", json.dumps([ls_task(7, {"alcycle_id": "a"}, results)]))
    fails(path, "task 1 (id 7), annotation 1", *needles)


def test_labelstudio_image_key_comes_from_the_image_tag(tmp_path: Path) -> None:
    with_source = ls_task(1, {"img": "x/a.png", "note": "n"}, [{**choice("3"), "source": "$img"}])
    only_text = ls_task(2, {"picture": "x/b.png", "width": 28}, [choice("4")])
    path = write(tmp_path / "t.json", json.dumps([with_source, only_text]))
    assert [(r.item, r.by) for r in records(path)] == [("x/a.png", "file"), ("x/b.png", "file")]
    unclear = write(tmp_path / "u.json", json.dumps([ls_task(1, {"a": "1", "b": "2"}, [choice("3")])]))
    fails(unclear, "neither data.alcycle_id nor data.image", "a, b")


def test_flat_labelstudio_exports_need_an_unambiguous_choice_column(tmp_path: Path) -> None:
    rows = json.loads((EXPORTS / "labelstudio-min.json").read_text())
    for row in rows:
        row["split"] = "pool"
    path = write(tmp_path / "m.json", json.dumps(rows))
    fails(path, "record 1", "candidates: choice, split", "label_import.choice_name")
    assert [r.label for r in records(path, choice_name="choice")] == ["5", "6", "0", "4", "1", "9"]
    text = (EXPORTS / "labelstudio.csv").read_text().replace('"alcycle_id",', '"alcycle_id","split",', 1)
    text = text.replace('"mnist-0000",', '"mnist-0000","pool",').replace('"mnist-0001",', '"mnist-0001","pool",')
    csv_path = write(tmp_path / "c.csv", text)
    fails(csv_path, "line 2", "candidates: choice, split")


def test_flat_labelstudio_several_choices_are_an_error(tmp_path: Path) -> None:
    rows = json.loads((EXPORTS / "labelstudio-min.json").read_text())
    rows[1]["choice"] = {"choices": ["6", "8"]}
    fails(write(tmp_path / "m.json", json.dumps(rows)), "record 2", "chose 2 classes")
    text = (EXPORTS / "labelstudio.csv").read_text().replace('"6"', '"{""choices"": [""6"", ""8""]}"')
    fails(write(tmp_path / "c.csv", text), "line 3", "chose 2 classes")
    tsv = (EXPORTS / "labelstudio.tsv").read_text().replace('"6"', '"{""choices"": [""6"", ""8""]}"')
    fails(write(tmp_path / "c.tsv", tsv), "line 3", "chose 2 classes")


@pytest.mark.parametrize("fixture", ["labelstudio.json", "labelstudio-min.json", "labelstudio.csv", "labelstudio.tsv"])
def test_labelstudio_formula_annotator_is_refused(tmp_path: Path, fixture: str) -> None:
    text = (EXPORTS / fixture).read_text().replace("bob@example.com", "=cmd|' /C calc'!A0")
    fails(write(tmp_path / "x", text), "annotator \"=cmd", "formula")


def test_labelstudio_json_min_with_int_annotator(tmp_path: Path) -> None:
    rows = [{"image": "/data/upload/1/ab12cd34-a.png", "id": 3, "choice": "2", "annotator": 7,
             "annotation_id": 4, "created_at": "t0", "updated_at": None, "lead_time": 1.0}]
    path = write(tmp_path / "m.json", json.dumps(rows))
    assert records(path) == [Annotation("/data/upload/1/ab12cd34-a.png", "file", "2",
                                        "record 1 (task id 3, annotation id 4)", "7", "t0")]


# --- CVAT ---------------------------------------------------------------------------------------

CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><id>4</id><name>batch</name><owner><username>ann</username></owner></task></meta>
  <image id="0" name="sub/mnist-0000.png" width="28" height="28" subset="default" task_id="4">
    <tag label="5" source="manual"><attribute name="sure">true</attribute></tag>
    <box label="5" source="manual" occluded="0" xtl="1" ytl="1" xbr="5" ybr="5" z_order="0"></box>
  </image>
  <image id="1" name="mnist-0001.png" width="28" height="28"></image>
  {extra}
</annotations>
"""


def test_cvat_xml_as_the_server_writes_it(tmp_path: Path) -> None:
    path = write(tmp_path / "a.xml", CVAT_XML.format(extra=""))
    assert records(path) == [Annotation("sub/mnist-0000.png", "file", "5", "image 'sub/mnist-0000.png'")]


def test_cvat_download_zip_with_annotations_xml_is_read_in_place(tmp_path: Path) -> None:
    xml = CVAT_XML.format(extra="")
    path = zip_of(tmp_path / "task.zip", {"annotations.xml": xml, "images/sub/mnist-0000.png": b"png"})
    assert detect(path) == "cvat-images-xml"
    assert [r.item for r in records(path)] == ["sub/mnist-0000.png"]


@pytest.mark.parametrize(
    "extra, needles",
    [
        ('<image id="2" name="b.png"><tag label="1"/><tag label="7"/></image>', ("image 'b.png'", "'1', '7'")),
        ('<track id="0" label="1"></track>', ("<track>", "CVAT for video")),
        ('<image id="2" name="b.png"', ("line", "malformed or truncated XML")),
        ('<image id="2"><tag label="1"/></image>', ("image id 2", "has no name")),
    ],
)
def test_bad_cvat_xml(tmp_path: Path, extra: str, needles: tuple) -> None:
    fails(write(tmp_path / "a.xml", CVAT_XML.format(extra=extra)), *needles)


def test_cvat_xml_refuses_dtds_entities_and_other_versions(tmp_path: Path) -> None:
    entities = '<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">'
    bomb = f'<?xml version="1.0"?><!DOCTYPE a [{entities}]><annotations>&y;</annotations>'
    fails(write(tmp_path / "bomb.xml", bomb), "<!DOCTYPE>", "DTD", "refused")
    external = '<?xml version="1.0"?><!DOCTYPE a SYSTEM "file:///etc/passwd"><annotations/>'
    fails(write(tmp_path / "ext.xml", external), "DTD")
    old = CVAT_XML.format(extra="").replace("<version>1.1</version>", "<version>1.0</version>")
    fails(write(tmp_path / "old.xml", old), "<version>", "'1.0'")
    fails(write(tmp_path / "other.xml", "<svg><g/></svg>"), "line 1", "root element <svg>", "expected one of")
    truncated = CVAT_XML.format(extra="")[:200]
    assert detect(write(tmp_path / "t.xml", truncated)) == "cvat-images-xml"
    fails(tmp_path / "t.xml", "line", "truncated XML")


def test_imagenet_txt_quoted_names_and_bad_lines(tmp_path: Path) -> None:
    members = {"synsets.txt": "cat\ndog\n", "train.txt": '"my cat".png 0\nsub/d.jpg 1\nnone.png \n'}
    path = zip_of(tmp_path / "i.zip", members)
    assert records(path) == [
        Annotation("my cat.png", "file", "cat", "train.txt line 1"),
        Annotation("sub/d.jpg", "file", "dog", "train.txt line 2"),
    ]
    fails(zip_of(tmp_path / "a.zip", {"synsets.txt": "cat\n", "d.txt": "a.png 3\n"}), "d.txt line 1", "0 to 0")
    fails(zip_of(tmp_path / "b.zip", {"synsets.txt": "c\nd\n", "d.txt": "a.png 0 1\n"}), "d.txt line 1", "one label")
    fails(zip_of(tmp_path / "c.zip", {"default.txt": "a.png 0\n"}), "synsets.txt", "is missing")
    fails(zip_of(tmp_path / "e.zip", {"synsets.txt": b"c\xff\n", "d.txt": "a.png 0\n"}), "synsets.txt line 1", "UTF-8")


@pytest.mark.parametrize("name", ["../evil.png", "5/../../evil.png", "/etc/evil.png", "5\\..\\evil.png", "C:/x.png"])
def test_imagenet_member_names_cannot_escape(tmp_path: Path, name: str) -> None:
    path = zip_of(tmp_path / "i.zip", {"5/5_ok.png": b"png", name: b"png"})
    fails(path, repr(name), "absolute path or climbs out")
    assert not (tmp_path / "evil.png").exists()


def test_imagenet_folders_refuse_two_classes_for_one_image(tmp_path: Path) -> None:
    path = zip_of(tmp_path / "i.zip", {"5/5_a.png": b"", "7/a.png": b"", "__MACOSX/5/._5_a.png": b""})
    fails(path, "member '7/a.png'", "'5/5_a.png' puts it in '5'")
    fails(zip_of(tmp_path / "j.zip", {"a.png": b""}), "member 'a.png'", "not in a label folder")


# --- encodings, damage and strangers ------------------------------------------------------------


@pytest.mark.parametrize("encoding, bom", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_are_refused(tmp_path: Path, encoding: str, bom: str) -> None:
    path = write(tmp_path / "b.csv", "id,label\na,5\n".encode(encoding))
    fails(path, "line 1", bom, "UTF-8")
    fails(write(tmp_path / "n.csv", "id,label\na,5\n".encode("utf-16-le")), "NUL bytes", "UTF-8")


def test_invalid_utf8_is_located_even_deep_in_a_stream(tmp_path: Path) -> None:
    fails(write(tmp_path / "b.csv", b"id,label\na,5\nb,\xe9\n"), "line 3", "0xe9", "UTF-8")
    rows = "".join(f"item-{n},é\n" for n in range(20_000))  # multibyte characters straddle every chunk
    good = write(tmp_path / "g.csv", "id,label\n" + rows)
    assert len(records(good)) == 20_000
    bad = write(tmp_path / "d.csv", ("id,label\n" + rows).encode() + b"x,\xc3\n")
    fails(bad, "line 20002", "UTF-8")
    tasks = json.dumps([ls_task(1, {"alcycle_id": "a"}, [choice("3")])], indent=1).encode()
    fails(write(tmp_path / "t.json", tasks.replace(b'"3"', b'"\xff"')), "line", "not valid UTF-8")
    fails(write(tmp_path / "x.xml", CVAT_XML.format(extra="").encode().replace(b"batch", b"b\xe0tch")), "line 4")
    fails(write(tmp_path / "e.csv", b"id,label\na,5\nb,\xc3"), "line 3", "ends inside a UTF-8 character")


def test_truncated_json_yields_what_came_before_then_fails(tmp_path: Path) -> None:
    text = (EXPORTS / "labelstudio.json").read_text()
    path = write(tmp_path / "t.json", text[: len(text) // 2])
    fmt, stream = read_annotations(path)
    assert fmt == "labelstudio-json"
    assert next(stream).item == "mnist-0000"  # streaming: records before the damage are read
    with pytest.raises(AnnotationError, match="truncated JSON"):
        list(stream)
    fails(write(tmp_path / "m.json", "[{]"), "after item 0", "malformed or truncated JSON")


@pytest.mark.parametrize(
    "content, needles",
    [
        (b"", ("line 1", "is empty", "expected one of: Label Studio JSON")),
        (b" \n\t\n", ("is empty",)),
        (b"hello world\nfoo\n", ("line 1", "header is 'hello world'", "CVAT ImageNet 1.0 zip", "id,label")),
        (b'{"tasks": []}', ("is a JSON object", "expected one of")),
        (b"[1, 2]", ("item 1", "neither a Label Studio task", "expected one of")),
        (b"id,file\na,b\n", ("header is 'id,file'",)),
    ],
)
def test_files_that_are_no_known_format(tmp_path: Path, content: bytes, needles: tuple) -> None:
    path = write(tmp_path / "batch.csv", content)
    with pytest.raises(AnnotationError) as info:
        detect(path)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    fails(path, *needles)


def test_an_empty_labelstudio_export_has_no_records(tmp_path: Path) -> None:
    assert read_annotations(write(tmp_path / "e.json", "[]"))[0] == "labelstudio-json"
    assert records(tmp_path / "e.json") == []


# --- bounded memory -----------------------------------------------------------------------------


def _big_labelstudio(path: Path, tasks: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for n in range(tasks):
            task = ls_task(n, {"alcycle_id": f"i{n}", "image": f"x/{n}.png"}, [choice("3")])
            out.write("," * (n > 0) + json.dumps(task))
        out.write("]")


def _big_xml(path: Path, images: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("<annotations><version>1.1</version>")
        tag = '<tag label="3" source="manual"/>'
        out.writelines(f'<image id="{n}" name="x/{n}.png">{tag}</image>' for n in range(images))
        out.write("</annotations>")


def _big_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("id,label,annotator\n")
        out.writelines(f"item-{n},3,someone@example.com\n" for n in range(rows))


def _peak_memory(path: Path) -> tuple[int, int]:
    """(records read, peak bytes Python allocated while reading them)."""
    tracemalloc.start()
    try:
        read = sum(1 for _ in read_annotations(path)[1])
        return read, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _big_labelstudio_tsv(path: Path, rows: int) -> None:
    header, first = TSV.splitlines()[:2]
    with path.open("w", encoding="utf-8") as out:
        out.write(header + "\r\n")
        out.writelines(first.replace('"mnist-0000"', f'"item-{n}"', 1) + "\r\n" for n in range(rows))


@pytest.mark.slow
@pytest.mark.parametrize("make", [_big_labelstudio, _big_xml, _big_csv, _big_labelstudio_tsv])
def test_reading_memory_does_not_grow_with_the_file(tmp_path: Path, make) -> None:
    """A file ten times larger needs no more memory: nothing holds the whole file or all records.

    The constant part (parser buffers) is a few hundred kB whatever the size.
    """
    small, large = tmp_path / "small", tmp_path / "large"
    make(small, 1_000)
    make(large, 10_000)
    assert _peak_memory(small)[0] == 1_000  # also warms up lazy imports and caches
    small_peak = _peak_memory(small)[1]
    read, large_peak = _peak_memory(large)
    assert read == 10_000
    growth = large.stat().st_size - small.stat().st_size
    # Holding the file would cost at least `growth`; parser buffers vary by a few tens of kB.
    assert large_peak - small_peak < growth / 10, (small_peak, large_peak, growth)
