"""The small-image data path: images up to 64 px decoded once into memory, augmented batch-wise on the device.

At 32 px and batch 64 a GPU step takes milliseconds, so decoding, cropping and flipping each PIL image in data-loader
workers sets the pace. Here every image is decoded once into a ``uint8`` array (cached on disk, like the corrupted
test sets), the data loader only indexes that array, and the reference's training transform (zero padding, random
crop, horizontal flip, normalisation: ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip`` + ``ToTensor`` +
``Normalize`` of the CIFAR recipes) runs on the whole batch on the training device, where the second views already
run. For the same crop offsets and flips the result is pixel-identical to the PIL path (tested).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)
BATCHED = "__batched__"  # marks a sample that is already a whole batch (see InMemoryImages.__getitems__)
MAX_SIZE = 64  # larger images do not fit the "decode everything once into memory" budget of this path


class SmallImageTransform:
    """Batch-wise ``pad + random crop + horizontal flip + normalise`` (train) or ``normalise`` (eval), on device.

    Input: ``uint8`` batches of shape ``(N, H, W, 3)``; output: normalised ``float32`` ``(N, 3, H, W)``. The crop
    offsets are uniform on ``[0, 2·padding]`` and each image is flipped with probability 1/2, as torchvision's
    ``RandomCrop(size, padding)`` and ``RandomHorizontalFlip()`` draw them; padding is with zeros (their default).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], padding: int = 4, flip: bool = True):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}.")
        self.mean, self.std, self.padding, self.flip = tuple(float(m) for m in mean), tuple(float(s) for s in std), int(padding), flip

    def draw(self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"):
        """Crop offsets ``(N, 2)`` (row, column) and flips ``(N,)``: the random part, separate so tests can fix it."""
        offsets = torch.randint(0, 2 * self.padding + 1, (batch_size, 2), generator=generator, device=device)
        flips = (torch.rand(batch_size, generator=generator, device=device) < 0.5) if self.flip else torch.zeros(batch_size, dtype=torch.bool, device=device)
        return offsets, flips

    def crop_and_flip(self, images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, H, W, C)`` -> cropped and flipped ``uint8 (N, H, W, C)``: one gather, no loop over samples."""
        n, height, width, _ = images.shape
        p = self.padding
        padded = torch.nn.functional.pad(images, (0, 0, p, p, p, p)) if p else images
        rows = offsets[:, :1] + torch.arange(height, device=images.device)  # (N, H)
        columns = torch.arange(width, device=images.device).expand(n, width)
        columns = torch.where(flips[:, None], width - 1 - columns, columns) + offsets[:, 1:]  # (N, W)
        index = torch.arange(n, device=images.device)[:, None, None]
        return padded[index, rows[:, :, None], columns[:, None, :]]

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, H, W, C)`` -> ``float32 (N, C, H, W)``, the same operations as ``ToTensor`` + ``Normalize``."""
        # contiguous NCHW, as the PIL path delivers: a channels-last-strided input crashed oneDNN convolutions of a
        # pruned student (odd channel counts) on CPU; channels_last=True converts on purpose, in the trainer
        x = images.permute(0, 3, 1, 2).contiguous().float().div(255)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)

    def __call__(self, images: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        if train:
            offsets, flips = self.draw(images.shape[0], generator, images.device)
            images = self.crop_and_flip(images, offsets, flips)
        return self.normalise(images)

    def __repr__(self) -> str:
        return f"SmallImageTransform(padding={self.padding}, flip={self.flip}, mean={self.mean}, std={self.std})"


class InMemoryImages(Dataset):
    """A split decoded into a ``uint8 (N, H, W, 3)`` tensor; samples are ``{"pixel_values": uint8 HWC, "labels"}``.

    ``device_transform`` (a :class:`SmallImageTransform`) is what :class:`~r2kd_hf.R2KDTrainer` applies to each
    batch on the training device; the trainer finds it on its training dataset.
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int], device_transform: SmallImageTransform,
                 features: Any = None):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}.")
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.device_transform = device_transform
        self.features = features  # the source split's features, for label names (cards, label checks)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"pixel_values": self.images[index], "labels": int(self.labels[index])}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A whole batch in one indexing op, already stacked: the collator passes it through (no per-sample work)."""
        index = torch.as_tensor(indices)
        return [{"pixel_values": self.images[index], "labels": self.labels[index], BATCHED: True}]


def decode_split(split, size: int, cache_dir: str | None = None, skip_corrupt_images: bool = False,
                 name: str = "train") -> tuple[np.ndarray, list[int], list[dict[str, Any]]]:
    """Decode every image of ``split`` once into ``uint8 (N, size, size, 3)``, resized as the PIL path resizes.

    Returns ``(images, labels, skipped)``. An unreadable image stops here, before training, naming the sample (or,
    with ``skip_corrupt_images``, is dropped and listed in ``skipped``). The array is cached under ``cache_dir``,
    keyed by the split's fingerprint and the size, so the next run loads it in a second.
    """
    from PIL import Image

    from .data import INDEX_COLUMN, CorruptImageError, decode_image

    if size > MAX_SIZE:
        raise ValueError(f"The small-image path holds images up to {MAX_SIZE} px in memory; this run uses {size} px. "
                         "Set small_image_path: false (data section of the recipe) to use the PIL pipeline.")
    path = None
    fingerprint = getattr(split, "_fingerprint", None)
    if cache_dir and fingerprint:
        key = hashlib.sha1(f"{fingerprint}|{size}|{skip_corrupt_images}|v1".encode()).hexdigest()[:16]
        path = os.path.join(cache_dir, f"{name}-{key}.npz")
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as cached:
                return cached["images"], cached["labels"].tolist(), [{"index": int(i), "problem": "unreadable (cached run)"} for i in cached["skipped"]]
    images = np.empty((len(split), size, size, 3), dtype=np.uint8)
    keep = np.ones(len(split), dtype=bool)
    skipped: list[dict[str, Any]] = []
    from tqdm.auto import tqdm

    raw = split.with_format(None)
    with tqdm(total=len(split), desc=f"decoding {name} images into memory", disable=len(split) < 5000) as bar:
        for start in range(0, len(split), 1024):
            batch = raw[start : start + 1024]
            indices = batch.get(INDEX_COLUMN, list(range(start, start + len(batch["image"]))))
            for offset, (value, index) in enumerate(zip(batch["image"], indices)):
                try:
                    image = decode_image(value, index)
                except CorruptImageError as error:
                    if not skip_corrupt_images:
                        raise
                    keep[start + offset] = False
                    skipped.append({"index": start + offset, "problem": str(error)})
                    continue
                if image.size != (size, size):  # the PIL path's Resize((size, size)), bilinear
                    image = image.resize((size, size), Image.BILINEAR)
                images[start + offset] = np.asarray(image, dtype=np.uint8)
            bar.update(len(batch["image"]))
    labels = np.asarray(split.with_format(None)["labels"], dtype=np.int64)
    images, labels = images[keep], labels[keep]
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp.npz"  # one per process: ranks of a launch may decode at once
        np.savez(temporary, images=images, labels=labels, skipped=np.asarray([s["index"] for s in skipped], dtype=np.int64))
        os.replace(temporary, path)
    return images, labels.tolist(), skipped


def in_memory_split(split, size: int, mean: Sequence[float], std: Sequence[float], padding: int,
                    cache_dir: str | None = None, skip_corrupt_images: bool = False, name: str = "train"):
    """``(InMemoryImages, skipped)`` for ``split``: decoded once, augmented on the device by the trainer."""
    images, labels, skipped = decode_split(split, size, cache_dir, skip_corrupt_images, name)
    dataset = InMemoryImages(images, labels, SmallImageTransform(mean, std, padding), features=split.features)
    logger.info("%s split: %d images decoded into memory (%.1f MB, %d px)", name, len(dataset), images.nbytes / 2**20, size)
    return dataset, skipped
