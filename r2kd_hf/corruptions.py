"""Common-corruption robustness (Hendrycks & Dietterich, ICLR 2019), batch-wise in torch, for any classifier.

Ten of the fifteen benchmark corruptions, covering the four families:

* noise: ``gaussian_noise``, ``shot_noise``, ``impulse_noise``;
* blur: ``defocus_blur``, ``zoom_blur``;
* weather: ``fog``, ``brightness``;
* digital: ``contrast``, ``pixelate``, ``jpeg_compression``.

(Not implemented: glass and motion blur, snow, frost, elastic transform.) Each follows the definition of the
authors' generation scripts, with the severity constants of the right benchmark for the image size: CIFAR-10-C
(``make_cifar_c.py``) up to 48 px, Tiny-ImageNet-C (``make_tinyimagenet_c.py``) up to 128 px, ImageNet-C
(``make_imagenet_c.py``) above. Images are corrupted at the model's input resolution, as uint8 like the
distributed sets, deterministically for a seed, and cached on disk: a corrupted evaluation set is built once and
reused by every model evaluated on it. ``tests/test_peer_parity.py`` checks them against ``imagecorruptions-imaug``
(to one grey level where deterministic, in distribution where random).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .introspection import logits_of

FAMILIES = {
    "gaussian_noise": "noise", "shot_noise": "noise", "impulse_noise": "noise",
    "defocus_blur": "blur", "zoom_blur": "blur",
    "fog": "weather", "brightness": "weather",
    "contrast": "digital", "pixelate": "digital", "jpeg_compression": "digital",
}
CORRUPTIONS = tuple(FAMILIES)
SEVERITIES = (1, 2, 3, 4, 5)
CACHE_VERSION = 1

# Severity constants, per benchmark, from the authors' generation scripts.
CONSTANTS: dict[str, dict[str, list]] = {
    "cifar": {
        "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
        "shot_noise": [500, 250, 100, 75, 50],
        "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
        "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "zoom_blur": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)],
        "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
        "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
        "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
        "jpeg_compression": [80, 65, 58, 50, 40],
    },
    "tinyimagenet": {
        "gaussian_noise": [0.04, 0.08, 0.12, 0.15, 0.18],
        "shot_noise": [250, 100, 50, 30, 15],
        "impulse_noise": [0.01, 0.02, 0.05, 0.08, 0.14],
        "defocus_blur": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
        "zoom_blur": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)],
        "fog": [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
        "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
        "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
        "pixelate": [0.9, 0.8, 0.7, 0.6, 0.5],
        "jpeg_compression": [65, 58, 50, 40, 25],
    },
    "imagenet": {
        "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
        "shot_noise": [60, 25, 12, 5, 3],
        "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
        "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        "zoom_blur": [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)],
        "fog": [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
        "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
        "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
        "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
        "jpeg_compression": [25, 18, 15, 10, 7],
    },
}


def benchmark_for(size: int) -> str:
    """The benchmark whose constants fit ``size``-pixel images."""
    return "cifar" if size <= 48 else "tinyimagenet" if size <= 128 else "imagenet"


def check_names(corruptions, severities) -> tuple[list[str], list[int]]:
    names = list(CORRUPTIONS) if not corruptions or list(corruptions) == ["all"] else list(corruptions)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        from .messages import invalid_choice

        raise ValueError(invalid_choice("corruption", unknown[0], ["all", *CORRUPTIONS]))
    levels = list(severities or SEVERITIES)
    if any(s not in SEVERITIES for s in levels):
        raise ValueError(f"Severities must be among 1-5, got {levels}.")
    return names, levels


# ------------------------------------------------------------------------------------------------ corruptions
# Every function maps a float batch in [0, 1], (B, 3, H, W), to a float batch in [0, 1].
def gaussian_noise(x, c, g):
    return (x + torch.randn(x.shape, generator=g, device=x.device) * c).clamp(0, 1)


def shot_noise(x, c, g):
    return (torch.poisson(x * c, generator=g) / c).clamp(0, 1)


def impulse_noise(x, c, g):
    """Salt and pepper on a fraction ``c`` of the values (each channel separately, half salt, half pepper)."""
    hit = torch.rand(x.shape, generator=g, device=x.device) < c
    salt = (torch.rand(x.shape, generator=g, device=x.device) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def _gaussian_kernel_1d(size: int, sigma: float) -> torch.Tensor:
    # OpenCV's getGaussianKernel for the given sigma
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The benchmark's anti-aliased disk: a normalised disk on a 17x17 (or larger) grid, Gaussian-smoothed."""
    half = 8 if radius <= 8 else int(radius)
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).to(torch.float64)
    disk /= disk.sum()
    ksize = 3 if radius <= 8 else 5
    k1 = _gaussian_kernel_1d(ksize, alias_blur)
    padded = F.pad(disk[None, None], (ksize // 2,) * 4, mode="reflect")
    smooth = F.conv2d(F.conv2d(padded, k1.view(1, 1, 1, -1)), k1.view(1, 1, -1, 1))
    return smooth[0, 0].float()


def defocus_blur(x, c, g):
    kernel = disk_kernel(*c).to(x.device, x.dtype)
    pad = kernel.shape[-1] // 2
    mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
    weight = kernel.expand(x.shape[1], 1, *kernel.shape)
    return F.conv2d(F.pad(x, (pad,) * 4, mode=mode), weight, groups=x.shape[1]).clamp(0, 1)


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """Zoom into the centre by ``zoom`` and keep the original size (bilinear, corner-aligned as scipy's zoom)."""
    h = x.shape[-1]
    ch = int(math.ceil(h / zoom))
    top = (h - ch) // 2
    crop = x[..., top : top + ch, top : top + ch]
    out = round(ch * zoom)
    zoomed = F.interpolate(crop, size=(out, out), mode="bilinear", align_corners=True)
    trim = (out - h) // 2
    return zoomed[..., trim : trim + h, trim : trim + h]


def zoom_blur(x, c, g):
    start, stop, step = c
    factors = np.arange(start, stop, step)
    out = torch.zeros_like(x)
    for zoom in factors:
        out += _clipped_zoom(x, float(zoom))
    return ((x + out) / (len(factors) + 1)).clamp(0, 1)


def plasma_fractal(size: int, decay: float, g: torch.Generator) -> torch.Tensor:
    """Diamond-square height map in [0, 1] (the benchmark's fog), ``size`` a power of two."""
    field = torch.zeros(size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled(values):
        return values / 4 + wibble * (torch.rand(values.shape, generator=g, dtype=torch.float64) * 2 - 1) * wibble

    while step >= 2:
        half = step // 2
        corners = field[0:size:step, 0:size:step]
        square = corners + torch.roll(corners, -1, 0)
        square = square + torch.roll(square, -1, 1)
        field[half:size:step, half:size:step] = wibbled(square)
        centres = field[half:size:step, half:size:step]
        corners = field[0:size:step, 0:size:step]
        field[0:size:step, half:size:step] = wibbled(centres + torch.roll(centres, 1, 0) + corners + torch.roll(corners, -1, 1))
        field[half:size:step, 0:size:step] = wibbled(centres + torch.roll(centres, 1, 1) + corners + torch.roll(corners, -1, 0))
        step //= 2
        wibble /= decay
    field -= field.min()
    return field / field.max()


def fog(x, c, g):
    strength, decay = c
    size = max(x.shape[-2:])
    map_size = 1 << (size - 1).bit_length()
    cpu = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=g, device=g.device)))  # maps drawn on CPU
    maps = torch.stack([plasma_fractal(map_size, decay, cpu)[: x.shape[-2], : x.shape[-1]] for _ in range(x.shape[0])])
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)
    foggy = x + strength * maps[:, None].to(x.device, x.dtype)
    return (foggy * max_val / (max_val + strength)).clamp(0, 1)


def brightness(x, c, g):
    """HSV value + ``c`` (clipped at 1), hue and saturation kept: an exact rescaling of RGB by V'/V."""
    value = x.amax(dim=1, keepdim=True)
    new_value = (value + c).clamp(max=1.0)
    scaled = x * (new_value / value.clamp_min(1e-12))
    return torch.where(value > 0, scaled, new_value.expand_as(x)).clamp(0, 1)


def contrast(x, c, g):
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def _per_image_pil(x: torch.Tensor, fn: Callable) -> torch.Tensor:
    from PIL import Image

    out = []
    for image in (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy():
        out.append(np.asarray(fn(Image.fromarray(image)), dtype=np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


def pixelate(x, c, g):
    from PIL import Image

    h, w = x.shape[-2:]
    return _per_image_pil(x, lambda im: im.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX))


def jpeg_compression(x, c, g):
    from PIL import Image

    def compress(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=c)
        return Image.open(buffer).convert("RGB")

    return _per_image_pil(x, compress)


FUNCTIONS: dict[str, Callable] = {name: globals()[name] for name in CORRUPTIONS}


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0, benchmark: str | None = None) -> torch.Tensor:
    """Corrupt a uint8 batch ``(B, 3, H, W)``; returns uint8. Deterministic for ``seed`` (and batch content)."""
    if name not in FUNCTIONS:
        raise ValueError(f"Unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}.")
    benchmark = benchmark or benchmark_for(images.shape[-1])
    constant = CONSTANTS[benchmark][name][severity - 1]
    x = images.float() / 255
    generator = torch.Generator(device=x.device).manual_seed(seed)  # runs where the images are (CPU or GPU)
    out = FUNCTIONS[name](x, constant, generator)
    # uint8 like the distributed sets (which store np.uint8 of the float result, i.e. truncation)
    return (out * 255).clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------- corrupted sets
def corrupted_set(clean: torch.Tensor, name: str, severity: int, seed: int = 0, cache_dir: str | None = None,
                  batch_size: int = 500) -> torch.Tensor:
    """``clean`` (N, 3, H, W) uint8 corrupted batch by batch; cached as ``.npy`` (uint8, no pickle) when asked."""
    path = None
    if cache_dir:
        key = hashlib.sha1(clean.numpy().tobytes() + f"{CACHE_VERSION}:{seed}:{benchmark_for(clean.shape[-1])}".encode()).hexdigest()[:16]
        path = os.path.join(cache_dir, key, f"{name}-{severity}.npy")
        if os.path.exists(path):
            return torch.from_numpy(np.load(path, allow_pickle=False))
    parts = [corrupt(clean[i : i + batch_size], name, severity, seed=seed * 1_000_003 + i) for i in range(0, len(clean), batch_size)]
    result = torch.cat(parts)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path + ".tmp.npy", result.numpy(), allow_pickle=False)
        os.replace(path + ".tmp.npy", path)
    return result


def clean_images(split, size: int, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a normalised split (``image``, ``labels`` columns) into uint8 ``(N, 3, size, size)`` and labels."""
    from PIL import Image
    from tqdm.auto import tqdm

    from .data import decode_image

    count = len(split) if limit is None else min(limit, len(split))
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    labels = np.asarray(split.select_columns(["labels"])[:count]["labels"], dtype=np.int64)
    column = split.select_columns(["image"])
    for i in tqdm(range(count), desc="decoding evaluation images", leave=False):
        image = decode_image(column[i]["image"], i)
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        images[i] = np.asarray(image)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


@torch.no_grad()
def accuracy_on(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, batch_size: int = 256,
                device: str | torch.device | None = None) -> float:
    device = device or next(model.parameters()).device
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = (images[i : i + batch_size].to(device).float() / 255 - mean_t) / std_t
        correct += int((logits_of(model(x)).argmax(1).cpu() == labels[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(images), 1)


def evaluate_corruptions(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, corruptions=None,
                         severities=None, seed: int = 0, cache_dir: str | None = None, batch_size: int = 256,
                         baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Accuracy per corruption and severity, mean corruption accuracy (mCA), and mCE / relative mCE against a
    ``baseline`` report (another call's result) when given. ``images`` are clean uint8 at the model's resolution."""
    from tqdm.auto import tqdm

    names, levels = check_names(corruptions, severities)
    clean = accuracy_on(model, images, labels, mean, std, batch_size)
    table: dict[str, dict[int, float]] = {}
    for name, severity in tqdm([(n, s) for n in names for s in levels], desc="corruptions", leave=False):
        corrupted = corrupted_set(images, name, severity, seed, cache_dir)
        table.setdefault(name, {})[severity] = accuracy_on(model, corrupted, labels, mean, std, batch_size)
    report: dict[str, Any] = {
        "benchmark": benchmark_for(images.shape[-1]), "images": len(images), "seed": seed, "clean_accuracy": clean,
        "per_corruption": {n: {"family": FAMILIES[n], "mean": float(np.mean(list(s.values()))), "by_severity": s} for n, s in table.items()},
        "per_severity": {s: float(np.mean([table[n][s] for n in names])) for s in levels},
    }
    report["mca"] = float(np.mean([v["mean"] for v in report["per_corruption"].values()]))
    if baseline is not None:
        report.update(corruption_errors(report, baseline))
    return report


def corruption_errors(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """mCE and relative mCE (Hendrycks & Dietterich): errors summed over severities, normalised by the baseline's."""
    ces, relative = [], []
    for name, entry in report["per_corruption"].items():
        base = baseline["per_corruption"].get(name)
        if base is None:
            continue
        levels = [s for s in entry["by_severity"] if s in base["by_severity"] or str(s) in base["by_severity"]]
        base_by = {int(k): v for k, v in base["by_severity"].items()}
        err = sum(1 - entry["by_severity"][s] for s in levels)
        base_err = sum(1 - base_by[int(s)] for s in levels)
        ces.append(err / max(base_err, 1e-12))
        rel = sum((1 - entry["by_severity"][s]) - (1 - report["clean_accuracy"]) for s in levels)
        base_rel = sum((1 - base_by[int(s)]) - (1 - baseline["clean_accuracy"]) for s in levels)
        relative.append(rel / base_rel if abs(base_rel) > 1e-12 else float("nan"))
    finite = [r for r in relative if not math.isnan(r)]
    return {"mce": float(np.mean(ces)) if ces else float("nan"), "relative_mce": float(np.mean(finite)) if finite else float("nan")}


def robustness_markdown(report: dict[str, Any]) -> str:
    """A table for model cards and reports."""
    lines = [f"Mean corruption accuracy (mCA) **{report['mca']:.4f}** (clean {report['clean_accuracy']:.4f}), "
             f"{len(report['per_corruption'])} corruptions x severities {list(report['per_severity'])}, "
             f"{report['benchmark']} severity constants, {report['images']} images, seed {report['seed']}.", "",
             "| corruption | family | mean | " + " | ".join(f"s{s}" for s in report["per_severity"]) + " |",
             "|---|---|---|" + "---|" * len(report["per_severity"])]
    for name, entry in report["per_corruption"].items():
        cells = " | ".join(f"{entry['by_severity'][s]:.4f}" for s in report["per_severity"])
        lines.append(f"| {name} | {entry['family']} | {entry['mean']:.4f} | {cells} |")
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
