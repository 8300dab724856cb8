"""FixMatch: the masked loss by hand, the two views, and a real training run with them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from alcycle import rng
from alcycle.augment import weak_view, strong_view
from alcycle.fixmatch import FixMatchViews, fixmatch, pseudo_targets, unlabeled_loss
from alcycle.params import FixMatchParams
from alcycle.stages.train import build_classifier, fit
from conftest import toy_digits

WEAK = torch.tensor([[2.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 4.0]])
STRONG = torch.tensor([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 1.0, 1.0]])


def test_pseudo_labels_and_mask_by_hand():
    # max softmax: e²/(e²+2) = 0.787, e^0.5/(e^0.5+2) = 0.452, e⁴/(e⁴+2) = 0.965
    targets, mask = pseudo_targets(WEAK, threshold=0.75)
    assert targets.tolist() == [0, 0, 2]
    assert mask.tolist() == [True, False, True]
    assert pseudo_targets(WEAK, threshold=0.95)[1].tolist() == [False, False, True]


def test_unlabeled_loss_by_hand():
    # loss = w/B · Σ mask_b · CE(strong_b, q_b), B = 3 (the masked item counts in the mean):
    # CE(item 0, class 0) = log(e + 2) − 1; CE(item 2, class 2) = log(1 + 2e) − 1
    by_hand = (math.log(math.e + 2) - 1 + math.log(1 + 2 * math.e) - 1) / 3
    assert unlabeled_loss(WEAK, STRONG, threshold=0.75).item() == pytest.approx(by_hand, rel=1e-6)
    assert unlabeled_loss(WEAK, STRONG, threshold=0.75, weight=2.0).item() == pytest.approx(2 * by_hand, rel=1e-6)
    only_last = (math.log(1 + 2 * math.e) - 1) / 3
    assert unlabeled_loss(WEAK, STRONG, threshold=0.95).item() == pytest.approx(only_last, rel=1e-6)


def test_all_masked_gives_zero_loss_and_no_gradient_through_the_weak_view():
    weak = WEAK.clone().requires_grad_(True)
    strong = STRONG.clone().requires_grad_(True)
    loss = unlabeled_loss(weak, strong, threshold=0.99)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert weak.grad is None  # the pseudo-label is a target, not a path for gradients
    assert torch.equal(strong.grad, torch.zeros_like(STRONG))


def images(shape: tuple[int, ...], n: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("view", [weak_view, strong_view])
def test_views_keep_shape_and_dtype_change_pixels_and_repeat_with_the_seed(shape, view):
    batch = images(shape)
    first = view(batch, rng.views_generator(0))
    assert first.shape == batch.shape and first.dtype == torch.uint8
    assert not torch.equal(first, batch)
    assert torch.equal(first, view(batch, rng.views_generator(0)))
    assert not torch.equal(first, view(batch, rng.views_generator(1)))


def test_the_weak_view_is_a_shift_of_at_most_an_eighth_of_the_side():
    batch = images((1, 32, 32), n=6)
    views = weak_view(batch, rng.views_generator(0))
    padded = torch.nn.functional.pad(batch, (4, 4, 4, 4))
    for image, view in zip(padded, views):
        shifts = [(dy, dx) for dy in range(9) for dx in range(9) if torch.equal(image[:, dy:dy + 32, dx:dx + 32], view)]
        assert len(shifts) == 1  # random pixels: exactly one shift within ±4 px matches
    flipped = weak_view(batch, rng.views_generator(0), flip=True)
    assert not torch.equal(flipped, views)  # some image was also mirrored


def test_views_leave_the_global_generator_alone():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    strong_view(images((1, 28, 28)), rng.views_generator(0))
    assert torch.equal(torch.get_rng_state(), before)


def test_a_short_fixmatch_fit_trains_on_strong_views_of_unlabeled_items(params):
    pixels, targets = toy_digits(n=30)
    short = dataclasses.replace(params, train=dataclasses.replace(
        params.train, steps=4, batch_size=4, semi_supervised="fixmatch",
        fixmatch=FixMatchParams(threshold=0.5, unlabeled_weight=1.0, mu=2, flip=False)))
    labels = np.full(30, -1)
    labels[:6] = targets[:6]
    method = fixmatch(short.train, num_classes=10, cycle=1)
    seen = []

    class Spy(FixMatchViews):
        def on_train_batch_start(self, trainer, model, batch, batch_idx):
            seen.append(len(batch["pool"][1]))
            super().on_train_batch_start(trainer, model, batch, batch_idx)
            seen.append(batch["pool"][2].sum().item())

    spy = Spy(method.params, pixels, labels, seed=0)
    torch.manual_seed(0)
    model = build_classifier(short, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, pixels[:6], targets[:6], short, spy)
    assert seen[0::2] == [8] * 4  # mu × batch_size unlabeled items each step
    assert sum(seen[1::2]) > 0  # with 10 classes, max softmax >= 0.5 on some items
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # at the end: the unaugmented unlabeled pool's confident pseudo-labels, labeled rows never
    assert spy.latest is not None and spy.latest.weights[:6].sum() == 0
    assert set(np.unique(spy.latest.weights)) <= {0.0, 1.0}


def test_train_stage_with_fixmatch_writes_its_confident_pseudo_labels(tmp_path):
    """The stage runs FixMatch end to end and writes what evaluate scores: only unlabeled pool
    items over the threshold (the threshold at the floor 1/C takes every one of them)."""
    import pandas as pd

    from alcycle.annotations.importer import import_file
    from alcycle.stages import train
    from test_import import make_project

    ids = [f"item-{i}" for i in range(12)]
    layout, params = make_project(tmp_path, ids, ("cat", "dog"), test=("item-11",))
    (tmp_path / "export.csv").write_text("id,label\nitem-0,cat\nitem-1,dog\nitem-2,cat\n")
    import_file(layout, params, tmp_path / "export.csv")
    np.save(layout.pixels, toy_digits(n=len(ids))[0])
    tp = dataclasses.replace(params.train, steps=2, batch_size=2, semi_supervised="fixmatch",
                             fixmatch=FixMatchParams(threshold=0.5, unlabeled_weight=1.0, mu=2, flip=True))
    train.run(layout, dataclasses.replace(params, train=tp))
    pseudo = pd.read_csv(layout.pseudo_labels, dtype=str)
    assert set(pseudo["id"]) == {f"item-{i}" for i in range(3, 11)}  # not labeled, not test
    assert set(pseudo["label"]) <= {"cat", "dog"} and set(pseudo["weight"]) == {"1.0"}
