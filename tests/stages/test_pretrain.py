"""pretrain: DeepCluster changes the backbone; a weights file loads; parameters reach their use."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import alcycle.deepcluster as deepcluster
import alcycle.simclr as simclr
import alcycle.stages.pretrain as pretrain
from alcycle.backbones import build_backbone
from alcycle.backbones.resnet import resnet18_small
from alcycle.checkpoints import backbone_from_weights, load_backbone_weights
from alcycle.layout import Layout
from alcycle.stages.train import initial_model
from conftest import toy_digits


def with_pretrain(params, **values):
    return dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, **values))


@pytest.mark.slow
def test_deepcluster_changes_the_backbone_and_passes_its_parameters(params, monkeypatch):
    pixels, _ = toy_digits(n=48)
    calls = {"kmeans": [], "pca": []}
    real_kmeans, real_pca = deepcluster.kmeans, deepcluster.pca_whiten
    monkeypatch.setattr(deepcluster, "kmeans",
                        lambda x, k, n, s: calls["kmeans"].append((k, n)) or real_kmeans(x, k, n, s))
    monkeypatch.setattr(deepcluster, "pca_whiten", lambda x, d: calls["pca"].append(d) or real_pca(x, d))
    p = with_pretrain(params, method="deepcluster", epochs=2, clusters=4, kmeans_iterations=3, pca=8,
                      batch_size=16)
    torch.manual_seed(0)
    before = build_backbone("small_cnn", 1).state_dict()
    torch.manual_seed(0)
    backbone = deepcluster.pretrain_backbone(pixels, p)
    assert calls == {"kmeans": [(4, 3), (4, 3)], "pca": [8, 8]}
    after = backbone.state_dict()
    assert not torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])


def test_default_cluster_count_is_five_per_class(params, monkeypatch):
    seen = []
    real = deepcluster.kmeans
    monkeypatch.setattr(deepcluster, "kmeans", lambda x, k, n, s: seen.append(k) or real(x, k, n, s))
    p = with_pretrain(params, method="deepcluster", epochs=1, clusters=0, pca=8)
    deepcluster.pretrain_backbone(toy_digits(n=60)[0], p)
    assert seen == [50]  # 10 classes


def test_uniform_over_clusters_balances_draws():
    assignment = np.array([0] * 90 + [1] * 10)
    draws = np.array(list(deepcluster.uniform_over_clusters(assignment, 2, seed=0)))
    share_small = (assignment[draws] == 1).mean()
    assert 0.4 < share_small < 0.6  # 10% of the items, half of the draws


def test_stage_writes_weights_the_train_stage_starts_from(tmp_path, params):
    layout = Layout(tmp_path)
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, toy_digits(n=32)[0])
    p = with_pretrain(params, method="deepcluster", epochs=1, clusters=3, pca=0)
    saved = pretrain.run(layout, p)
    model = initial_model(layout, dataclasses.replace(p, train=dataclasses.replace(p.train, init="pretrained")), 1)
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, saved["state_dict"][name]), name


def test_no_pretraining_refuses_a_pretrained_start(tmp_path, params):
    layout = Layout(tmp_path)
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, toy_digits(n=8)[0])
    pretrain.run(layout, params)
    # params.yaml forbids this combination; here the file itself is checked
    p = dataclasses.replace(params, train=dataclasses.replace(params.train, init="pretrained"))
    with pytest.raises(ValueError, match="holds no small_cnn weights"):
        initial_model(layout, p, 1)


def test_torchvision_weights_file_loads_all_but_the_adapted_stem(tmp_path, params):
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)  # stands in for an ImageNet checkpoint
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    p = dataclasses.replace(params, train=dataclasses.replace(params.train, backbone="resnet18"),
                            pretrain=dataclasses.replace(params.pretrain, method="weights", weights="resnet18.pth"))
    backbone = backbone_from_weights(tmp_path, np.zeros((1, 3, 8, 8), np.uint8), p)
    assert torch.equal(backbone.state_dict()["layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"])
    skipped = load_backbone_weights(resnet18_small(3), reference.state_dict())
    assert sorted(skipped) == ["conv1.weight", "fc.bias", "fc.weight"]


def test_deepcluster_is_reproducible_and_leaves_torchs_generator_alone(params):
    """One seed decides everything (as in pretrain-vit): two runs agree, and the caller's
    global generator is where it was."""
    pixels, _ = toy_digits(n=24)
    p = with_pretrain(params, method="deepcluster", epochs=2, clusters=3, pca=0, batch_size=8)
    state = torch.get_rng_state()
    first = deepcluster.pretrain_backbone(pixels, p).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # another global state changes nothing
    second = deepcluster.pretrain_backbone(pixels, p).state_dict()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_a_relative_weights_path_is_taken_from_the_project_folder(tmp_path, params):
    """As in pretrain-vit; a missing file is named with its parameter."""
    layout = Layout(tmp_path / "project")
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, toy_digits(n=4)[0])
    torch.manual_seed(2)
    reference = build_backbone("small_cnn", 1)
    torch.save(reference.state_dict(), layout.root / "cnn.pt")
    saved = pretrain.run(layout, with_pretrain(params, method="weights", weights="cnn.pt"))
    for name, tensor in reference.state_dict().items():
        assert torch.equal(saved["state_dict"][name], tensor), name
    with pytest.raises(FileNotFoundError, match="pretrain.weights: .*absent.pt not found"):
        pretrain.run(layout, with_pretrain(params, method="weights", weights="absent.pt"))


def with_simclr(params, **values):
    return with_pretrain(params, method="simclr", simclr=dataclasses.replace(params.pretrain.simclr, **values))


def test_simclr_weights_load_through_the_pretrained_start(tmp_path, params):
    """The stage saves SimCLR's backbone as it saves DeepCluster's (same keys, no projection head),
    and train.init: pretrained starts from exactly those weights."""
    layout = Layout(tmp_path)
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, toy_digits(n=16)[0])
    p = with_simclr(params, epochs=1, batch_size=8)
    saved = pretrain.run(layout, p)
    assert set(saved) == {"method", "backbone", "state_dict"} and saved["method"] == "simclr"
    assert set(saved["state_dict"]) == set(build_backbone("small_cnn", 1).state_dict())
    model = initial_model(layout, dataclasses.replace(p, train=dataclasses.replace(p.train, init="pretrained")), 1)
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, saved["state_dict"][name]), name


def test_simclr_is_reproducible_and_leaves_torchs_generator_alone(params):
    pixels, _ = toy_digits(n=16)
    p = with_simclr(params, epochs=1, batch_size=8)
    state = torch.get_rng_state()
    first = simclr.pretrain_backbone(pixels, p).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # another global state changes nothing
    second = simclr.pretrain_backbone(pixels, p).state_dict()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    third = simclr.pretrain_backbone(pixels, dataclasses.replace(p, seed=1)).state_dict()
    assert not torch.equal(first["features.0.0.weight"], third["features.0.0.weight"])


def test_simclr_reads_the_store_a_row_at_a_time(tmp_path, params):
    """A memory-mapped pool stays one: training reads single rows, never the whole array."""
    path = tmp_path / "pixels.npy"
    np.save(path, toy_digits(n=16)[0])

    class Recording:
        def __init__(self, pixels):
            self.pixels, self.shape, self.reads = pixels, pixels.shape, []

        def __len__(self):
            return len(self.pixels)

        def __getitem__(self, index):
            self.reads.append(index)
            return self.pixels[index]

    pixels = Recording(np.load(path, mmap_mode="r"))
    simclr.pretrain_backbone(pixels, with_simclr(params, epochs=1, batch_size=8))
    assert len(pixels.reads) == 16 and all(isinstance(row, int) for row in pixels.reads)
