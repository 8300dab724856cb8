"""views: SimCLR's random views keep shape and dtype, replay for a seed and suit gray and RGB images."""

from __future__ import annotations

import pytest
import torch

from alcycle.views import ViewSettings, crop_box, distort_colour, random_views

ALL_ON = ViewSettings(min_scale=0.3, jitter=0.5, blur=True, flip=True)


def images(channels: int, n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_keep_shape_and_dtype_and_differ_from_the_image(channels):
    batch = images(channels)
    views = random_views(batch, ALL_ON, torch.Generator().manual_seed(0))
    assert views.shape == batch.shape and views.dtype == torch.uint8
    assert not torch.equal(views, batch)


def test_one_seed_replays_the_same_views_and_another_does_not():
    batch = images(3)
    first = random_views(batch, ALL_ON, torch.Generator().manual_seed(4))
    again = random_views(batch, ALL_ON, torch.Generator().manual_seed(4))
    other = random_views(batch, ALL_ON, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_views_leave_torchs_global_generator_alone():
    state = torch.get_rng_state()
    random_views(images(3), ALL_ON, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_crop_boxes_stay_inside_the_image_and_span_the_scales():
    generator = torch.Generator().manual_seed(0)
    shares = []
    for _ in range(300):
        top, left, h, w = crop_box(28, 20, 0.3, generator)
        assert top >= 0 and top + h <= 28 and left >= 0 and left + w <= 20
        shares.append(h * w / (28 * 20))
    assert min(shares) < 0.4 and max(shares) > 0.9  # drawn from 0.3..1 of the area


def test_full_scale_keeps_one_side_whole():
    """min_scale 1 on a square image: the box spans the image along one side (the ratio clips the other)."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        top, left, h, w = crop_box(16, 16, 1.0, generator)
        assert max(h, w) == 16 and min(h, w) >= 13  # 16 / sqrt(4/3) = 13.9


def test_gray_images_change_brightness_and_contrast_only():
    """One channel: no saturation or hue (torchvision refuses them on gray), and a black image stays black
    under brightness and contrast."""
    black = torch.zeros((1, 8, 8), dtype=torch.uint8)
    assert torch.equal(distort_colour(black, 1.0, torch.Generator().manual_seed(0)), black)
    gray = images(1, n=1)[0]
    assert distort_colour(gray, 1.0, torch.Generator().manual_seed(0)).shape == gray.shape
