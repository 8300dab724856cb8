"""VAAL and SRAAL: the OUI by hand, the networks' shapes, and picks with a known answer."""

import re

import numpy as np
import pytest
import torch
from conftest import write_params

from alcycle.params import ParamsError, VaalParams, load_params
from alcycle.strategies import STRATEGIES, SelectionContext, select
from alcycle.strategies.coreset import k_center_greedy
from alcycle.strategies.vaal import online_uncertainty, sraal, vaal
from alcycle.strategies.vaal_model import VAE, encode_pool, halvings, train_adversarial_vae

FAST = VaalParams(latent_dim=8, steps=100, batch_size=16, lr=1e-3, kl_weight=1.0, adversary_weight=1.0)
HALVES = {"top": np.s_[:6, :], "bottom": np.s_[6:, :], "left": np.s_[:, :6]}


def looks(kinds: list[str], seed: int = 0) -> np.ndarray:
    """(N, 1, 12, 12) uint8: dim noise, plus one bright half per image (top, bottom or left)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, size=(len(kinds), 1, 12, 12)).astype(np.uint8)
    for image, kind in zip(pixels, kinds):
        image[0][HALVES[kind]] += 180
    return pixels


def context(kinds: list[str], labeled: int, probs: np.ndarray | None = None, settings=FAST) -> SelectionContext:
    """The first ``labeled`` items labeled."""
    mask = np.zeros(len(kinds), dtype=bool)
    mask[:labeled] = True
    return SelectionContext(ids=np.array([f"item-{i}" for i in range(len(kinds))]), labeled=mask,
                            pixels=looks(kinds), probs=probs, settings=settings)


@pytest.mark.parametrize("probs, expected", [
    ([0.5, 0.3, 0.2], 31 / 56),  # V = 7/450, V_min(0.5) = 1/72: 1 - (25/28)·0.5
    ([0.6, 0.4, 0.0], 23 / 35),  # V = 14/225, V_min(0.6) = 8/225: 1 - (4/7)·0.6
    ([0.5, 0.25, 0.25], 0.5),    # the rest already equal: V = V_min, 1 - 0.5
    ([0.0, 1.0, 0.0, 0.0], 0.0),  # one-hot: certain
    ([0.25, 0.25, 0.25, 0.25], 0.75),  # uniform: 1 - 1/C
    ([0.9, 0.1], 0.1),  # two classes: V = V_min always, 1 - max
])
def test_oui_known_answers(probs, expected):
    assert online_uncertainty(np.array([probs]))[0] == pytest.approx(expected, abs=1e-12)


def test_oui_ranks_a_rival_class_above_a_spread_rest_and_stays_in_range():
    # Same top probability 0.6: mass on one rival class is more uncertain than mass spread thin.
    rival, spread = online_uncertainty(np.array([[0.6, 0.4, 0.0, 0.0], [0.6, 0.2, 0.1, 0.1]]))
    assert rival > spread
    scores = online_uncertainty(np.random.default_rng(0).dirichlet(np.full(5, 0.3), size=1000))
    assert scores.min() >= 0.0 and scores.max() < 1.0


def test_oui_refuses_a_single_class():
    with pytest.raises(ValueError, match="C >= 2"):
        online_uncertainty(np.ones((3, 1)))


@pytest.mark.parametrize("shape, depth", [((1, 8, 8), 1), ((1, 28, 28), 3), ((3, 64, 64), 4), ((3, 20, 9), 3)])
def test_the_vae_adapts_to_the_image_size(shape, depth):
    assert halvings(*shape[1:]) == depth
    vae = VAE(*shape, latent_dim=5)
    logits, mu, logvar = vae(torch.rand(2, *shape), torch.Generator().manual_seed(0))
    assert logits.shape == (2, *shape) and mu.shape == logvar.shape == (2, 5)


@pytest.mark.parametrize("strategy", [vaal, sraal])
def test_trains_a_few_steps_and_picks_valid_rows(strategy, tmp_path):
    rng = np.random.default_rng(0)
    full = context(["top"] * 12 + ["bottom"] * 12, labeled=6, probs=rng.dirichlet(np.ones(3), size=24),
                   settings=VaalParams(latent_dim=4, steps=5, batch_size=4, lr=1e-3, kl_weight=1.0,
                                       adversary_weight=1.0))
    pixels = np.lib.format.open_memmap(tmp_path / "pixels.npy", mode="w+", dtype=np.uint8, shape=full.pixels.shape)
    pixels[:] = full.pixels
    ctx = SelectionContext(ids=full.ids, labeled=full.labeled, probs=full.probs, settings=full.settings,
                           pixels=np.load(tmp_path / "pixels.npy", mmap_mode="r"))
    before = torch.get_rng_state()
    selection = strategy(ctx, 7, np.random.default_rng(3))
    assert torch.equal(torch.get_rng_state(), before)  # seeded from rng alone; global RNG untouched
    assert len(set(selection.rows.tolist())) == 7 and not ctx.labeled[selection.rows].any()
    assert np.isfinite(selection.scores).all() and (np.diff(selection.scores) <= 0).all()
    again = strategy(ctx, 7, np.random.default_rng(3))
    np.testing.assert_array_equal(selection.rows, again.rows)
    np.testing.assert_array_equal(selection.scores, again.scores)


@pytest.mark.slow
def test_vaal_prefers_the_items_unlike_the_labeled_pool():
    # Labeled: 40 bright-top images. Unlabeled: 20 more of those and 10 bright-bottom ones.
    ctx = context(["top"] * 60 + ["bottom"] * 10, labeled=40)
    for seed in range(2):
        selection = vaal(ctx, 10, np.random.default_rng(seed))
        assert sorted(selection.rows.tolist()) == list(range(60, 70))


@pytest.mark.slow
def test_sraal_prefers_the_items_the_classifier_is_unsure_of():
    # Labeled: bright top. Unlabeled: top and bottom the classifier is sure of (0.97),
    # and left, where it is not (uniform). Bottom and left both look new; only SRAAL's
    # OUI states tell the discriminator that bottom counts as good as labeled.
    kinds = ["top"] * 40 + ["bottom"] * 10 + ["left"] * 10
    probs = np.full((60, 4), 0.01)
    probs[:, 0] = 0.97
    probs[50:] = 0.25
    ctx = context(kinds, labeled=30, probs=probs)
    picked = sraal(ctx, 10, np.random.default_rng(0)).rows
    assert sorted(picked.tolist()) == list(range(50, 60))
    assert sorted(vaal(ctx, 10, np.random.default_rng(0)).rows.tolist()) != list(range(50, 60))


@pytest.mark.slow
def test_sraal_cold_start_is_k_center_greedy_over_the_vae_means():
    ctx = context(["top"] * 20 + ["bottom"] * 20 + ["left"] * 20, labeled=0)
    selection = sraal(ctx, 6, np.random.default_rng(5))
    # The same draws by hand: the VAE's seed, then k-center's first pick, from one rng.
    rng = np.random.default_rng(5)
    rows = np.arange(60)
    model = train_adversarial_vae(ctx.pixels, np.zeros(60, np.float32), rows[:0], rows, FAST,
                                  seed=int(rng.integers(2**31)), adversarial=False)
    means, _ = encode_pool(model, ctx.pixels)
    picks, dists = k_center_greedy(means, np.empty(0, np.int64), 6, rng)
    np.testing.assert_array_equal(selection.rows, picks)
    np.testing.assert_allclose(selection.scores[1:], dists[1:])
    assert selection.scores[0] == selection.scores[1]  # the first pick's covering radius
    # A cover of three well-separated looks reaches each of them within its first three picks.
    assert {kind for kind in np.array(["top", "bottom", "left"]).repeat(20)[picks[:3]]} == {"top", "bottom", "left"}


def test_registered_with_what_they_read():
    assert STRATEGIES["vaal"].needs == {"pixels", "settings", "compute"} and STRATEGIES["vaal"].settings == "vaal"
    assert STRATEGIES["sraal"].needs == {"pixels", "probs", "settings", "compute"} and STRATEGIES["sraal"].settings == "vaal"
    ctx = context(["top"] * 10, labeled=2)
    assert len(select(ctx, "vaal", 3, np.random.default_rng(0)).rows) == 3


@pytest.mark.parametrize("strategy, missing", [(vaal, "pixels"), (sraal, "pixels"), (sraal, "probs")])
def test_missing_input_is_named(strategy, missing):
    full = context(["top"] * 10, labeled=2, probs=np.full((10, 2), 0.5))
    ctx = SelectionContext(ids=full.ids, labeled=full.labeled, settings=FAST,
                           pixels=None if missing == "pixels" else full.pixels,
                           probs=None if missing == "probs" else full.probs)
    with pytest.raises(ValueError, match=f"'{strategy.__name__}' needs {missing}"):
        strategy(ctx, 2, np.random.default_rng(0))


def test_float_pixels_are_refused():
    full = context(["top"] * 10, labeled=2)
    ctx = SelectionContext(ids=full.ids, labeled=full.labeled, settings=FAST, pixels=full.pixels / 255.0)
    with pytest.raises(ValueError, match="uint8"):
        vaal(ctx, 2, np.random.default_rng(0))


@pytest.mark.parametrize("old, new, message", [
    ("    lr: 0.0005", "    lr: 0", "'select.vaal.lr' is 0.0; it must be positive"),
    ("    kl_weight: 1.0", "    kl_weight: -1", "'select.vaal.kl_weight' is -1.0; it must be at least 0"),
    ("    adversary_weight: 1.0", "    adversary_weight: -0.5",
     "'select.vaal.adversary_weight' is -0.5; it must be at least 0"),
])
def test_bad_settings_fail_at_load_time(tmp_path, old, new, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        load_params(write_params(tmp_path, **{old: new}))
