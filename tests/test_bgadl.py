"""BGADL's VAE-ACGAN augmentation: what it adds, and that its variants keep their class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alcycle import bgadl
from alcycle.params import BgadlParams


def two_classes(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """n 8 x 8 images of two classes: 0 = white top half, 1 = white bottom half."""
    top = np.zeros((1, 8, 8), dtype=np.uint8)
    top[:, :4] = 255
    images = np.stack([top if i % 2 == 0 else top[:, ::-1] for i in range(n)])
    return images, np.arange(n) % 2


def settings(variants: int, steps: int) -> BgadlParams:
    return BgadlParams(variants=variants, steps=steps, latent_dim=4, width=8, batch_size=8, lr=2e-3, kl_weight=1.0,
                       reconstruction_weight=10.0)


def test_no_variants_leaves_the_labeled_images_as_they_are():
    images, targets = two_classes()
    same, classes = bgadl.augment(images, targets, settings(0, 5), 2, seed=0)
    assert same is images and classes is targets


def test_variants_follow_the_labeled_images_with_their_classes():
    images, targets = two_classes(6)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out, classes = bgadl.augment(images, targets, settings(2, 3), 2, seed=0)
    assert out.dtype == np.uint8 and out.shape == (18, 1, 8, 8)
    np.testing.assert_array_equal(out[:6], images)
    assert classes.tolist() == targets.tolist() * 3


@pytest.mark.slow
def test_trained_variants_look_like_their_own_class_not_the_other():
    images, targets = two_classes()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out, classes = bgadl.augment(images, targets, settings(1, 150), 2, seed=0)
    made, made_classes = out[16:].astype(float), classes[16:]
    own = np.abs(made - images[made_classes].astype(float)).mean(axis=(1, 2, 3))
    other = np.abs(made - images[1 - made_classes].astype(float)).mean(axis=(1, 2, 3))
    assert (own < other).all() and own.mean() < 0.25 * other.mean()


def test_the_same_seed_gives_the_same_variants():
    images, targets = two_classes(4)

    def run() -> np.ndarray:
        with torch.random.fork_rng():
            torch.manual_seed(3)
            return bgadl.augment(images, targets, settings(1, 4), 2, seed=3)[0]
    np.testing.assert_array_equal(run(), run())


@pytest.mark.parametrize("field, value, message", [
    ("variants", -1, "'train.bgadl.variants' is -1; use 0 (off) or more"),
    ("batch_size", 1, "'train.bgadl.batch_size' is 1; use at least 2"),
    ("lr", 0.0, "'train.bgadl.lr' is 0.0; it must be above 0"),
    ("steps", 0, "'train.bgadl.steps' is 0; it must be at least 1"),
])
def test_bad_settings_name_their_key(field, value, message):
    import dataclasses

    assert any(message in problem for problem in dataclasses.replace(settings(1, 1), **{field: value}).problems())
