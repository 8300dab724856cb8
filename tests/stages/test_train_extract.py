"""A real Lightning Trainer on a few seeded tensors: training fits, runs repeat exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from alcycle.models import BACKBONES, build_backbone, load_model, random_shift, save_model
from alcycle.models import predict
from alcycle.stages.train import build_classifier, fit
from conftest import toy_digits


def with_steps(params, steps: int):
    return dataclasses.replace(params, train=dataclasses.replace(params.train, steps=steps))


def test_fit_learns_a_separable_toy_task(params):
    pixels, targets = toy_digits()
    torch.manual_seed(0)
    model = build_classifier(params, in_channels=1)
    fit(model, pixels, targets, with_steps(params, 30))
    probs, embeddings = predict(model, pixels, batch_size=16)
    assert probs.shape == (40, 10) and embeddings.shape == (40, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == targets).mean() == 1.0


def test_training_is_reproducible(params):
    pixels, targets = toy_digits()
    short = with_steps(params, 5)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = fit(build_classifier(short, in_channels=1), pixels, targets, short)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_save_and_load_round_trip(tmp_path, params):
    model = build_classifier(params, in_channels=1).eval()
    save_model(tmp_path / "model.pt", model, ["a", "b"], params.classes)
    loaded, meta = load_model(tmp_path / "model.pt")
    assert meta["train_ids"] == ["a", "b"] and meta["classes"] == list(params.classes)
    x = torch.randint(0, 255, (3, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("name, dim", [("small_cnn", 128), ("resnet18", 512)])
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 20)])
def test_backbones_take_any_channel_count_and_size(name, dim, channels, size):
    net = build_backbone(name, channels).eval()
    assert net(torch.zeros(2, channels, size, size)).shape == (2, dim)


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'; choose one of: resnet18, small_cnn"):
        build_backbone("vgg", 1)
    assert sorted(BACKBONES) == ["resnet18", "small_cnn"]


def test_random_shift_moves_content_within_bounds():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 2] = 1.0
    shifted = random_shift(image.repeat(50, 1, 1, 1), 2, torch.Generator().manual_seed(0))
    positions = {tuple(torch.nonzero(s[0])[0].tolist()) for s in shifted}
    assert all(0 <= r <= 4 and 0 <= c <= 4 for r, c in positions)
    assert len(positions) > 5  # shifts really vary
    assert shifted.sum().item() == 50  # the pixel never falls off a 2-pixel border
