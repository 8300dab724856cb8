"""GAAL: the latent search, synthesised items' ids and store, and their way into and out of the labeled pool."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from alcycle import synthesised
from alcycle.annotations.importer import import_file, remove_labels
from alcycle.annotations.records import AnnotationError
from alcycle.annotations.store import list_batches
from alcycle.errors import BadFileError
from alcycle.pool import read_labeled
from alcycle.stages.train import split_labeled, trained_ids
from alcycle.strategies.asal import uncertain_latents
from alcycle.strategies.gaal import margin_uncertainty, to_pixels
from strategies.test_registry_contract import tiny_classifier, tiny_gan
from test_import import make_project

CLASSES = ("a", "b", "c")


def test_margin_uncertainty_known_answer():
    # probabilities (0.5, 0.3, 0.2) -> 1 - 0.2 = 0.8; (1/3, 1/3, 1/3) -> 1
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]]))
    np.testing.assert_allclose(margin_uncertainty(logits).numpy(), [0.8, 1.0], atol=1e-6)


def test_margin_search_raises_the_margin_uncertainty():
    gan, model = tiny_gan(), tiny_classifier(4)
    classifier = torch.nn.Sequential(model.backbone, model.head).eval()
    z = torch.randn(16, gan.shape.latent_dim, generator=torch.Generator().manual_seed(0))
    moved = uncertain_latents(gan.generator, classifier, z, steps=30, lr=0.1, uncertainty=margin_uncertainty)
    with torch.no_grad():
        before = margin_uncertainty(classifier(gan.generator(z))).mean()
        after = margin_uncertainty(classifier(gan.generator(moved))).mean()
    assert after > before
    np.testing.assert_allclose(moved.norm(dim=1).numpy(), gan.shape.latent_dim ** 0.5, rtol=1e-5)


def test_to_pixels_inverts_the_classifier_input():
    pixels = torch.tensor([[[[0, 1, 127, 128, 254, 255]]]], dtype=torch.uint8)
    assert torch.equal(to_pixels(model_input(pixels)), pixels)


def model_input(pixels: torch.Tensor) -> torch.Tensor:
    from alcycle.classifier import Classifier

    return Classifier.to_input(pixels)


def image(value: int) -> np.ndarray:
    return np.full((1, 4, 4), value, dtype=np.uint8)


def test_an_id_names_the_cycle_and_the_content():
    first = synthesised.item_id(3, image(7))
    assert synthesised.ID.match(first) and first.startswith("synth-0003-")
    assert synthesised.item_id(3, image(7)) == first  # the same pixels, the same id
    assert synthesised.item_id(3, image(8)) != first and synthesised.item_id(4, image(7)) != first
    assert synthesised.item_id(3, np.full((1, 2, 8), 7, np.uint8)) != first  # the shape counts too


def gaal_project(tmp_path, queried: list[np.ndarray], cycle: int = 0):
    """A pool of p0..p3 (p3 in the test split) whose current query batch is ``queried``, synthesised."""
    layout, params = make_project(tmp_path, ["p0", "p1", "p2", "p3"], CLASSES, test=("p3",))
    ids = [synthesised.item_id(cycle, im) for im in queried]
    synthesised.write_images(synthesised.queried(layout), ids, np.stack(queried))
    pd.DataFrame({"id": ids, "path": [f"data/queries/{synthesised.relative_path(i)}" for i in ids],
                  "score": 0.5, "strategy": "gaal", "cycle": cycle}).to_csv(layout.queries, index=False)
    return layout, params, ids


def batch(tmp_path, rows: list[tuple[str, str]], name: str = "batch.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["id", "label"]).to_csv(path, index=False)
    return path


def test_an_import_labels_synthesised_items_and_keeps_only_their_images(tmp_path):
    layout, params, ids = gaal_project(tmp_path, [image(1), image(2), image(3)])
    result = import_file(layout, params, batch(tmp_path, [(ids[0], "a"), (ids[1], "unrecognisable"), ("p0", "b")]))
    assert result.new
    assert dict(zip(*read_labeled(layout.labeled)[["id", "label"]].T.values)) == {
        ids[0]: "a", ids[1]: "unrecognisable", "p0": "b"}
    # the images of the labeled ones, not of the one nobody answered, byte for byte
    assert sorted(synthesised.items(synthesised.store(layout))["id"]) == sorted(ids[:2])
    for item in ids[:2]:
        assert (synthesised.store(layout) / f"{item}.png").read_bytes() == \
            (synthesised.queried(layout) / f"{item}.png").read_bytes()
    # the store lies inside the annotation folder and is no batch
    assert len(list_batches(layout.annotations)) == 1


def test_a_label_import_rebuild_finds_kept_items_after_the_query_batch_moves_on(tmp_path):
    from alcycle.stages import label_import

    layout, params, ids = gaal_project(tmp_path, [image(1), image(2)])
    import_file(layout, params, batch(tmp_path, [(ids[0], "c")]))
    synthesised.write_images(synthesised.queried(layout), [], np.empty((0, 1, 4, 4), np.uint8))
    for path in synthesised.queried(layout).iterdir():
        path.unlink()  # the next select replaced the query folder
    table = label_import.run(layout, params)
    assert table.set_index("id").loc[ids[0], "label"] == "c"


def test_unrecognisable_is_refused_for_a_pool_item_and_nothing_is_kept(tmp_path):
    layout, params, ids = gaal_project(tmp_path, [image(1)])
    with pytest.raises(AnnotationError, match=r"batch.csv, line 3: class 'unrecognisable' is an answer for "
                                              r"synthesised images only"):
        import_file(layout, params, batch(tmp_path, [(ids[0], "a"), ("p1", "unrecognisable")]))
    assert not synthesised.store(layout).exists() and not layout.labeled.exists()
    assert not list_batches(layout.annotations)


def test_a_synthesised_id_from_no_query_batch_is_refused_by_name(tmp_path):
    layout, params, _ = gaal_project(tmp_path, [image(1)])
    stranger = synthesised.item_id(0, image(9))
    with pytest.raises(AnnotationError, match=rf"line 2: id '{stranger}' is a synthesised image that is neither kept"):
        import_file(layout, params, batch(tmp_path, [(stranger, "a")]))


def test_a_synthesised_label_leaves_the_pool_only_through_a_removal_batch(tmp_path):
    layout, params, ids = gaal_project(tmp_path, [image(1), image(2)])
    import_file(layout, params, batch(tmp_path, [(ids[0], "a"), (ids[1], "b")]))
    remove_labels(layout, params, [ids[1]], reason="looks like noise")
    assert read_labeled(layout.labeled)["id"].tolist() == [ids[0]]
    assert len(list_batches(layout.annotations)) == 2
    # the image stays kept: an earlier cycle's tag still replays with it
    assert (synthesised.store(layout) / f"{ids[1]}.png").exists()


def test_a_kept_image_that_was_edited_is_refused(tmp_path):
    layout, params, ids = gaal_project(tmp_path, [image(1)])
    import_file(layout, params, batch(tmp_path, [(ids[0], "a")]))
    synthesised.write_images(synthesised.store(layout), [ids[0]], image(200)[None])  # overwrite by hand
    with pytest.raises(BadFileError, match="do not hash to its id"):
        synthesised.read_pixels(layout, [ids[0]], (1, 4, 4))


def test_read_pixels_refuses_an_image_of_another_shape(tmp_path):
    layout, params, ids = gaal_project(tmp_path, [image(1)])
    import_file(layout, params, batch(tmp_path, [(ids[0], "a")]))
    np.testing.assert_array_equal(synthesised.read_pixels(layout, ids, (1, 4, 4))[0], image(1))
    with pytest.raises(BadFileError, match=r"shape \(1, 4, 4\); expected the pool's \(3, 4, 4\)"):
        synthesised.read_pixels(layout, ids, (3, 4, 4))


def test_a_pool_id_that_looks_synthesised_is_refused(tmp_path):
    layout, params, ids = gaal_project(tmp_path, [image(1)])
    manifest = pd.DataFrame({"id": [ids[0]], "path": ["images/x.png"], "split": ["pool"]})
    with pytest.raises(BadFileError, match="is also a synthesised item's id"):
        synthesised.labeling_manifest(layout, manifest, with_queries=True)


def test_train_leaves_out_unrecognisable_images_and_keeps_the_other_synthesised_ones():
    manifest = pd.DataFrame({"id": ["p0", "p1"], "path": "x", "split": "pool"})
    labeled = pd.DataFrame({"id": ["p0", "synth-0001-aaaaaaaaaaaa", "synth-0001-bbbbbbbbbbbb"],
                            "label": ["a", "unrecognisable", "b"], "cycle": 1, "source": "s", "annotator": ""})
    pool_part, made = split_labeled(manifest, labeled)
    assert pool_part["id"].tolist() == ["p0"] and made["id"].tolist() == ["synth-0001-bbbbbbbbbbbb"]
    assert trained_ids(labeled) == ["p0", "synth-0001-bbbbbbbbbbbb"]


def test_the_labeling_config_offers_unrecognisable_only_for_synthesised_batches(tmp_path):
    from alcycle.stages.select import QueryBatch, write_for_labeling_tools

    layout, params, ids = gaal_project(tmp_path, [image(1)])
    table = pd.read_csv(layout.queries, dtype=str)
    write_for_labeling_tools(layout, QueryBatch(table, image(1)[None]), None, params)
    assert 'value="unrecognisable"' in layout.labelstudio_config.read_text()
    write_for_labeling_tools(layout, QueryBatch(table), None, params)
    assert "unrecognisable" not in layout.labelstudio_config.read_text()


def test_params_refuse_gaal_without_what_it_needs(tmp_path):
    import yaml

    from alcycle.params import ParamsError, load_params
    from alcycle.scaffold import MNIST_CLASSES, render_params

    raw = yaml.safe_load(render_params("mnist", "", MNIST_CLASSES, 8, 1, 0))
    raw["select"]["strategy"] = "gaal"
    path = tmp_path / "params.yaml"

    def problems(change) -> str:
        edited = yaml.safe_load(yaml.safe_dump(raw))
        change(edited)
        path.write_text(yaml.safe_dump(edited))
        with pytest.raises(ParamsError) as error:
            load_params(path)
        return str(error.value)

    assert "'select.strategy' 'gaal' needs a GAN" in problems(lambda r: None)
    with_gan = {**raw["gan"], "method": "dcgan"}
    assert "set 'train.freeze_backbone' to false" in problems(
        lambda r: (r.update(gan=with_gan), r["train"].update(freeze_backbone=True, init="pretrained"),
                   r["pretrain"].update(method="deepcluster")))
    assert "'select.cold_start' 'gaal' searches with the classifier" in problems(
        lambda r: (r.update(gan=with_gan), r["select"].update(cold_start="gaal")))
    assert "'classes' lists 'unrecognisable'" in problems(
        lambda r: (r.update(gan=with_gan), r.update(classes=[*MNIST_CLASSES[:9], "unrecognisable"])))
    assert "'select.gaal.objective' is 'distance'" in problems(
        lambda r: (r.update(gan=with_gan), r["select"]["gaal"].update(objective="distance")))


def test_the_oracles_reference_answers_unrecognisable_below_its_confidence_threshold(tmp_path):
    from alcycle.inference import predict
    from alcycle.oracle import Reference

    images = [np.random.default_rng(i).integers(0, 256, (1, 8, 8), dtype=np.uint8) for i in range(6)]
    layout, _, ids = gaal_project(tmp_path, images)
    np.save(layout.pixels, np.stack(images))  # the pool's shape: (1, 8, 8)
    model = tiny_classifier(4)
    probs, _ = predict(model, np.stack(images), batch_size=8)
    confidence = probs.max(axis=1)
    threshold = float(np.median(confidence))
    reference = Reference(model, ("w", "x", "y", "z"), trained_on=0, test_accuracy=1.0)
    labels, seen = reference.label(layout, ids, threshold)
    np.testing.assert_allclose(seen, confidence, rtol=1e-6)
    expected = ["unrecognisable" if c < threshold else "wxyz"[k] for c, k in zip(confidence, probs.argmax(axis=1))]
    assert labels == expected and labels.count("unrecognisable") == int((confidence < threshold).sum()) >= 1
