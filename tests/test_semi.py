"""Pseudo-labellers and their refresh during training; every parameter reaches its use."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import alcycle.semi as semi
from alcycle.inference import predict
from alcycle.propagation import Search
from alcycle.params import CealParams, LabelPropagationParams
from alcycle.stages.train import build_classifier, fit
from conftest import toy_digits


def test_ceal_threshold_decays_per_cycle():
    params = CealParams(delta=0.1, decay=0.03, every=10)
    assert [round(semi.ceal_threshold(params, c), 6) for c in (1, 2, 3, 4, 5)] == [0.1, 0.07, 0.04, 0.01, 0.0]


def test_ceal_labels_only_confident_unlabeled_rows():
    probs = np.array([[0.99, 0.01], [0.6, 0.4], [0.02, 0.98], [0.995, 0.005]])
    labels = np.array([-1, -1, -1, 1])  # the last row is labeled
    pseudo = semi.ceal_labeller(delta=0.1)(probs, np.zeros((4, 1)), labels)
    # entropies: 0.056, 0.673, 0.098, 0.031 nats
    assert pseudo.weights.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert pseudo.targets[[0, 2]].tolist() == [0, 1]
    assert pseudo.count == 2


def test_propagation_labeller_passes_every_parameter(monkeypatch):
    seen, real = {}, semi.propagate

    def fake_propagate(features, labels, num_classes, **kwargs):
        seen.update(kwargs, num_classes=num_classes)
        return real(features, labels, num_classes, k=2, gamma=3.0, alpha=0.99)

    monkeypatch.setattr(semi, "propagate", fake_propagate)
    params = LabelPropagationParams(k=7, gamma=2.5, alpha=0.9, reciprocal=True, iterations=13, every=5,
                                    search="ivf", nlist=3, nprobe=2)
    embeddings = np.array([[0, 1], [0, 1.1], [1, 0], [1.1, 0]], dtype=np.float32)
    pseudo = semi.propagation_labeller(params, 2)(None, embeddings, np.array([0, -1, 1, -1]))
    assert seen == {"k": 7, "gamma": 2.5, "alpha": 0.9, "reciprocal": True, "iterations": 13, "num_classes": 2,
                    "search": Search("ivf", 3, 2)}
    assert pseudo.targets.tolist() == [0, 0, 1, 1]
    assert pseudo.weights[[0, 2]].tolist() == [0.0, 0.0]  # labeled rows train in the labeled stream
    assert (pseudo.weights[[1, 3]] > 0).all()


@pytest.mark.parametrize("from_start, expected", [(False, [3, 6]), (True, [0, 3, 6])])
def test_refresh_runs_every_n_steps(params, from_start, expected):
    pixels, targets = toy_digits(n=20)
    calls = []

    def labeller(probs, embeddings, labels):
        calls.append(len(calls))
        return semi.PseudoLabels(probs.argmax(axis=1), np.ones(len(probs), dtype=np.float32))

    short = dataclasses.replace(params, train=dataclasses.replace(params.train, steps=8))
    refresh = semi.RefreshPseudoLabels(labeller, pixels, np.full(20, -1), every=3, from_start=from_start)
    torch.manual_seed(0)
    fit(build_classifier(short, 1), pixels[:6], targets[:6], short, refresh)
    assert len(calls) == len(expected)
    assert refresh.latest.count == 20


def test_pseudo_labels_change_training(params):
    pixels, targets = toy_digits(n=30)
    short = dataclasses.replace(params, train=dataclasses.replace(params.train, steps=6))
    results = []
    for weight in (0.0, 1.0):
        refresh = semi.RefreshPseudoLabels(
            lambda p, e, l, w=weight: semi.PseudoLabels(np.zeros(len(p), dtype=np.int64),
                                                       np.full(len(p), w, dtype=np.float32)),
            pixels, np.full(30, -1), every=1, from_start=True)
        torch.manual_seed(0)
        model = build_classifier(short, 1)
        fit(model, pixels[:4], targets[:4], short, refresh)
        results.append(predict(model, pixels, 30)[0])
    # pseudo-labels all of class 0 with weight 1 pull predictions towards class 0
    assert results[1][:, 0].mean() > results[0][:, 0].mean()


def test_frozen_backbone_trains_only_the_head(params):
    pixels, targets = toy_digits(n=20)
    frozen = dataclasses.replace(params, train=dataclasses.replace(params.train, steps=5, freeze_backbone=True))
    torch.manual_seed(0)
    model = build_classifier(frozen, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, pixels, targets, frozen)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}  # batch-norm statistics stay frozen too


@pytest.mark.parametrize("mode, cycle, check", [
    ("none", 1, lambda schedule: schedule is None),
    ("ceal", 3, lambda schedule: schedule.labeller(np.array([[0.97, 0.03]]), None, np.array([-1])).count == 0),
    ("ceal", 1, lambda schedule: schedule.labeller(np.array([[0.97, 0.03]]), None, np.array([-1])).count == 1),
])
def test_semi_supervised_choice_reaches_training(params, mode, cycle, check):
    from alcycle.stages.train import pseudo_labeller

    # entropy of (0.97, 0.03) is 0.135 nats: under delta 0.15 at cycle 1, over 0.15 - 2 × 0.01 at cycle 3
    p = dataclasses.replace(params, train=dataclasses.replace(
        params.train, semi_supervised=mode, ceal=CealParams(delta=0.15, decay=0.01, every=1)))
    assert check(pseudo_labeller(p, cycle))


def test_pretrain_batch_size_and_lr_reach_the_trainer(params, monkeypatch):
    import alcycle.deepcluster as deepcluster

    seen = []
    real_fit = deepcluster.lightning_fit

    def spy(model, loaders, **kwargs):
        seen.append((loaders["labeled"].batch_size, model.hparams.lr))
        return real_fit(model, loaders, **kwargs)

    monkeypatch.setattr(deepcluster, "lightning_fit", spy)
    p = dataclasses.replace(params, pretrain=dataclasses.replace(
        params.pretrain, method="deepcluster", epochs=1, clusters=3, pca=0, batch_size=7, lr=0.02))
    deepcluster.pretrain_backbone(toy_digits(n=21)[0], p)
    assert seen == [(7, 0.02)]


def test_the_pool_batch_gets_its_rows_current_pseudo_labels():
    refresh = semi.RefreshPseudoLabels(None, np.zeros((3, 1, 2, 2)), np.full(3, -1), every=1, from_start=True)
    pixels, rows = torch.zeros(2, 1, 2, 2), torch.tensor([2, 0])
    batch = {"pool": (pixels, rows)}
    refresh.label_pool_batch(batch)
    assert "pool" not in batch  # no pseudo-labels yet: the pool does not train
    refresh.latest = semi.PseudoLabels(np.array([4, 5, 6]), np.array([0.1, 0.2, 0.3], dtype=np.float32))
    batch = {"pool": (pixels, rows)}
    refresh.label_pool_batch(batch)
    _, targets, weights = batch["pool"]
    assert targets.tolist() == [6, 4] and weights.tolist() == pytest.approx([0.3, 0.1])
