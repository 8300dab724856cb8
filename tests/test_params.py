"""params.yaml loads into typed dataclasses and fails loudly on any mistake."""

import dataclasses
from pathlib import Path

import pytest
from conftest import write_params

from alcycle.backbones import BACKBONES
from alcycle.methods import PRETRAIN, PRETRAIN_VIT, SEMI_SUPERVISED
from alcycle.params import ParamsError, load_params
from alcycle.scaffold import DEMO_SETTINGS


def test_the_shipped_params_load():
    params = load_params(Path(__file__).parents[1] / "params.yaml")
    assert params.prepare.source == "mnist"
    assert params.classes == tuple(str(d) for d in range(10))
    assert params.select.cold_start == DEMO_SETTINGS["select.cold_start"]
    assert isinstance(params.train.lr, float)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  budget: 20", "  budgt: 20", "unknown key 'select.budgt'; expected one of: strategy, cold_start, budget"),
        ("  lr: 0.05\n  momentum", "  momentum", "missing key 'train.lr'"),
        ("    every: 100              # re-propagate", "    evry: 100 #", "unknown key 'train.label_propagation.evry'"),
        ("  method: none", "  method: byol",
         "'pretrain.method' is 'byol'; choose one of: none, deepcluster, simclr, weights"),
        ("  init: scratch", "  init: pretrained", "'train.init' is 'pretrained' but 'pretrain.method' is 'none'"),
        ("  freeze_backbone: false", "  freeze_backbone: true", "'train.freeze_backbone' needs 'train.init: pretrained'"),
        ("  semi_supervised: none", "  semi_supervised: mixmatch", "choose one of: none, label_propagation, ceal"),
        ("  backbone: small_cnn", "  backbone: resnet81", "'train.backbone' is 'resnet81'; choose one of: resnet18, small_cnn"),
        ("    alpha: 0.99", "    alpha: 1.0", "'train.label_propagation.alpha' must be in (0, 1)"),
        ("  steps: 300 ", "  steps: many ", "'train.steps' must be int, got 'many'"),
        ("  augment: true", "  augment: 1", "'train.augment' must be bool, got 1"),
        ("  steps: 300 ", "  steps: true ", "'train.steps' must be int, got True"),
        ("  source: mnist", "  source: imagenet", "'prepare.source' is 'imagenet'; choose one of: mnist, folder, csv"),
        ("  source: mnist", "  source: folder", "'prepare.path' is empty; source 'folder' needs it"),
        ("  channels: 1", "  channels: 2", "'prepare.channels' is 2; choose 1 or 3"),
        ("  on_unreadable: refuse", "  on_unreadable: ignore",
         "'prepare.on_unreadable' is 'ignore'; choose one of: refuse, skip"),
        ("  on_conflict: refuse", "  on_conflict: merge", "choose one of: refuse, relabel"),
        ("  budget: 20", "  budget: 0", "'select.budget' is 0; it must be at least 1"),
        ("  strategy: entropy", "  strategy: entrpy",
         "'select.strategy' is 'entrpy'; choose one of: asal, badge, bald, coreset, entropy"),
        ("  method: none              # none | dcgan", "  method: biggan #",
         "'gan.method' is 'biggan'; choose one of: none, dcgan, wgan_gp"),
        ("  features: pca", "  features: autoencoder", "'gan.features' is 'autoencoder'; choose one of: pca, discriminator"),
        ("  strategy: entropy", "  strategy: asal", "'select.strategy' 'asal' needs a GAN: set 'gan.method'"),
        ("  cold_start: random", "  cold_start: asal",
         "'select.cold_start' 'asal' searches with the classifier, which does not exist before the first labels"),
        ("  cold_start: random", "  cold_start: balf", "'select.cold_start' is 'balf'"),
        ("  strategy: entropy", "  strategy: bald",
         "'select.strategy' 'bald' needs MC-dropout samples: set 'train.dropout' > 0 and 'extract.mc_samples' >= 2"),
        ("  strategy: entropy", "  strategy: learning_loss",
         "'select.strategy' 'learning_loss' needs a loss prediction module: set 'train.loss_prediction.fit' to true"),
        ("    fit: false", "    fit: 1", "'train.loss_prediction.fit' must be bool, got 1"),
        ("  dropout: 0.0", "  dropout: 1.0", "'train.dropout' is 1.0; use 0 <= p < 1"),
        ("    detach_after: 0.6", "    detach_after: 1.5", "'train.loss_prediction.detach_after' must be a share"),
        ("    tau: 0.5", "    tau: 0", "'select.geal.tau' is 0.0; use 0 < tau <= 1"),
        ("  heads: 3", "  heads: 5", "'pretrain_vit.heads' 5 must divide 'pretrain_vit.hidden_dim'"),
        ("  method: none              # none | deepcluster | weights (a torch", "  method: dino #",
         "'pretrain_vit.method' is 'dino'; choose one of: none, deepcluster, weights"),
        ("  test_fraction: 0.2", "  test_fraction: 1.5", "'prepare.test_fraction' is 1.5"),
        ("seed: 0 ", "seed: 0.5 ", "'seed' must be int, got 0.5"),
        ('  image_url_prefix: "/data/local-files/?d="', '  image_url_prefix: ""',
         "'select.image_url_prefix' is ''; use a prefix without spaces, such as '/data/local-files/?d='"),
        ('  image_url_prefix: "/data/local-files/?d="', '  image_url_prefix: "/data/local files/?d="',
         "'select.image_url_prefix' is '/data/local files/?d='"),
    ],
)
def test_mistakes_name_the_key(tmp_path, old, new, message):
    path = write_params(tmp_path, **{old: new})
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_bald_loads_once_the_model_has_dropout(tmp_path):
    params = load_params(write_params(tmp_path, **{"  strategy: entropy": "  strategy: bald",
                                                   "  dropout: 0.0": "  dropout: 0.5"}))
    assert params.select.strategy == "bald" and params.train.dropout == 0.5


def test_missing_file_says_where_to_look(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_floats_accept_integers(tmp_path):
    params = load_params(write_params(tmp_path, **{"  lr: 0.05\n  momentum": "  lr: 1\n  momentum"}))
    assert params.train.lr == 1.0 and isinstance(params.train.lr, float)


def test_learning_loss_loads_once_the_loss_module_is_fitted(tmp_path):
    params = load_params(write_params(tmp_path, **{"  strategy: entropy": "  strategy: learning_loss",
                                                   "    fit: false": "    fit: true"}))
    assert params.select.strategy == "learning_loss" and params.train.loss_prediction.fit


@pytest.mark.parametrize("strategy, fitted", [("entropy", False), ("learning_loss", True)])
def test_a_params_file_older_than_a_key_loads_as_it_behaved(tmp_path, strategy, fitted):
    """Keys added later (params.ADDED_LATER) get the value that keeps an old project's behaviour:
    before train.loss_prediction.fit, train fitted the module when the strategy read it."""
    path = write_params(tmp_path, **{"  strategy: entropy": f"  strategy: {strategy}",
                                     "    fit: false": "", "  on_unreadable: refuse": "",
                                     '  image_url_prefix: "/data/local-files/?d="': ""})
    assert "fit:" not in path.read_text() and "on_unreadable" not in path.read_text()
    params = load_params(path)
    assert params.train.loss_prediction.fit is fitted
    assert params.prepare.on_unreadable == "refuse"
    assert params.select.image_url_prefix == "/data/local-files/?d="
    assert "fit:" not in path.read_text()  # the file itself is left as it was


def test_fixmatch_with_a_frozen_backbone_fails_naming_both_keys(tmp_path):
    path = write_params(tmp_path, **{"  semi_supervised: none": "  semi_supervised: fixmatch",
                                     "  freeze_backbone: false": "  freeze_backbone: true",
                                     "  init: scratch": "  init: pretrained", "  augment: true": "  augment: false",
                                     "  method: none              # none | deepcluster | simclr | weights (a local":
                                     "  method: deepcluster       # (a local"})
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert "'train.semi_supervised: fixmatch'" in message and "'train.freeze_backbone'" in message
    assert load_params(write_params(tmp_path, **{"  semi_supervised: none": "  semi_supervised: fixmatch"}))


@pytest.mark.parametrize("old, new, message", [
    ("    threshold: 0.95", "    threshold: 0", "'train.fixmatch.threshold' is 0.0; use 0 < threshold <= 1"),
    ("    mu: 3", "    mu: 0", "'train.fixmatch.mu' is 0; it must be at least 1"),
    ("    unlabeled_weight: 1.0", "    unlabeled_weight: -1", "'train.fixmatch.unlabeled_weight' is -1.0"),
])
def test_fixmatch_values_are_checked(tmp_path, old, new, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        load_params(write_params(tmp_path, **{old: new}))


def test_a_params_file_without_fixmatch_loads_with_its_defaults(tmp_path):
    text = write_params(tmp_path).read_text()
    start = text.index("  fixmatch:")
    end = text.index("\n\n", start)
    (tmp_path / "params.yaml").write_text(text[:start] + text[end + 1:])
    params = load_params(tmp_path / "params.yaml")
    assert "  fixmatch:" not in (tmp_path / "params.yaml").read_text()
    assert (params.train.fixmatch.threshold, params.train.fixmatch.unlabeled_weight,
            params.train.fixmatch.mu, params.train.fixmatch.flip) == (0.95, 1.0, 3, False)


def test_a_key_added_later_is_still_checked_when_present(tmp_path):
    with pytest.raises(ParamsError, match="'train.loss_prediction.fit' must be bool"):
        load_params(write_params(tmp_path, **{"    fit: false": "    fit: maybe"}))


def test_every_choice_list_comes_from_its_registry():
    """A typo names the valid values, read from the registry that implements them."""
    from alcycle.sources import SOURCES
    from alcycle.strategies import STRATEGIES

    params = load_params(Path(__file__).parents[1] / "params.yaml")
    bad_source = dataclasses.replace(params, prepare=dataclasses.replace(params.prepare, source="nope"))
    assert f"choose one of: {', '.join(SOURCES.names)}" in " ".join(bad_source.problems())
    bad_strategy = dataclasses.replace(params, select=dataclasses.replace(params.select, strategy="nope"))
    assert f"choose one of: {', '.join(sorted(STRATEGIES))}" in " ".join(bad_strategy.problems())
    for section, key, registry in [("train", "backbone", BACKBONES), ("train", "semi_supervised", SEMI_SUPERVISED),
                                   ("pretrain", "method", PRETRAIN), ("pretrain_vit", "method", PRETRAIN_VIT)]:
        bad = dataclasses.replace(params, **{section: dataclasses.replace(getattr(params, section), **{key: "nope"})})
        assert f"'{section}.{key}' is 'nope'; choose one of: {', '.join(registry.names)}" in bad.problems()


def test_every_registered_implementation_exists():
    """Each registry's lazy target names a real callable (a typo in "module:attribute" fails here)."""
    from alcycle.sources import SOURCES

    for registry in (BACKBONES, SEMI_SUPERVISED, PRETRAIN, PRETRAIN_VIT, SOURCES):
        for name in registry.names:
            target = registry.load(name)
            assert target is None or callable(target), (registry.kind, name)
