"""The few facts the library needs about any image classifier, read without loading anything.

A model may be a ``transformers`` image classifier (``TimmWrapperForImageClassification`` included), a plain timm
module, or any ``nn.Module`` mapping ``(B, 3, H, W)`` images to ``(B, C)`` logits. Loading models from names,
folders, Hub repos and checkpoints is :mod:`r2kd_hf.loading`'s job.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor of a model output (tensor, ``ModelOutput``, dict or tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, dict):
        return output["logits"]
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"Cannot find logits in a model output of type {type(output).__name__}.")


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP and compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def timm_module_of(model: nn.Module) -> nn.Module | None:
    """The timm model inside ``model`` (itself, or ``TimmWrapper*.timm_model``), if any."""
    model = unwrap(model)
    inner = getattr(model, "timm_model", model)
    return inner if hasattr(inner, "pretrained_cfg") else None


def num_labels_of(model: nn.Module) -> int | None:
    """Number of classes the model predicts, when it can be read without a forward pass."""
    model = unwrap(model)
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "num_labels", None):
        return int(config.num_labels)
    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Linear):
            return head.out_features
    return None


def id2label_of(model: nn.Module) -> dict[int, str] | None:
    """Class names of a transformers model, unless they are the placeholder ``LABEL_i`` names."""
    config = getattr(unwrap(model), "config", None)
    id2label = getattr(config, "id2label", None)
    if not id2label:
        return None
    id2label = {int(k): str(v) for k, v in id2label.items()}
    if all(v == f"LABEL_{k}" for k, v in id2label.items()):
        return None
    return id2label


def data_config_of(model: nn.Module) -> dict[str, Any] | None:
    """timm data config (``input_size``, ``mean``, ``std``, ``crop_pct``, ``interpolation``) when the model has one."""
    inner = timm_module_of(model)
    if inner is None:
        return None
    from timm.data import resolve_model_data_config

    return resolve_model_data_config(inner)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in unwrap(model).parameters())


def count_macs(model: nn.Module, input_size=(3, 224, 224)) -> int | None:
    """Multiply-accumulates of one forward at ``input_size`` (Torch-Pruning's counter), or None if it fails."""
    try:
        import torch_pruning as tp

        module = unwrap(model)
        device = next(module.parameters()).device
        example = torch.zeros(1, *input_size, device=device)
        was_training = module.training
        module.eval()
        macs, _ = tp.utils.count_ops_and_params(LogitsOnly(module), example)
        module.train(was_training)
        return int(macs)
    except Exception:  # a counter failure must never stop training or a report
        return None


class LogitsOnly(nn.Module):
    """A plain logits tensor out, whatever the model returns (transformers models return an output object): what
    counters and exporters (Torch-Pruning, ``torch.onnx``) need."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(pixel_values))
