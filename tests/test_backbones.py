"""The backbone registry: lazy targets, no torch to read it, every entry keeps the protocol."""

from __future__ import annotations

import pytest
import torch

from alcycle.backbones import BACKBONES, BackboneSpec, build_backbone
from alcycle.params import ParamsError
from test_light_imports import loaded_after


def test_reading_the_registry_loads_no_heavy_library():
    assert loaded_after("from alcycle.backbones import BACKBONES, Backbone, build_backbone\nprint(BACKBONES)") == []


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_has_out_dim_taps_and_its_spec(name):
    net = build_backbone(name, 2).eval()
    assert net.spec == BackboneSpec(name, 2)  # what a checkpoint stores to rebuild it
    modules = dict(net.named_modules())
    assert all(tap in modules for tap in net.taps)
    assert net(torch.zeros(3, 2, 12, 12)).shape == (3, net.out_dim)


def test_an_unknown_backbone_is_a_params_error_naming_the_valid_ones():
    with pytest.raises(ParamsError, match="unknown backbone 'vgg'; choose one of: resnet18, small_cnn"):
        build_backbone("vgg", 1)
