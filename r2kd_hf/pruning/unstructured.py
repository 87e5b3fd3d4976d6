"""Unstructured magnitude pruning of a teacher copy (R2KD reference and a global variant)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``Conv2d`` and ``Linear`` (classifier included, as in the reference code)."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, PRUNABLE)]


@torch.no_grad()
def l1_unstructured_layerwise(model: nn.Module, amount: float) -> nn.Module:
    """R2KD reference: each Conv2d/Linear weight loses its own ``amount`` smallest-|w| entries; masks made permanent.

    Biases and normalisation layers are untouched; there is no fine-tuning afterwards. Modifies ``model`` in place.
    """
    for _, module in prunable_layers(model):
        prune.l1_unstructured(module, "weight", amount=amount)
        prune.remove(module, "weight")
    return model


@torch.no_grad()
def l1_unstructured_global(model: nn.Module, amount: float) -> nn.Module:
    """The ``amount`` smallest-|w| Conv2d/Linear weights over the whole network (layers end up unevenly sparse)."""
    layers = prunable_layers(model)
    prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=amount)
    for _, module in layers:
        prune.remove(module, "weight")
    return model


def weight_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero weights per Conv2d/Linear layer, plus ``"overall"``."""
    report, zeros, total = {}, 0, 0
    for name, module in prunable_layers(model):
        weight = module.weight
        layer_zeros = int((weight == 0).sum())
        report[name or "<root>"] = layer_zeros / weight.numel()
        zeros, total = zeros + layer_zeros, total + weight.numel()
    report["overall"] = zeros / max(total, 1)
    return report
