"""Known answers for the uncertainty scores and rankings."""

import numpy as np

from alcycle.strategies import SelectionContext, select
from alcycle.strategies.uncertainty import entropy_scores, least_confidence_scores, margin_scores

PROBS = np.array(
    [
        [1.0, 0.0, 0.0],  # certain
        [0.5, 0.5, 0.0],  # two-way tie
        [1 / 3, 1 / 3, 1 / 3],  # uniform
        [0.7, 0.2, 0.1],
    ]
)


def test_entropy_known_answers():
    expected = [0.0, np.log(2), np.log(3), -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))]
    np.testing.assert_allclose(entropy_scores(PROBS), expected, atol=1e-9)


def test_margin_known_answers():
    np.testing.assert_allclose(margin_scores(PROBS), [-1.0, 0.0, 0.0, -0.5], atol=1e-12)


def test_least_confidence_known_answers():
    np.testing.assert_allclose(least_confidence_scores(PROBS), [0.0, 0.5, 2 / 3, 0.3], atol=1e-12)


def test_rankings_follow_the_scores_and_skip_labeled_items():
    context = SelectionContext(ids=np.array(list("abcd")), labeled=np.array([False, False, True, False]),
                               probs=PROBS)
    rng = np.random.default_rng(0)
    # uniform row c is the most uncertain but already labeled; H(d) = 0.80 > H(b) = ln 2
    assert select(context, "entropy", 2, rng).rows.tolist() == [3, 1]
    # margin: rows b (gap 0) then d (gap 0.5)
    assert select(context, "margin", 2, rng).rows.tolist() == [1, 3]
    assert select(context, "least_confidence", 3, rng).rows.tolist() == [1, 3, 0]


def test_ties_go_to_the_lower_row():
    probs = np.tile([0.5, 0.5], (5, 1))
    context = SelectionContext(ids=np.array(list("abcde")), labeled=np.zeros(5, bool), probs=probs)
    assert select(context, "entropy", 3, np.random.default_rng(0)).rows.tolist() == [0, 1, 2]


def test_bald_in_blocks_equals_one_block(monkeypatch):
    """Mutual information is computed block by block (O(N) memory); blocks change nothing."""
    from alcycle.strategies import bald

    rng = np.random.default_rng(0)
    mc = rng.dirichlet(np.ones(4), size=(50, 6)).astype(np.float32)
    whole = bald.mutual_information(mc)
    monkeypatch.setattr(bald, "CHUNK", 7)
    np.testing.assert_array_equal(bald.mutual_information(mc), whole)
    assert whole.shape == (50,) and (whole >= 0).all()
