"""A real Lightning Trainer on a few seeded tensors: training fits, runs repeat exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from alcycle.augment import random_shift
from alcycle.backbones import BACKBONES, build_backbone
from alcycle.checkpoints import load_model, save_model
from alcycle.inference import predict, predict_all
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
        model = build_classifier(short, in_channels=1)
        assert fit(model, pixels, targets, short) == {"steps": 5, "processes": 1}
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


def with_train(params, **changes):
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **changes))


def with_strategy(params, strategy: str):
    return dataclasses.replace(params, select=dataclasses.replace(params.select, strategy=strategy))


def with_loss_module(params):
    """learning_loss, with the module it reads switched on (params.py checks the two agree)."""
    fitted = with_train(params, loss_prediction=dataclasses.replace(params.train.loss_prediction, fit=True))
    return with_strategy(fitted, "learning_loss")


def test_loss_prediction_fit_decides_whether_a_loss_module_is_trained(params):
    assert build_classifier(params, in_channels=1).loss_module is None  # fit: false
    assert build_classifier(with_strategy(params, "margin"), in_channels=1).loss_module is None
    model = build_classifier(with_loss_module(params), in_channels=1)
    assert model.loss_module is not None and model.hparams.loss_prediction


@pytest.mark.slow
def test_loss_module_learns_to_rank_the_training_losses(params):
    """Flipped labels keep a high loss; after training, the module ranks them above the rest."""
    pixels, targets = toy_digits(n=40)
    noisy = targets.copy()
    flipped = np.arange(0, 40, 5)
    noisy[flipped] = 1 - noisy[flipped]
    ll = with_steps(with_loss_module(params), 120)
    torch.manual_seed(0)
    model = build_classifier(ll, in_channels=1)
    fit(model, pixels, noisy, ll)
    outputs = predict_all(model, pixels, batch_size=16)
    with torch.no_grad():
        true_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(pixels)), torch.from_numpy(noisy),
                                                      reduction="none").numpy()
    predicted = outputs["predicted_loss"]
    assert predicted.shape == (40,)
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    spearman = np.corrcoef(rank(predicted), rank(true_loss))[0, 1]
    assert spearman > 0.5
    assert predicted[flipped].mean() > predicted[np.setdiff1d(np.arange(40), flipped)].mean()


@pytest.mark.parametrize("detach_after, backbone_gets_gradient", [(0.0, False), (1.0, True)])
def test_loss_module_stops_training_the_backbone_after_detach(params, detach_after, backbone_gets_gradient):
    ll = with_loss_module(with_train(params, loss_prediction=dataclasses.replace(
        params.train.loss_prediction, detach_after=detach_after)))
    model = build_classifier(ll, in_channels=1)  # no trainer: global_step is 0
    pixels, targets = toy_digits(n=8)
    logits = model(torch.from_numpy(pixels))
    losses = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets), reduction="none")
    model._ranking_loss(losses.detach()).backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert bool(grads) == backbone_gets_gradient
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.loss_module.parameters())


def test_mc_dropout_passes_differ_and_repeat_with_the_seed(params):
    pixels, targets = toy_digits(n=12)
    model = build_classifier(with_train(params, dropout=0.5), in_channels=1).eval()
    first = predict_all(model, pixels, batch_size=5, mc_samples=6, seed=3)
    again = predict_all(model, pixels, batch_size=5, mc_samples=6, seed=3)
    other = predict_all(model, pixels, batch_size=5, mc_samples=6, seed=4)
    mc = first["mc_probs"]
    assert mc.shape == (12, 6, 10)
    np.testing.assert_allclose(mc.sum(axis=2), 1.0, atol=1e-5)
    assert np.array_equal(mc, again["mc_probs"]) and not np.array_equal(mc, other["mc_probs"])
    assert np.abs(mc[:, 0] - mc[:, 1]).max() > 1e-3  # the masks really differ between passes
    # eval-mode probabilities use no mask: dropout is off outside MC passes
    np.testing.assert_allclose(first["probs"], predict(model, pixels, batch_size=12)[0], atol=1e-6)


def test_extract_writes_only_what_the_model_can_say(tmp_path, params):
    from alcycle.layout import Layout
    from alcycle.stages import extract

    layout = Layout(tmp_path)
    pixels, _ = toy_digits(n=10)
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, pixels)
    plain = build_classifier(params, in_channels=1).eval()
    save_model(layout.model, plain, [], params.classes)
    extract.run(layout, params)
    assert sorted(p.name for p in layout.extracted.iterdir()) == ["embeddings.npy", "probs.npy"]

    both = with_loss_module(with_train(params, dropout=0.25))
    save_model(layout.model, build_classifier(both, in_channels=1).eval(), [], params.classes)
    for stale in layout.extracted.iterdir():
        stale.unlink()  # DVC empties an output folder before it runs the stage
    extract.run(layout, both)
    assert np.load(layout.extracted / "mc_probs.npy").shape == (10, params.extract.mc_samples, 10)
    assert np.load(layout.extracted / "predicted_loss.npy").shape == (10,)


def test_extract_streams_the_arrays_predict_all_computes_and_leaves_nothing_half_written(tmp_path, params):
    """Written batch by batch into memory maps (batches of 3 over 10 rows), the arrays equal the
    in-memory pass; an error mid-way leaves no file, not even a temporary one."""
    from alcycle.inference import local_batches, write_all
    from alcycle.layout import Layout
    from alcycle.stages import extract

    layout = Layout(tmp_path)
    pixels, _ = toy_digits(n=10)
    layout.pixels.parent.mkdir(parents=True)
    np.save(layout.pixels, pixels)
    settings = with_loss_module(with_train(params, dropout=0.25))
    settings = dataclasses.replace(settings, extract=dataclasses.replace(settings.extract, batch_size=3))
    torch.manual_seed(0)
    model = build_classifier(settings, in_channels=1).eval()
    save_model(layout.model, model, [], params.classes)
    outputs = extract.run(layout, settings)
    expected = predict_all(model, pixels, 3, settings.extract.mc_samples, settings.seed)
    assert sorted(outputs) == sorted(expected) == ["embeddings", "mc_probs", "predicted_loss", "probs"]
    for name, array in outputs.items():
        assert isinstance(array, np.memmap), name  # read back from the files, not held
        np.testing.assert_allclose(array, expected[name], atol=1e-6, err_msg=name)

    def failing_after_two_batches():
        for i, batch in enumerate(local_batches(model, pixels, 3)):
            if i == 2:
                raise RuntimeError("a worker died")
            yield batch

    folder = tmp_path / "interrupted"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="a worker died"):
        write_all(model, failing_after_two_batches(), len(pixels), folder, 3)
    assert list(folder.iterdir()) == []


def test_train_counts_a_removal_batch_as_a_cycle(tmp_path, monkeypatch):
    """After a removal batch takes the newest labels out, the pool's largest ``cycle`` is
    behind the batch count; train (CEAL's threshold) uses the batch count, as evaluate and select do."""
    from alcycle.annotations.importer import import_file, remove_labels
    from alcycle.pool import cycle_number, read_labeled
    from alcycle.stages import train
    from test_import import make_project

    ids = [f"item-{i}" for i in range(6)]
    layout, params = make_project(tmp_path, ids, ("cat", "dog"))
    for number, text in enumerate(["id,label\nitem-0,cat\nitem-1,dog\n", "id,label\nitem-2,cat\n"]):
        (tmp_path / f"export-{number}.csv").write_text(text)
        import_file(layout, params, tmp_path / f"export-{number}.csv")
    remove_labels(layout, params, ["item-2"], "not a cat")
    np.save(layout.pixels, toy_digits(n=len(ids))[0])
    assert read_labeled(layout.labeled)["cycle"].max() == 1 and cycle_number(layout.annotations) == 3
    seen = []
    monkeypatch.setattr(train, "pseudo_labeller", lambda p, cycle: seen.append(cycle))
    train.run(layout, with_steps(params, 1))
    assert seen == [3]
