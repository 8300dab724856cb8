"""ASAL's latent search and matching on tiny inputs with known answers."""

import numpy as np
import torch

from alcycle.strategies.asal import entropy, match, uncertain_latents


def test_the_latent_search_raises_the_classifiers_entropy_and_leaves_the_networks_alone():
    torch.manual_seed(0)
    generator = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
    classifier = torch.nn.Sequential(torch.nn.Linear(8, 3))
    with torch.no_grad():
        classifier[0].weight.mul_(20)  # confident on most samples: far from the largest entropy
    before = [p.detach().clone() for p in (*generator.parameters(), *classifier.parameters())]
    z = torch.randn(32, 4)
    start = entropy(classifier(generator(z))).mean().item()
    moved = uncertain_latents(generator, classifier, z, steps=60, lr=0.05)
    end = entropy(classifier(generator(moved))).mean().item()
    assert start < 0.5 * np.log(3) and end > start + 0.3 and end <= np.log(3) + 1e-6
    torch.testing.assert_close(moved.norm(dim=1), torch.full((32,), 2.0))  # on the sphere of radius √4
    after = [p.detach() for p in (*generator.parameters(), *classifier.parameters())]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(p.requires_grad for p in generator.parameters())


def test_matching_returns_the_nearest_unlabeled_items_against_brute_force():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 5)).astype(np.float32)
    unlabeled = np.sort(rng.choice(200, 120, replace=False))  # the rest: labeled or test items
    generated = rng.normal(size=(10, 5)).astype(np.float32)
    picks = match(generated, features, unlabeled)
    assert set(picks) <= set(unlabeled) and len(set(picks)) == 10
    free = list(unlabeled)
    for g, pick in zip(generated, picks):  # brute force, in order, each taking the nearest still free
        distances = ((features[free] - g) ** 2).sum(axis=1)
        assert pick == free[int(np.argmin(distances))]
        free.remove(pick)


def test_samples_that_crowd_one_item_take_the_next_nearest_free_ones():
    features = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]], dtype=np.float32)
    generated = np.zeros((4, 1), dtype=np.float32)  # all nearest to row 0
    unlabeled = np.array([0, 2, 3, 4])  # row 1 is labeled
    assert match(generated, features, unlabeled, neighbours=2).tolist() == [0, 2, 3, 4]
    assert match(generated[:2], features, unlabeled[1:]).tolist() == [2, 3]
