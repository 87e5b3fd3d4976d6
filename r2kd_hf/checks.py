"""Before training: do the student, the teacher and the dataset agree, and which data config does the run use.

* :func:`check_label_agreement`: the same classes (count) in the same order (label names), or an error naming the fix;
* :func:`check_one_batch`: one collated batch through both models, logits shapes equal;
* :func:`resolve_data_config`: the run's one data config (input size, mean, std, interpolation, crop), which the
  transforms, the second view and the teacher re-normalisation read.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .introspection import DEFAULT_MEAN, DEFAULT_STD, data_config_of, id2label_of, logits_of, num_labels_of


def dataset_label_names(dataset) -> list[str] | None:
    """Class names from a ``datasets`` ``ClassLabel`` column named ``labels`` or ``label``."""
    features = getattr(dataset, "features", None) or {}
    for column in ("labels", "label"):
        feature = features.get(column) if hasattr(features, "get") else None
        if feature is not None and hasattr(feature, "names"):
            return list(feature.names)
    return None


def check_label_agreement(student: nn.Module, teacher: nn.Module | None, label_names: list[str] | None = None) -> None:
    """Fail before training when student, teacher and dataset disagree on the classes (count or order)."""
    counts = {"student": num_labels_of(student), "teacher": num_labels_of(teacher) if teacher is not None else None}
    counts["dataset"] = len(label_names) if label_names else None
    known = {k: v for k, v in counts.items() if v}
    if len(set(known.values())) > 1:
        detail = ", ".join(f"{k} {v}" for k, v in known.items())
        raise ValueError(
            f"Class counts disagree ({detail}). Teacher, student and dataset must share one label set: use a teacher "
            "fine-tuned on this dataset (scripts/train_teacher.py trains one) and create the student with "
            "num_labels equal to the dataset's number of classes."
        )
    if label_names and teacher is not None and (teacher_names := id2label_of(teacher)):
        for index, name in enumerate(label_names):
            if teacher_names.get(index) != name:
                raise ValueError(
                    f"The teacher's label {index} is {teacher_names.get(index)!r} but the dataset's is {name!r}: the label "
                    "orders differ, so distillation would teach the wrong classes. Re-map the dataset labels to the "
                    "teacher's id2label (or fine-tune the teacher on this dataset)."
                )


def check_one_batch(student: nn.Module, teacher: nn.Module | None, batch: dict[str, torch.Tensor]) -> None:
    """Run one collated batch through student and teacher (eval mode, no grad): shapes must agree."""
    if "pixel_values" not in batch or "labels" not in batch:
        raise KeyError(f"The training batch has keys {sorted(batch)}; it needs 'pixel_values' and 'labels'.")
    pixel_values = batch["pixel_values"].to(next(student.parameters()).device)
    with torch.no_grad():
        was_training = student.training
        student.eval()
        student_shape = tuple(logits_of(student(pixel_values)).shape)
        student.train(was_training)
        if teacher is None:
            return
        teacher_shape = tuple(logits_of(teacher(pixel_values.to(next(teacher.parameters()).device))).shape)
    if student_shape != teacher_shape:
        raise ValueError(
            f"Student logits {student_shape} and teacher logits {teacher_shape} differ in shape: the two models "
            "predict different numbers of classes. Use a teacher trained on this dataset's label set."
        )


def resolve_data_config(student: nn.Module, image_size: int | None = None, mean=None, std=None) -> dict[str, Any]:
    """The one data config of a run: the student's timm config (ImageNet defaults otherwise) with overrides."""
    config = dict(data_config_of(student) or {"input_size": (3, 224, 224), "interpolation": "bilinear", "crop_pct": 0.875,
                                              "mean": DEFAULT_MEAN, "std": DEFAULT_STD})
    if image_size:
        config["input_size"] = (3, image_size, image_size)
    if mean:
        config["mean"] = tuple(mean)
    if std:
        config["std"] = tuple(std)
    return config
