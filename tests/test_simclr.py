"""simclr: NT-Xent's known answers, parameters reaching their use, and features that beat random ones."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import alcycle.simclr as simclr
from alcycle import rng
from alcycle.backbones import build_backbone
from alcycle.classifier import Classifier
from alcycle.params import ParamsError, load_params
from alcycle.simclr import nt_xent, warmup_cosine
from conftest import write_params


def test_nt_xent_of_identical_views_by_hand():
    """Views (1,0), (0,1) and the same again, τ = 0.5: each view's partner has cosine 1, its two
    negatives cosine 0, so every view's loss is −log(e²/(e² + 2)) = log(1 + 2e⁻²)."""
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(nt_xent(first, first.clone(), 0.5)) == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)


def test_nt_xent_of_swapped_views_by_hand():
    """Partners swapped: each view's partner is orthogonal (0) while a negative matches it (cosine 1,
    2 after τ = 0.5): −log(e⁰/(e⁰ + e⁰ + e²)) = log(2 + e²). Lengths do not matter (cosine)."""
    first = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.0, 2.0], [0.5, 0.0]])
    assert float(nt_xent(first, second, 0.5)) == pytest.approx(math.log(2 + math.exp(2)), rel=1e-6)


def test_nt_xent_of_three_pairs_matches_the_papers_sum():
    """The paper's L = 1/2N Σ_k [ℓ(2k−1, 2k) + ℓ(2k, 2k−1)], written out term by term."""
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    tau = 0.2
    z = F.normalize(torch.cat([first, second]), dim=1)
    total = 0.0
    for i in range(6):
        partner = (i + 3) % 6
        others = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(6) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[partner]) / tau) / others)
    assert float(nt_xent(first, second, tau)) == pytest.approx(total / 6, rel=1e-5)


def test_the_learning_rate_warms_up_then_decays_to_zero():
    factor = warmup_cosine(100)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.5) and factor(100) == pytest.approx(0.0)


@pytest.mark.parametrize("old, new, message", [
    ("    temperature: 0.5 ", "    temperature: 0 ", "'pretrain.simclr.temperature' is 0.0; it must be above 0"),
    ("    batch_size: 256         # images per step", "    batch_size: 1 #",
     "'pretrain.simclr.batch_size' is 1; use at least 2"),
    ("    min_scale: 0.3 ", "    min_scale: 1.5 ", "'pretrain.simclr.min_scale' is 1.5; use 0 < x <= 1"),
    ("    jitter: 0.5 ", "    jitter: -1 ", "'pretrain.simclr.jitter' is -1.0; use 0 (none) or more"),
    ("    epochs: 40 ", "    epochs: 0 ", "'pretrain.simclr.epochs' is 0; it must be at least 1"),
    ("    flip: false", "    flip: 1", "'pretrain.simclr.flip' must be bool, got 1"),
])
def test_bad_simclr_parameters_name_their_key(tmp_path, old, new, message):
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_params(write_params(tmp_path, **{old: new}))


def test_a_params_file_from_before_simclr_loads(tmp_path):
    text = write_params(tmp_path).read_text()
    start, end = text.index("  simclr:"), text.index("pretrain_vit:")
    path = tmp_path / "params.yaml"
    path.write_text(text[:start] + "\n" + text[end:])
    params = load_params(path)
    assert params.pretrain.method == "none" and params.pretrain.simclr.temperature == 0.5


def test_every_simclr_parameter_reaches_the_training(params, monkeypatch):
    """Each key of pretrain.simclr shows up where it acts: views, loss, head, optimiser, steps."""
    seen: dict = {"views": set(), "tau": set(), "batch": set()}
    real_views, real_loss = simclr.random_views, simclr.nt_xent
    monkeypatch.setattr(simclr, "random_views", lambda x, s, g: seen["views"].add(s) or real_views(x, s, g))
    monkeypatch.setattr(simclr, "nt_xent", lambda a, b, t: seen["tau"].add(t) or seen["batch"].add(a.shape)
                        or real_loss(a, b, t))
    fits, real_fit = [], simclr.lightning_fit
    monkeypatch.setattr(simclr, "lightning_fit", lambda model, loader, callbacks, compute: fits.append(
                        (model, loader)) or real_fit(model, loader, callbacks=callbacks, compute=compute))
    sp = dataclasses.replace(params.pretrain.simclr, epochs=2, batch_size=5, lr=0.003, temperature=0.25,
                             projection_dim=7, min_scale=0.6, jitter=0.2, blur=True, flip=True)
    p = dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, method="simclr", simclr=sp))
    pixels = np.random.default_rng(0).integers(0, 256, (12, 1, 12, 12), dtype=np.uint8)
    simclr.pretrain_backbone(pixels, p)
    assert seen["views"] == {simclr.ViewSettings(min_scale=0.6, jitter=0.2, blur=True, flip=True)}
    assert seen["tau"] == {0.25} and seen["batch"] == {(5, 7)}
    model, loader = fits[0]
    assert model.settings.lr == 0.003 and model.settings.steps == 2 * (12 // 5)
    assert len(list(loader)) == 4  # two passes of 12 images in whole batches of 5


def templates_seen_through_views(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, 16, 16) uint8 and (n,) classes: a ring (0) or a cross (1), each image a random crop, scale
    and brightness of its template. Within a class, images differ only as two views of one image do,
    so a backbone that learned the views' invariances groups each class; random features follow
    where and how big the shape is."""
    ring = np.zeros((16, 16), np.uint8)
    ring[3:13, 3:13], ring[5:11, 5:11] = 220, 0
    cross = np.zeros((16, 16), np.uint8)
    cross[7:9, 2:14] = cross[2:14, 7:9] = 220
    targets = np.random.default_rng(seed).integers(0, 2, n)
    templates = torch.from_numpy(np.stack([ring, cross])[targets][:, None])
    views = simclr.random_views(templates, simclr.ViewSettings(0.3, 0.8, False, False),
                                torch.Generator().manual_seed(seed))
    return views.numpy(), targets


def centroid_probe(features: np.ndarray, targets: np.ndarray, per_class: int = 4, draws: int = 20) -> float:
    """Mean accuracy over ``draws`` of a nearest-class-mean classifier (cosine) fitted on
    ``per_class`` random labels per class and scored on every other item."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-9)
    scores = []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        labeled = np.concatenate([rng.choice(np.flatnonzero(targets == c), per_class, replace=False) for c in (0, 1)])
        rest = np.setdiff1d(np.arange(len(targets)), labeled)
        means = np.stack([unit[labeled][targets[labeled] == c].mean(0) for c in (0, 1)])
        scores.append(((unit[rest] @ means.T).argmax(1) == targets[rest]).mean())
    return float(np.mean(scores))


def frozen_features(backbone: torch.nn.Module, pixels: np.ndarray) -> np.ndarray:
    backbone.eval()
    with torch.no_grad():
        return backbone(Classifier.to_input(torch.from_numpy(pixels))).numpy()


@pytest.mark.slow
def test_simclr_features_beat_the_untrained_backbone_with_few_labels(params):
    """The same seeded small CNN before and after 20 SimCLR steps on 128 images: a probe with four
    labels per class gains at least 10 points (seeded run: 0.72 untrained, 0.92 after)."""
    pixels, targets = templates_seen_through_views(128)
    sp = dataclasses.replace(params.pretrain.simclr, epochs=10, batch_size=64, jitter=0.8)
    p = dataclasses.replace(params, pretrain=dataclasses.replace(params.pretrain, method="simclr", simclr=sp))
    with rng.seeded(p.seed):  # the initialisation SimCLR starts from
        untrained = build_backbone(p.train.backbone, 1)
    before = centroid_probe(frozen_features(untrained, pixels), targets)
    after = centroid_probe(frozen_features(simclr.pretrain_backbone(pixels, p), pixels), targets)
    assert after >= before + 0.10, (before, after)
