"""The GAN of pretrain-gan and ASAL as a strategy: shapes, the losses' known answers, training
that learns a known image, the stored GAN read back, and ASAL's picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from alcycle import faiss_ops
from alcycle.gan import Discriminator, GanShape, Generator, TrainedGan, gradient_penalty, load_gan, train_gan
from alcycle.checkpoints import atomic_torch_save
from alcycle.params import AsalParams, ParamsError
from alcycle.strategies import SelectionContext, select
from alcycle.strategies.asal import asal, entropy


@pytest.mark.parametrize("size", [8, 28, 30])
def test_both_networks_fit_the_image_size(size):
    shape = GanShape("dcgan", latent_dim=5, width=4, channels=3, size=size)
    images = Generator(shape)(torch.randn(6, 5))
    assert images.shape == (6, 3, size, size)
    assert images.abs().max() <= 1.0  # tanh: the classifier's input range
    discriminator = Discriminator(shape)
    assert discriminator(images).shape == (6,)
    assert discriminator.features(images).shape == (6, 8 * 4)


def test_the_critic_has_no_batch_norm_and_the_discriminator_has():
    def norms(method: str) -> int:
        shape = GanShape(method, 4, 4, 1, 8)
        return sum(isinstance(m, nn.BatchNorm2d) for m in Discriminator(shape).modules())
    assert norms("dcgan") == 1 and norms("wgan_gp") == 0


def test_gradient_penalty_of_a_linear_critic_by_hand():
    # f(x) = w·x has gradient w everywhere: the penalty is (|w| - 1)^2 whatever the mix.
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, torch.rand(5))
    assert penalty.item() == pytest.approx((5.0 - 1.0) ** 2)


def stripes(n: int = 64) -> np.ndarray:
    """n copies of one 8 x 8 image: white top half, black bottom half."""
    image = np.zeros((1, 8, 8), dtype=np.uint8)
    image[:, :4] = 255
    return np.repeat(image[None], n, axis=0)


@pytest.mark.parametrize("method, steps, lr", [("dcgan", 150, 2e-3), ("wgan_gp", 300, 3e-3)])
def test_training_learns_the_one_image_it_is_shown(method, steps, lr):
    pixels = stripes()
    target = torch.from_numpy(pixels[0]).float() / 127.5 - 1

    def error(generator: nn.Module) -> float:
        with torch.no_grad():
            return (generator.eval()(torch.randn(32, 8, generator=torch.Generator().manual_seed(1))) - target
                    ).abs().mean().item()
    torch.manual_seed(0)
    untrained = error(Generator(GanShape(method, 8, 8, 1, 8)))
    gan = train_gan(pixels, method, latent_dim=8, width=8, steps=steps, batch_size=16, lr=lr,
                    features="discriminator", pca_dim=4, seed=0, progress=10**6)
    assert untrained > 0.5
    assert error(gan.generator) < 0.25 * untrained


def test_pca_features_are_fausss_projection_of_the_pixels():
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    gan = train_gan(pixels, "dcgan", 4, 4, steps=2, batch_size=8, lr=1e-3, features="pca", pca_dim=6, seed=0,
                    progress=10**6)
    flat = pixels.reshape(40, -1).astype(np.float32) / 127.5 - 1
    a, b = faiss_ops.pca_matrix(flat, 6)
    np.testing.assert_allclose(gan.pool_features(pixels, batch_size=7), flat @ a.T + b, atol=1e-4)


def test_a_stored_gan_reads_back_the_same(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 1, 8, 8), dtype=np.uint8)
    gan = train_gan(pixels, "wgan_gp", 4, 4, steps=5, batch_size=8, lr=1e-3, features="pca", pca_dim=3, seed=0,
                    progress=10**6)
    atomic_torch_save(tmp_path / "gan.pt", gan.payload())
    again = load_gan(tmp_path / "gan.pt")
    z = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(again.generator(z), gan.generator(z))
    np.testing.assert_array_equal(again.pool_features(pixels), gan.pool_features(pixels))
    assert again.shape == gan.shape


def test_no_gan_is_a_clear_error(tmp_path):
    atomic_torch_save(tmp_path / "gan.pt", {"method": "none", "note": "no GAN"})
    with pytest.raises(ParamsError, match="gan.method is none"):
        load_gan(tmp_path / "gan.pt")
    with pytest.raises(FileNotFoundError, match="pretrain-gan"):
        load_gan(tmp_path / "missing.pt")


class Linear(nn.Module):
    """A classifier of 8 x 8 images whose logits are a fixed linear map (backbone = flatten)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.backbone = nn.Flatten()
        self.head = nn.Linear(64, classes)


def asal_context(labeled: np.ndarray, settings: AsalParams) -> SelectionContext:
    torch.manual_seed(0)
    shape = GanShape("dcgan", latent_dim=6, width=4, channels=1, size=8)
    gan = TrainedGan(shape, Generator(shape).eval(), Discriminator(shape).eval(), "discriminator")
    pixels = np.random.default_rng(0).integers(0, 256, size=(len(labeled), 1, 8, 8), dtype=np.uint8)
    return SelectionContext(ids=np.arange(len(labeled)).astype(str), labeled=labeled, model=Linear(),
                            gan=gan, gan_features=gan.pool_features(pixels), settings=settings)


def test_asal_queries_the_nearest_unlabeled_items_of_its_most_uncertain_samples():
    labeled = np.zeros(50, dtype=bool)
    labeled[::3] = True
    context = asal_context(labeled, AsalParams(candidates=4, steps=10, lr=0.05))
    selection = select(context, "asal", 5, np.random.default_rng(3))
    assert not context.labeled[selection.rows].any()
    assert np.all(np.diff(selection.scores) <= 0)  # most uncertain first
    # The same search by hand: the 5 most uncertain of the 20 searched samples, matched by brute force.
    from alcycle.strategies.asal import uncertain_latents

    classifier = nn.Sequential(context.model.backbone, context.model.head)
    draws = torch.Generator().manual_seed(int(np.random.default_rng(3).integers(2**63)))
    z = uncertain_latents(context.gan.generator, classifier, torch.randn(20, 6, generator=draws), 10, 0.05)
    with torch.no_grad():
        images = context.gan.generator(z)
        h = entropy(classifier(images)).double().numpy()
    best = np.argsort(-h, kind="stable")[:5]
    np.testing.assert_allclose(selection.scores, h[best])
    features = context.gan.features(images[torch.from_numpy(best)])
    free = list(np.flatnonzero(~labeled))
    for sample, row in zip(features, selection.rows):
        distances = ((context.gan_features[free] - sample) ** 2).sum(axis=1)
        assert row == free[int(np.argmin(distances))]
        free.remove(row)


def test_the_search_makes_asal_pick_by_more_uncertain_samples():
    labeled = np.zeros(40, dtype=bool)
    unsearched = asal(asal_context(labeled, AsalParams(candidates=1, steps=0, lr=0.05)), 6, np.random.default_rng(0))
    searched = asal(asal_context(labeled, AsalParams(candidates=1, steps=30, lr=0.05)), 6, np.random.default_rng(0))
    assert searched.scores.mean() > unsearched.scores.mean()
