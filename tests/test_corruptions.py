"""Common corruptions: determinism, each corruption within its definition, monotone severities, caching, reports."""

import colorsys
import math

import numpy as np
import pytest
import torch

from r2kd_hf import corruptions as R


def images(n=8, size=32, seed=0, grain=4):
    """Textured RGB images with a mid-range mean (little clipping); ``grain`` pixels per random cell."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size // grain, size // grain, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return (40 + smooth * 170).to(torch.uint8)


@pytest.mark.parametrize("name", R.CORRUPTIONS)
def test_deterministic_per_seed_and_changes_the_image(name):
    x = images()
    a, b = R.corrupt(x, name, 3, seed=7), R.corrupt(x, name, 3, seed=7)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b)
    assert (a.int() - x.int()).abs().float().mean() > 0.5  # the image changed


# The benchmark's own constants are not monotone in pixel distortion for these three (glass blur: blur sigma and
# iterations alternate; frost: the image's weight falls while the frost's rises; elastic: the affine warp shrinks as
# the elastic field grows): they are checked against their definitions below instead.
NOT_PIXEL_MONOTONE = ("glass_blur", "frost", "elastic_transform")


@pytest.mark.parametrize("name", [n for n in R.CORRUPTIONS if n not in NOT_PIXEL_MONOTONE])
def test_severity_is_monotone_in_distortion(name):
    x = images(16, grain=1)  # per-pixel texture: every corruption, pixelation included, removes more of it as severity grows
    distortion = [float((R.corrupt(x, name, s, seed=1).float() - x.float()).abs().mean()) for s in R.SEVERITIES]
    assert all(b >= a for a, b in zip(distortion, distortion[1:])), distortion


def test_noise_matches_its_definition():
    grey = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    x = grey.float() / 255
    c = R.CONSTANTS["cifar"]["gaussian_noise"][0]
    residual = R.corrupt(grey, "gaussian_noise", 1, seed=3).float() / 255 - x
    assert residual.std().item() == pytest.approx(c, rel=0.05)
    c = R.CONSTANTS["cifar"]["shot_noise"][0]  # Poisson(x c) / c has variance x / c
    residual = R.corrupt(grey, "shot_noise", 1, seed=3).float() / 255 - x
    assert residual.std().item() == pytest.approx(math.sqrt(x[0, 0, 0, 0].item() / c), rel=0.05)
    c = R.CONSTANTS["cifar"]["impulse_noise"][4]
    out = R.corrupt(grey, "impulse_noise", 5, seed=3)
    hit = out != grey
    assert hit.float().mean().item() == pytest.approx(c / 1.0, rel=0.15)  # fraction of values hit (some already 0/255: none here)
    assert set(out[hit].unique().tolist()) <= {0, 255}


def test_contrast_and_brightness_match_their_definitions():
    x = images(2)
    c = R.CONSTANTS["cifar"]["contrast"][2]
    f = x.float() / 255
    means = f.mean(dim=(2, 3), keepdim=True)
    expected = (((f - means) * c + means).clamp(0, 1) * 255).to(torch.uint8)
    assert torch.equal(R.corrupt(x, "contrast", 3), expected)
    c = R.CONSTANTS["cifar"]["brightness"][4]
    out = R.corrupt(x, "brightness", 5)
    for i, j in [(0, 0), (5, 17), (31, 31), (12, 3)]:  # HSV reference from the standard library
        rgb = (x[0, :, i, j].float() / 255).tolist()
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        ref = colorsys.hsv_to_rgb(h, s, min(v + c, 1.0))
        assert np.allclose(out[0, :, i, j].numpy(), np.clip(np.array(ref) * 255, 0, 255).astype(np.uint8), atol=1)


def test_zoom_blur_matches_a_scipy_reference():
    from scipy.ndimage import zoom as scipy_zoom

    x = images(1)
    f = (x[0].permute(1, 2, 0).numpy() / 255.0).astype(np.float32)
    start, stop, step = R.CONSTANTS["cifar"]["zoom_blur"][1]
    out = np.zeros_like(f)
    for z in np.arange(start, stop, step):  # the benchmark's clipped zoom, order-1 spline
        h = f.shape[0]
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        zoomed = scipy_zoom(f[top:top + ch, top:top + ch], (z, z, 1), order=1)
        trim = (zoomed.shape[0] - h) // 2
        out += zoomed[trim:trim + h, trim:trim + h]
    reference = np.clip((f + out) / (len(np.arange(start, stop, step)) + 1), 0, 1) * 255
    ours = R.corrupt(x, "zoom_blur", 2)[0].permute(1, 2, 0).numpy().astype(np.float32)
    assert np.abs(ours - reference.astype(np.uint8)).max() <= 2


def test_defocus_kernel_is_a_normalised_disk_and_keeps_flat_images_flat():
    kernel = R.disk_kernel(*R.CONSTANTS["imagenet"]["defocus_blur"][2])
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-5) and kernel.shape == (17, 17)
    flat = torch.full((1, 3, 32, 32), 90, dtype=torch.uint8)
    assert (R.corrupt(flat, "defocus_blur", 5).int() - 90).abs().max() <= 1


def test_constants_follow_the_image_size():
    assert R.benchmark_for(32) == "cifar" and R.benchmark_for(64) == "tinyimagenet" and R.benchmark_for(224) == "imagenet"
    assert set(R.CONSTANTS["cifar"]) == set(R.CORRUPTIONS) == set(R.CONSTANTS["imagenet"])
    with pytest.raises(ValueError, match="Unknown corruption"):
        R.check_names(["snowstorm"], [1])
    with pytest.raises(ValueError, match="Severities must be among 1-5"):
        R.check_names(["fog"], [6])


def test_corrupted_sets_are_cached_and_reports_add_up(tmp_path):
    x, labels = images(12), torch.arange(12) % 3
    first = R.corrupted_set(x, "fog", 2, seed=5, cache_dir=str(tmp_path))
    cached = list(tmp_path.rglob("fog-2.npy"))
    assert len(cached) == 1
    assert torch.equal(R.corrupted_set(x, "fog", 2, seed=5, cache_dir=str(tmp_path)), first)

    class Mean(torch.nn.Module):  # predicts the brightest channel: accuracy changes under corruption
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.eye(3))

        def forward(self, pixel_values):
            return pixel_values.mean((2, 3)) @ self.w

    report = R.evaluate_corruptions(Mean(), x, labels, (0.5,) * 3, (0.5,) * 3, ["contrast", "fog"], [1, 5], cache_dir=str(tmp_path))
    assert set(report["per_corruption"]) == {"contrast", "fog"} and set(report["per_severity"]) == {1, 5}
    means = [v["mean"] for v in report["per_corruption"].values()]
    assert report["mca"] == pytest.approx(sum(means) / 2)
    same = R.corruption_errors(report, report)
    assert same["mce"] == pytest.approx(1.0)
    assert "| contrast | digital |" in R.robustness_markdown(report)


def test_glass_blur_is_a_local_shuffle_between_two_blurs():
    x = images(4)
    sigma, delta, iterations = R.CONSTANTS["cifar"]["glass_blur"][0]  # sigma 0.05: the blurs are (almost) the identity
    out = R.corrupt(x, "glass_blur", 1, seed=2)
    assert not torch.equal(out, x)
    # a permutation of each image's pixels: the same sorted values per channel, to the uint8 rounding of the two blurs
    ours, theirs = out.flatten(2).sort(-1).values.float(), x.flatten(2).sort(-1).values.float()
    assert (ours - theirs).abs().mean() < 1.5
    # more iterations and a wider neighbourhood move more (severity 5 = sigma 0.4, two passes)
    assert (R.corrupt(x, "glass_blur", 5, seed=2).float() - x.float()).abs().mean() > (out.float() - x.float()).abs().mean()


def test_motion_and_snow_match_their_definitions():
    flat = torch.full((3, 3, 32, 32), 90, dtype=torch.uint8)
    assert torch.equal(R.corrupt(flat, "motion_blur", 5, seed=1), flat)  # a normalised line kernel, edges replicated
    x = images(6)
    tv = lambda y: (y.float().diff(dim=-1).abs().mean() + y.float().diff(dim=-2).abs().mean())  # noqa: E731
    assert tv(R.corrupt(x, "motion_blur", 3, seed=1)) < tv(x)  # it smooths
    for severity in R.SEVERITIES:  # snow only brightens: flakes are added, the image is lifted towards white
        assert (R.corrupt(x, "snow", severity, seed=1).int() - x.int()).min() >= -1


def test_frost_and_elastic_match_their_definitions():
    black = torch.zeros((8, 3, 32, 32), dtype=torch.uint8)
    textures = R.frost_textures(32 * 3)
    assert textures.min() >= 0 and textures.max() <= 1 and torch.equal(textures, R.frost_textures(32 * 3))  # deterministic
    means = [float(R.corrupt(black, "frost", s, seed=1).float().mean()) for s in R.SEVERITIES]
    weights = [b for _, b in R.CONSTANTS["cifar"]["frost"]]
    assert all((m2 >= m1) == (w2 >= w1) for (m1, w1), (m2, w2) in zip(zip(means, weights), zip(means[1:], weights[1:])))
    flat = torch.full((2, 3, 32, 32), 150, dtype=torch.uint8)
    for severity in R.SEVERITIES:  # warps move pixels, they do not change a constant image
        assert (R.corrupt(flat, "elastic_transform", severity, seed=3).int() - 150).abs().max() <= 1
    x = images(4)
    assert (R.corrupt(x, "elastic_transform", 2, seed=3).float() - x.float()).abs().mean() > 1


def test_reports_keep_the_ten_corruption_figure_beside_the_fifteen():
    class Mean(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3)), -x.mean((1, 2, 3))], 1)

    x, y = images(8), torch.tensor([0, 1] * 4)
    report = R.evaluate_corruptions(Mean(), x, y, (0.5,) * 3, (0.5,) * 3, ["all"], [1])
    assert len(report["per_corruption"]) == 15 and set(R.FIRST_TEN) < set(report["per_corruption"])
    assert report["mca_10"] == pytest.approx(np.mean([report["per_corruption"][n]["mean"] for n in R.FIRST_TEN]))
    assert report["mca"] == pytest.approx(np.mean([v["mean"] for v in report["per_corruption"].values()]))
