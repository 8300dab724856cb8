"""pretrain-vit: none writes a note, weights load whole or fail by name, DeepCluster trains reproducibly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision

import alcycle.deepcluster as deepcluster
import alcycle.stages.pretrain_vit as pretrain_vit
import alcycle.vit_deepcluster as vit_deepcluster
from alcycle.layout import Layout
from alcycle.params import load_params
from alcycle.vit import attention_and_features, build_vit, load_vit
from conftest import write_params

TINY = {"patch_size": 4, "hidden_dim": 16, "layers": 2, "heads": 2, "mlp_dim": 32}


def vit_params(tmp_path, **values):
    """The shipped params with a tiny transformer and ``values`` in ``pretrain_vit``."""
    params = load_params(write_params(tmp_path))
    return dataclasses.replace(params, pretrain_vit=dataclasses.replace(params.pretrain_vit, **{**TINY, **values}))


def project(tmp_path, n: int = 32) -> Layout:
    """A project holding ``n`` seeded 8×8 grayscale images: bright blobs in one of four corners."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 40, size=(n, 1, 8, 8)).astype(np.uint8)
    for i, corner in enumerate(rng.integers(0, 4, size=n)):
        y, x = divmod(int(corner), 2)
        pixels[i, 0, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4] += 200
    layout = Layout(tmp_path)
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, pixels)
    return layout


def test_method_none_writes_a_note_that_geal_refuses(tmp_path):
    layout = project(tmp_path)
    pretrain_vit.run(layout, vit_params(tmp_path))
    assert torch.load(layout.vit, weights_only=True)["method"] == "none"
    with pytest.raises(ValueError, match="set pretrain_vit.method"):
        load_vit(layout.vit)


def torchvision_checkpoint(path, image_size: int = 8) -> torchvision.models.VisionTransformer:
    torch.manual_seed(3)  # stands in for an ImageNet or DINO checkpoint
    reference = torchvision.models.VisionTransformer(image_size=image_size, patch_size=4, num_layers=2, num_heads=2,
                                                     hidden_dim=16, mlp_dim=32)
    torch.save(reference.state_dict(), path)
    return reference


def test_weights_round_trip_through_the_stage(tmp_path):
    layout = project(tmp_path)
    reference = torchvision_checkpoint(tmp_path / "vit_tiny.pth")
    pretrain_vit.run(layout, vit_params(tmp_path, method="weights", weights="vit_tiny.pth"))  # relative to the project
    vit = load_vit(layout.vit)
    pixels = np.load(layout.pixels)
    reference.heads = torch.nn.Identity()
    x = vit.to_input(torch.from_numpy(pixels))
    with torch.no_grad():
        np.testing.assert_array_equal(vit(x).numpy(), reference.eval()(x).numpy())
    for name, tensor in reference.state_dict().items():
        assert torch.equal(vit.state_dict()[name], tensor), name


def test_a_checkpoint_of_another_size_fails_naming_the_tensor(tmp_path):
    layout = project(tmp_path)
    torchvision_checkpoint(tmp_path / "vit_224.pth", image_size=16)
    with pytest.raises(ValueError, match=r"vit_224\.pth does not fit .*encoder\.pos_embedding \(1, 17, 16\)"):
        pretrain_vit.run(layout, vit_params(tmp_path, method="weights", weights=str(tmp_path / "vit_224.pth")))
    with pytest.raises(FileNotFoundError, match="pretrain_vit.weights"):
        pretrain_vit.run(layout, vit_params(tmp_path, method="weights", weights="absent.pth"))


def initial_weights(params, pixels):
    with torch.random.fork_rng():
        torch.manual_seed(params.seed)
        return build_vit(params.pretrain_vit, image_size=pixels.shape[-1], in_channels=pixels.shape[1]).state_dict()


@pytest.mark.slow
def test_deepcluster_trains_the_transformer_reproducibly(tmp_path):
    layout = project(tmp_path)
    pixels = np.load(layout.pixels)
    params = vit_params(tmp_path, method="deepcluster", epochs=1, clusters=4, batch_size=8)
    first = pretrain_vit.run(layout, params)["state_dict"]
    second = vit_deepcluster.pretrain_vit(pixels, params).state_dict()
    before = initial_weights(params, pixels)
    for name in first:
        assert torch.equal(first[name], second[name]), name
    changed = [name for name in first if not torch.equal(first[name], before[name])]
    assert "encoder.layers.encoder_layer_1.self_attention.in_proj_weight" in changed
    assert "conv_proj.weight" in changed
    other_seed = vit_deepcluster.pretrain_vit(pixels, dataclasses.replace(params, seed=1)).state_dict()
    assert not torch.equal(other_seed["conv_proj.weight"], first["conv_proj.weight"])
    attention, _ = attention_and_features(load_vit(layout.vit), pixels)  # what GEAL will read
    assert attention.shape == (32, 4)


def test_deepcluster_parameters_reach_their_use(tmp_path, monkeypatch):
    layout = project(tmp_path)
    calls = []
    real = deepcluster.cluster_targets
    monkeypatch.setattr(deepcluster, "cluster_targets",
                        lambda f, k, pca, n, seed: calls.append((len(f), k, seed)) or real(f, k, pca, n, seed))
    params = vit_params(tmp_path, method="deepcluster", epochs=2, clusters=3, batch_size=5, lr=0.01)
    model_lrs = []
    real_configure = vit_deepcluster.VitDeepCluster.configure_optimizers

    def configure(self):
        optimization = real_configure(self)
        model_lrs.append(optimization["optimizer"].defaults["lr"])
        return optimization

    monkeypatch.setattr(vit_deepcluster.VitDeepCluster, "configure_optimizers", configure)
    pretrain_vit.run(layout, params)
    assert calls == [(32, 3, 0), (32, 3, 1)]  # one clustering of every image per epoch, seeded per epoch
    assert model_lrs == [0.01, 0.01]  # the same optimiser, kept across both epochs' Trainers


def test_default_cluster_count_is_five_per_class_and_must_fit_the_images(tmp_path):
    with pytest.raises(ValueError, match="50 clusters for 32 images"):
        pretrain_vit.run(project(tmp_path), vit_params(tmp_path, method="deepcluster", clusters=0))


def test_warmup_rises_linearly_then_holds():
    factor = vit_deepcluster.warmup(40)  # 10% of 40 steps: 4 warm-up steps
    assert [factor(step) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_random_affine_keeps_a_blank_image_and_is_seeded():
    blank = torch.full((3, 1, 8, 8), -0.4)
    out = vit_deepcluster.random_affine(blank, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, blank)
    x = torch.randn(4, 3, 8, 8)
    first = vit_deepcluster.random_affine(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, vit_deepcluster.random_affine(x, torch.Generator().manual_seed(5)))
    assert not torch.allclose(first, x)
