"""Seed folders for the local Hub server: tiny dataset repos in the Hub's parquet layout and timm-format teachers.

They stand in for the repos the shipped recipes name (``Donghyun99/CUB-200-2011``, ``zh-plus/tiny-imagenet``,
``uoft-cs/cifar100``, ``timm/resnet50.a1_in1k``), with the same splits, column names and class counts,
so a recipe runs end to end against ``HF_ENDPOINT=http://127.0.0.1:<port>`` with only size overrides.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


def _png(rng: np.random.Generator, size: int, label: int, classes: int) -> bytes:
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    image[:, :, label % 3] += np.uint8(120 + (label * 97) % 120 // 2)  # a class-dependent tint: learnable
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def image_dataset_repo(root: str, repo_id: str, splits: dict[str, int], classes: int, image_column: str = "image",
                       label_column: str = "label", size: int = 24, seed: int = 0, extra_label: str | None = None) -> list[str]:
    """Write ``root/datasets/<repo_id>/data/<split>-00000-of-00001.parquet`` shards; returns the class names."""
    import datasets

    rng = np.random.default_rng(seed)
    names = [f"class_{i:03d}" for i in range(classes)]
    features = {image_column: datasets.Image(), label_column: datasets.ClassLabel(names=names)}
    if extra_label:
        features[extra_label] = datasets.ClassLabel(names=["a", "b"])
    folder = os.path.join(root, "datasets", *repo_id.split("/"), "data")
    os.makedirs(folder, exist_ok=True)
    for split, count in splits.items():
        labels = [i % classes for i in range(count)]
        columns = {image_column: [{"bytes": _png(rng, size, y, classes), "path": None} for y in labels], label_column: labels}
        if extra_label:
            columns[extra_label] = [y % 2 for y in labels]
        data = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
        data.to_parquet(os.path.join(folder, f"{split}-00000-of-00001.parquet"))
    return names


def timm_teacher_repo(root: str, repo_id: str, architecture: str, label_names: list[str], input_size: int = 224) -> str:
    """Write ``root/models/<repo_id>`` in timm's format (random weights, the dataset's label names)."""
    import timm

    import r2kd_hf

    model = timm.create_model(architecture, num_classes=len(label_names))
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, input_size, input_size)}
    folder = os.path.join(root, "models", *repo_id.split("/"))
    r2kd_hf.save_classifier(model, folder, label_names=label_names)
    return folder
