"""Frozen-feature mode: cached features and the head over them give what a full pass gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import toy_digits, write_params

import alcycle.semi as semi
from alcycle import features
from alcycle.errors import BadFileError, MissingInputError
from alcycle.head import RefreshFromEmbeddings, write_head_outputs
from alcycle.inference import predict_all
from alcycle.layout import Layout
from alcycle.params import ParamsError, load_params
from alcycle.stages import embed, extract, select, train
from alcycle.stages.train import build_classifier, fit, fit_head


def frozen(params, **changes):
    """``params`` with a frozen backbone (no augmentation), ``changes`` applied to the train section."""
    return dataclasses.replace(params, train=dataclasses.replace(
        params.train, init="pretrained", freeze_backbone=True, augment=False, **changes))


def cached(model, pixels: np.ndarray, folder: Path, batch_size: int) -> np.ndarray:
    path = folder / "embeddings.npy"
    features.write_embeddings(model.backbone, pixels, path, batch_size)
    return np.load(path, mmap_mode="r")


def test_head_over_cached_features_equals_a_full_forward_pass(tmp_path, params):
    pixels, _ = toy_digits(n=23)
    torch.manual_seed(0)
    model = build_classifier(frozen(params, dropout=0.5), in_channels=1).eval()
    full = predict_all(model, pixels, batch_size=64, mc_samples=3, seed=7)
    embeddings = cached(model, pixels, tmp_path, batch_size=64)
    written = write_head_outputs(model, embeddings, tmp_path, batch_size=64, mc_samples=3, seed=7)
    np.testing.assert_allclose(embeddings, full["embeddings"], atol=1e-5)
    np.testing.assert_allclose(np.load(written["probs"]), full["probs"], atol=1e-5)
    np.testing.assert_allclose(np.load(written["mc_probs"]), full["mc_probs"], atol=1e-5)
    assert np.load(written["mc_probs"]).shape == (23, 3, 10)


def test_a_small_chunk_gives_the_one_shot_result_and_never_more_than_a_chunk(tmp_path, params):
    pixels, _ = toy_digits(n=23)
    torch.manual_seed(0)
    model = build_classifier(frozen(params, dropout=0.5), in_channels=1).eval()
    seen = []
    model.backbone.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    (tmp_path / "one").mkdir(), (tmp_path / "chunked").mkdir()
    one_shot = cached(model, pixels, tmp_path / "one", batch_size=100)
    chunked = cached(model, pixels, tmp_path / "chunked", batch_size=4)
    assert seen == [23] + [4] * 5 + [3]  # the backbone saw one chunk at a time
    np.testing.assert_allclose(chunked, one_shot, atol=1e-6)
    a = write_head_outputs(model, one_shot, tmp_path / "one", batch_size=100, mc_samples=2, seed=1)
    b = write_head_outputs(model, one_shot, tmp_path / "chunked", batch_size=4, mc_samples=2, seed=1)
    for name in ("probs", "mc_probs"):
        np.testing.assert_array_equal(np.load(a[name]), np.load(b[name]))


@pytest.mark.parametrize("semi_supervised", ["none", "ceal"])
def test_training_the_head_on_cached_features_equals_the_frozen_full_pass(tmp_path, params, semi_supervised):
    """Same loaders, steps and dropout draws: the head fitted on cached features is the one the
    frozen full pass fits (to float rounding), with and without pool pseudo-labels."""
    pixels, targets = toy_digits(n=30)
    p = frozen(params, steps=6, dropout=0.3, semi_supervised=semi_supervised,
               ceal=dataclasses.replace(params.train.ceal, delta=2.0, every=2))
    labeled = np.arange(8)
    heads = []
    for cached_path in (False, True):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = build_classifier(p, in_channels=1)
            labels = np.where(np.isin(np.arange(30), labeled), targets, -1)
            schedule = train.pseudo_labeller(p, cycle=1)
            if cached_path:
                embeddings = cached(model, pixels, tmp_path, batch_size=7)
                refresh = schedule and RefreshFromEmbeddings(schedule.labeller, embeddings, np.arange(30), labels,
                                                             schedule.every, from_start=True)
                fit_head(model, embeddings[labeled], targets[labeled], p, refresh)
            else:
                refresh = schedule and semi.RefreshPseudoLabels(schedule.labeller, pixels, labels, schedule.every,
                                                                from_start=True)
                fit(model, pixels[labeled], targets[labeled], p, refresh)
        heads.append(torch.cat([model.head.weight.flatten(), model.head.bias]).detach())
        if refresh:
            heads.append(torch.from_numpy(refresh.latest.weights))
    half = len(heads) // 2
    for full_pass, from_cache in zip(heads[:half], heads[half:]):  # the head, then CEAL's last pseudo-labels
        torch.testing.assert_close(full_pass, from_cache, atol=1e-5, rtol=0)
    assert not torch.equal(heads[0], build_classifier(p, 1).head.weight.flatten())  # it did train


def test_stale_or_missing_features_are_refused(tmp_path):
    with pytest.raises(MissingInputError, match="features/embeddings.npy is missing; .* embed stage"):
        features.open_embeddings(tmp_path / "features", {"frozen": True}, rows=3)
    folder = tmp_path / "features"
    folder.mkdir()
    np.save(folder / "embeddings.npy", np.zeros((3, 2), dtype=np.float32))
    features.write_source(folder, {"frozen": True, "backbone": "small_cnn", "pretrained_sha256": "abc"})
    with pytest.raises(BadFileError, match=r"source.json: the features come from another backbone "
                                           r"\(pretrained_sha256: 'abc', expected 'def'\)"):
        features.open_embeddings(folder, {"frozen": True, "pretrained_sha256": "def"}, rows=3)
    with pytest.raises(BadFileError, match=r"expected float32 \(4, D\), one row per manifest row; got float32 \(3, 2\)"):
        features.open_embeddings(folder, {"frozen": True}, rows=4)


@pytest.mark.parametrize("change, message", [
    ({"augment": True}, "'train.augment' cannot apply with 'train.freeze_backbone'"),
    ({"loss_prediction": {"fit": True}}, "'train.loss_prediction.fit' needs the backbone's feature maps"),
])
def test_what_cached_features_cannot_give_is_refused_at_load(tmp_path, change, message):
    raw = yaml.safe_load(write_params(tmp_path).read_text())
    raw["pretrain"]["method"] = "deepcluster"
    raw["train"].update(init="pretrained", freeze_backbone=True, augment=False)
    load_params(_dump(tmp_path, raw))  # the frozen settings themselves load
    for key, value in change.items():
        raw["train"][key] = {**raw["train"][key], **value} if isinstance(value, dict) else value
    with pytest.raises(ParamsError, match=message):
        load_params(_dump(tmp_path, raw))


def _dump(folder: Path, raw: dict) -> Path:
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    return folder / "params.yaml"


def test_new_labels_never_re_run_embed():
    """Its contract reads the pixels and the backbone only; every stage after it reads its features."""
    layout = Layout()
    assert set(embed.STAGE.deps) == {layout.pixels.as_posix(), layout.pretrained.as_posix()}
    assert set(embed.STAGE.params) == {"train.backbone", "train.freeze_backbone", "train.init", "extract.batch_size"}
    for stage in (train, extract, select):
        assert layout.features.as_posix() in stage.STAGE.deps


def tiny_frozen_project(root: Path, params, n: int = 30) -> Layout:
    """``n`` toy digits (the last 6 in the test split, the first 8 labeled) and a pretrained small_cnn."""
    from alcycle.checkpoints import atomic_torch_save

    layout = Layout(root)
    pixels, targets = toy_digits(n=n)
    layout.prepared.mkdir(parents=True)
    np.save(layout.pixels, pixels)
    ids = [f"i{k:03d}" for k in range(n)]
    pd.DataFrame({"id": ids, "path": [f"images/{i}.png" for i in ids],
                  "split": ["pool"] * (n - 6) + ["test"] * 6}).to_csv(layout.manifest, index=False)
    pd.DataFrame({"id": ids[:8], "label": [params.classes[t] for t in targets[:8]], "cycle": 1,
                  "source": "test", "annotator": ""}).to_csv(layout.labeled, index=False)
    layout.annotations.mkdir(parents=True)
    torch.manual_seed(1)
    backbone = build_classifier(params, in_channels=1).backbone
    layout.pretrained.parent.mkdir(parents=True)
    atomic_torch_save(layout.pretrained, {"method": "weights", "backbone": "small_cnn",
                                          "state_dict": backbone.state_dict()})
    return layout


@pytest.mark.slow
def test_embed_train_extract_select_on_a_tiny_frozen_project(tmp_path, params):
    """The stages in a row, without DVC: model.pt is whole (its full pass gives extract's answers),
    extract writes no second copy of the features, and select reads embed's."""
    from alcycle.checkpoints import load_model

    p = frozen(params, steps=5, dropout=0.5, semi_supervised="label_propagation",
               label_propagation=dataclasses.replace(params.train.label_propagation, k=3, every=2))
    layout = tiny_frozen_project(tmp_path, p)
    assert embed.run(layout, p)["rows"] == 30
    train.run(layout, p)
    outputs = extract.run(layout, p)
    model, _ = load_model(layout.model)
    full = predict_all(model, np.load(layout.pixels), 64, p.extract.mc_samples, p.seed)
    np.testing.assert_allclose(outputs["probs"], full["probs"], atol=1e-5)
    np.testing.assert_allclose(outputs["mc_probs"], full["mc_probs"], atol=1e-5)
    assert not (layout.extracted / "embeddings.npy").exists()
    assert len(pd.read_csv(layout.pseudo_labels)) > 0
    inputs = select.load_inputs(layout, p, "coreset")
    np.testing.assert_allclose(inputs["embeddings"], full["embeddings"], atol=1e-5)
    unfrozen = dataclasses.replace(p, train=dataclasses.replace(p.train, freeze_backbone=False))
    assert embed.run(layout, unfrozen) == {"frozen": False}
    assert sorted(f.name for f in layout.features.iterdir()) == ["source.json"]
