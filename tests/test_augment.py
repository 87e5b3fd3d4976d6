"""Second-view batch augmentations."""

import pytest
import torch

from r2kd_hf.augment import CutMix, CutMixPick, Cutout, MixUp, build_second_view


def batch(n=6, size=16):
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()


def test_mixup_is_a_convex_pair_mix():
    torch.manual_seed(0)
    x = batch()
    mixed = MixUp(alpha=0.2)(x)
    # each image stays constant and lies between the smallest and largest original value
    assert torch.allclose(mixed, mixed[:, :, :1, :1].expand_as(mixed))
    assert mixed.min() >= 0 and mixed.max() <= 5


def test_cutmix_pastes_one_box_from_other_images():
    torch.manual_seed(1)
    x = batch()
    mixed = CutMix(alpha=1.0)(x)
    changed = (mixed != x).any(1)  # (B, H, W)
    assert changed.any()
    rows, cols = changed.any(0).nonzero(as_tuple=True)
    box = changed.any(0)[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box.all()  # one rectangle, same for every image


def test_cutout_reference_places_one_hole_for_the_whole_batch():
    torch.manual_seed(2)
    x = batch() + 1.0
    holes = (Cutout(size=4)(x) == 0).all(1)  # (B, H, W)
    assert holes.any()
    assert (holes == holes[:1]).all()  # same position in every image
    assert int(holes[0].sum()) <= 16


def test_cutout_per_image_option_draws_positions_per_image():
    torch.manual_seed(2)
    x = batch(16) + 1.0
    holes = (Cutout(size=4, per_image=True)(x) == 0).all(1)
    zeros = holes.flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 16).all()
    assert not (holes == holes[:1]).all()  # 16 images, 256 positions: at least two differ


def test_autoaugment_policy_follows_the_image_size_like_the_reference():
    view = build_second_view("autoaugment")
    assert view.policy_for(32) == "cifar10" and view.policy_for(64) == "imagenet"
    assert build_second_view("autoaugment", policy="svhn").policy_for(32) == "svhn"
    with pytest.raises(ValueError, match="valid: auto, imagenet"):
        build_second_view("autoaugment", policy="coco")


def test_policy_views_keep_shape_and_range():
    torch.manual_seed(3)
    x = torch.randn(4, 3, 16, 16).clamp(-2, 2)
    for name in ("autoaugment", "randaugment"):
        out = build_second_view(name, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert out.min() >= -1.0 - 1e-5 and out.max() <= 1.0 + 1e-5  # de-normalised to [0,1], re-normalised


def test_cutmixpick_keeps_highest_entropy_on_clean_logits():
    torch.manual_seed(4)
    x = batch(4)
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0], [5.0, 0.0], [1.0, 0.0]])  # entropy: row 1 > row 3 > row 2 > row 0
    torch.manual_seed(4)
    mixed = CutMix()(x)  # the same draws CutMixPick makes first
    torch.manual_seed(4)
    out = CutMixPick(n_pick=2)(x, teacher_logits=logits)
    assert torch.equal(out, mixed[torch.tensor([1, 3])])  # the two highest-entropy rows, in that order
    with pytest.raises(ValueError, match="needs the teacher"):
        CutMixPick()(x)


def test_unknown_view_and_bad_options():
    assert build_second_view("none") is None
    with pytest.raises(ValueError, match="Valid choices: none, mixup, cutmix"):
        build_second_view("mosaic")
    with pytest.raises(ValueError, match="Valid options: \\['alpha'\\]"):
        build_second_view("mixup", beta=3)
