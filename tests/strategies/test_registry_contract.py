"""The contract every registered strategy keeps (in the style of scikit-activeml's template tests)."""

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from alcycle.params import Params, load_params
from alcycle.scaffold import MNIST_CLASSES, render_params
from alcycle.strategies import (STRATEGIES, SelectionContext, get_strategy, needs, select, settings_section,
                                synthesises)


def make_context(n: int = 60, classes: int = 4, dim: int = 5, labeled: int = 10, seed: int = 0,
                 strategy: str | None = None) -> SelectionContext:
    """A seeded pool holding every input ``strategy`` needs (probs and embeddings always)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mc_logits = logits[:, None, :] + rng.normal(size=(n, 3, classes))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=labeled, replace=False)] = True
    wanted = needs(strategy) if strategy else frozenset()
    extra = {}
    if "mc_probs" in wanted:
        extra["mc_probs"] = (np.exp(mc_logits) / np.exp(mc_logits).sum(axis=2, keepdims=True)).astype(np.float32)
    if "predicted_loss" in wanted:
        extra["predicted_loss"] = rng.normal(size=n).astype(np.float32)
    if "pixels" in wanted:
        extra["pixels"] = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    if "settings" in wanted:
        extra["settings"] = getattr(tiny_params().select, settings_section(strategy))
    if "vit" in wanted:
        from alcycle.vit import build_vit

        extra["vit"] = build_vit(tiny_params().pretrain_vit, image_size=8, in_channels=1)
    if "model" in wanted:
        extra["model"] = tiny_classifier(classes)
    if "gan" in wanted:
        extra["gan"] = tiny_gan()
        extra["gan_features"] = extra["gan"].pool_features(rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8))
    return SelectionContext(
        ids=np.array([f"item-{i:03d}" for i in range(n)]),
        labeled=mask,
        probs=probs.astype(np.float32),
        embeddings=rng.normal(size=(n, dim)).astype(np.float32),
        **extra,
    )


def tiny_classifier(classes: int):
    """An untrained classifier of 8 × 8 one-channel images, seeded, in eval mode."""
    import torch

    from alcycle.backbones import build_backbone
    from alcycle.classifier import Classifier, ClassifierSettings, Optimisation

    torch.manual_seed(0)
    return Classifier(build_backbone("small_cnn", 1),
                      ClassifierSettings(classes, Optimisation(0.1, 0.9, 0.0, 1), seed=0)).eval()


def tiny_gan():
    """An untrained DCGAN of 8 × 8 one-channel images whose discriminator's features are ASAL's."""
    import torch

    from alcycle.gan import Discriminator, GanShape, Generator, TrainedGan

    torch.manual_seed(0)
    shape = GanShape("dcgan", latent_dim=4, width=4, channels=1, size=8)
    return TrainedGan(shape, Generator(shape).eval(), Discriminator(shape).eval(), "discriminator")


@functools.cache
def tiny_params() -> Params:
    """The shipped params with training lengths cut to a few steps, for strategies with a model."""
    raw = yaml.safe_load(render_params("mnist", "", MNIST_CLASSES, 8, 1, 0))
    raw["select"]["vaal"].update(steps=5, batch_size=16, latent_dim=4)
    raw["select"]["asal"].update(candidates=3, steps=3)
    raw["select"]["gaal"].update(candidates=2, steps=3)
    raw["pretrain_vit"].update(patch_size=4, hidden_dim=16, layers=2, heads=2, mlp_dim=32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_params(path)


@pytest.fixture(params=sorted(STRATEGIES))
def name(request) -> str:
    return request.param


def count(selection) -> int:
    """How many queries a selection holds: pool rows, or synthesised images."""
    return len(selection.rows) if selection.images is None else len(selection.images)


def test_returns_budget_unique_unlabeled_rows(name):
    context = make_context(strategy=name)
    selection = select(context, name, 12, np.random.default_rng(1))
    if synthesises(name):  # new images shaped like the GAN's, no pool row
        assert selection.images.shape == (12, 1, 8, 8) and selection.images.dtype == np.uint8
        assert len({image.tobytes() for image in selection.images}) == 12 and len(selection.rows) == 0
        assert np.isfinite(selection.scores).all() and selection.scores.shape == (12,)
        return
    assert len(selection.rows) == 12
    assert len(set(selection.rows.tolist())) == 12
    assert not context.labeled[selection.rows].any()
    assert selection.scores.shape == (12,)
    assert np.isfinite(selection.scores).all()


def test_same_seed_same_picks(name):
    context = make_context(strategy=name)
    first = select(context, name, 8, np.random.default_rng(7))
    second = select(context, name, 8, np.random.default_rng(7))
    np.testing.assert_array_equal(first.rows, second.rows)
    np.testing.assert_array_equal(first.scores, second.scores)
    if synthesises(name):
        np.testing.assert_array_equal(first.images, second.images)


def test_can_take_every_unlabeled_item(name):
    context = make_context(n=20, labeled=5, strategy=name)
    selection = select(context, name, 15, np.random.default_rng(0))
    if synthesises(name):  # its queries are new: the pool never bounds them
        assert count(select(context, name, 16, np.random.default_rng(0))) == 16
        return
    assert sorted(selection.rows.tolist()) == sorted(np.flatnonzero(~context.labeled).tolist())


def test_works_from_an_empty_labeled_pool(name):
    context = make_context(labeled=0, strategy=name)
    assert count(select(context, name, 5, np.random.default_rng(0))) == 5


@pytest.mark.parametrize("budget", [0, -3, 51, 2.5, True])
def test_bad_budget_is_refused(name, budget):
    if budget == 51 and synthesises(name):  # more than the unlabeled pool: new images, so allowed
        assert count(select(make_context(strategy=name), name, budget, np.random.default_rng(0))) == 51
        return
    with pytest.raises(ValueError, match="budget"):
        select(make_context(strategy=name), name, budget, np.random.default_rng(0))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        get_strategy("entrpy")
    assert str(error.value) == (
        "unknown strategy 'entrpy'; choose one of: asal, badge, bald, coreset, entropy, gaal, geal, learning_loss, "
        "least_confidence, margin, probcover, random, sraal, typiclust, vaal"
    )


@pytest.mark.parametrize("name, missing", [("entropy", "probs"), ("margin", "probs"),
                                           ("least_confidence", "probs"), ("coreset", "embeddings")])
def test_missing_input_is_named(name, missing):
    full = make_context()
    context = SelectionContext(ids=full.ids, labeled=full.labeled,
                               probs=None if missing == "probs" else full.probs,
                               embeddings=None if missing == "embeddings" else full.embeddings)
    with pytest.raises(ValueError, match=f"'{name}' needs {missing}"):
        select(context, name, 3, np.random.default_rng(0))


def test_context_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="probs must have 2 dimensions and 2 rows"):
        SelectionContext(ids=np.array(["a", "b"]), labeled=np.zeros(2, bool), probs=np.ones((3, 2)))
