"""Tiny models and datasets for fast CPU tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class TinyNet(nn.Module):
    """conv -> ReLU -> global pool -> linear; optional BatchNorm. Records the mode of every forward call."""

    def __init__(self, num_classes: int = 4, width: int = 8, batch_norm: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.fc = nn.Linear(width, num_classes)
        self.num_classes = num_classes
        self.calls: list[dict] = []

    def forward(self, x):
        self.calls.append({"training": self.training, "grad": torch.is_grad_enabled(), "input": x.detach().clone()})
        x = torch.relu(self.norm(self.conv(x)))
        return self.fc(x.mean((2, 3)))


class BlobImages(Dataset):
    """Class-dependent colour blobs: class k brightens channel k % 3 in a k-dependent quadrant. Learnable fast."""

    def __init__(self, n: int = 64, num_classes: int = 4, size: int = 8, seed: int = 0, keys=("pixel_values", "labels")):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % num_classes
        self.images = torch.randn(n, 3, size, size, generator=generator) * 0.3
        half = size // 2
        for i, label in enumerate(self.labels.tolist()):
            r, c = divmod(label % 4, 2)
            self.images[i, label % 3, r * half : (r + 1) * half, c * half : (c + 1) * half] += 2.0
        self.keys = keys

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image_key, label_key = self.keys
        return {image_key: self.images[i], label_key: int(self.labels[i])}
