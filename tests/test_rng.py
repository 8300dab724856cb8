"""The training randomness policy: the integers alcycle has always used, and a global generator left alone."""

from __future__ import annotations

import torch

from alcycle import rng


def same_draws(a: torch.Generator, b: torch.Generator) -> bool:
    return torch.equal(torch.randint(0, 1 << 30, (8,), generator=a), torch.randint(0, 1 << 30, (8,), generator=b))


def test_streams_derive_the_known_integers_from_the_seed():
    seed = 7
    assert same_draws(rng.loader_generator(seed, rng.LABELED_LOADER), torch.Generator().manual_seed(7000))
    assert same_draws(rng.loader_generator(seed, rng.POOL_LOADER), torch.Generator().manual_seed(7001))
    assert same_draws(rng.augmentation_generator(seed), torch.Generator().manual_seed(7))
    assert same_draws(rng.mc_dropout_generator(seed), torch.Generator().manual_seed(7))
    assert [rng.epoch_seed(seed, e) for e in range(3)] == [7, 8, 9]


def test_seeded_draws_from_the_seed_and_restores_the_global_generator():
    torch.manual_seed(99)
    state = torch.get_rng_state()
    with rng.seeded(3):
        inside = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(3)
    assert torch.equal(inside, torch.rand(4))
