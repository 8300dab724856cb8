"""The Learning Loss module: ranking loss by hand, taps on the real backbones."""

import pytest
import torch

from alcycle.loss_prediction import FeatureTaps, LossPredictor, ranking_loss
from alcycle.backbones import build_backbone


def test_ranking_loss_on_a_hand_computed_pair():
    # l_1 = 2 > l_2 = 1, so the module should say l̂_1 > l̂_2 by the margin ξ = 1.
    # It says l̂_1 − l̂_2 = 0.2 − 0.5 = −0.3: loss = max(0, −(+1)(−0.3) + 1) = 1.3.
    loss = ranking_loss(torch.tensor([0.2, 0.5]), torch.tensor([2.0, 1.0]), margin=1.0)
    assert loss.item() == pytest.approx(1.3)


def test_ranking_loss_is_zero_once_the_order_clears_the_margin():
    assert ranking_loss(torch.tensor([3.0, 1.5]), torch.tensor([2.0, 1.0]), margin=1.0).item() == 0.0
    # reversed truth: sign −1, loss = max(0, (3 − 1.5) + 1) = 2.5
    assert ranking_loss(torch.tensor([3.0, 1.5]), torch.tensor([1.0, 2.0]), margin=1.0).item() == pytest.approx(2.5)


def test_ranking_loss_pairs_first_with_last_and_averages():
    predicted = torch.tensor([0.0, 1.0, 5.0, 2.0])  # pairs (0, 3) and (1, 2)
    target = torch.tensor([4.0, 0.0, 1.0, 3.0])
    # pair (0, 3): l 4 > 3, sign +1, gap 0 − 2 = −2 -> 1 + 2 = 3
    # pair (1, 2): l 0 < 1, sign −1, gap 1 − 5 = −4 -> max(0, −4 + 1) = 0
    assert ranking_loss(predicted, target, margin=1.0).item() == pytest.approx(1.5)


def test_ranking_loss_gives_no_gradient_to_the_true_losses():
    target = torch.tensor([2.0, 1.0], requires_grad=True)
    predicted = torch.tensor([0.2, 0.5], requires_grad=True)
    ranking_loss(predicted, target, 1.0).backward()
    assert target.grad is None
    # loss = 1 − (l̂_1 − l̂_2) on the one pair: push l̂_1 up and l̂_2 down
    assert predicted.grad.tolist() == pytest.approx([-1.0, 1.0])


def test_single_item_batch_has_zero_loss():
    assert ranking_loss(torch.tensor([0.3]), torch.tensor([1.0]), 1.0).item() == 0.0


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_taps_feed_the_predictor_on_the_real_backbones(name):
    net = build_backbone(name, 1).eval()
    taps = FeatureTaps(net)
    net(torch.zeros(3, 1, 16, 16))
    maps = taps.latest()
    assert [m.shape[1] for m in maps] == list(net.taps.values())
    assert LossPredictor(list(net.taps.values()))(maps).shape == (3,)
    net(torch.zeros(5, 1, 16, 16))
    assert all(m.shape[0] == 5 for m in taps.latest())  # each pass replaces the last
