"""Pruning records: which layers of a base architecture a structured pruning resized, as JSON.

A pruned network differs from its base architecture only in the shapes of some layers. The record names the base
architecture and, for every layer whose shape changed, its new sizes; rebuilding means building the base model
(random init, no download) and resizing those layers. :mod:`r2kd_hf.saving` writes and reads records.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ..introspection import timm_module_of, unwrap

PRUNING_RECORD_NAME = "r2kd_pruning.json"
RECORD_FORMAT = "r2kd_hf.pruning_record/v1"
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def _layer_shape(module: nn.Module) -> dict[str, Any] | None:
    if isinstance(module, nn.Conv2d):
        return {"type": "Conv2d", "in_channels": module.in_channels, "out_channels": module.out_channels, "groups": module.groups}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features, "out_features": module.out_features}
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {"type": "BatchNorm", "num_features": module.num_features}
    if isinstance(module, nn.GroupNorm):
        return {"type": "GroupNorm", "num_channels": module.num_channels, "num_groups": module.num_groups}
    if isinstance(module, nn.LayerNorm):
        return {"type": "LayerNorm", "normalized_shape": list(module.normalized_shape)}
    return None


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    return {name: shape for name, module in model.named_modules() if (shape := _layer_shape(module)) is not None}


def pruning_target(model: nn.Module) -> nn.Module:
    return timm_module_of(model) or unwrap(model)


def make_record(base_shapes: dict[str, dict], model: nn.Module, report: dict[str, Any]) -> dict[str, Any]:
    """Record the layers of ``model`` whose shapes differ from ``base_shapes`` (taken before pruning)."""
    target = pruning_target(model)
    outer = unwrap(model)
    changed = {name: shape for name, shape in layer_shapes(target).items() if base_shapes.get(name) != shape}
    config = getattr(outer, "config", None)
    base = {
        "kind": "transformers" if config is not None else "timm",
        "architecture": getattr(config, "architecture", None) or getattr(target, "default_cfg", {}).get("architecture"),
        "num_classes": getattr(config, "num_labels", None) or getattr(target, "num_classes", None),
    }
    return {"format": RECORD_FORMAT, "base": base, "pruning": report, "layers": changed}


def _resize(module: nn.Module, shape: dict[str, Any]) -> None:
    def new(*size):
        return nn.Parameter(torch.empty(*size), requires_grad=True)

    kind = shape["type"]
    if kind == "Conv2d" and isinstance(module, nn.Conv2d):
        module.in_channels, module.out_channels, module.groups = shape["in_channels"], shape["out_channels"], shape["groups"]
        module.weight = new(module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        if module.bias is not None:
            module.bias = new(module.out_channels)
    elif kind == "Linear" and isinstance(module, nn.Linear):
        module.in_features, module.out_features = shape["in_features"], shape["out_features"]
        module.weight = new(module.out_features, module.in_features)
        if module.bias is not None:
            module.bias = new(module.out_features)
    elif kind == "BatchNorm" and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        n = module.num_features = shape["num_features"]
        if module.affine:
            module.weight, module.bias = new(n), new(n)
        if module.track_running_stats:
            module.running_mean, module.running_var = torch.zeros(n), torch.ones(n)
    elif kind == "GroupNorm" and isinstance(module, nn.GroupNorm):
        n = module.num_channels = shape["num_channels"]
        module.num_groups = shape["num_groups"]
        if module.affine:
            module.weight, module.bias = new(n), new(n)
    elif kind == "LayerNorm" and isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(shape["normalized_shape"])
        if module.elementwise_affine:
            module.weight, module.bias = new(*module.normalized_shape), new(*module.normalized_shape)
    else:
        raise ValueError(f"The pruning record says {kind} but the base model has {type(module).__name__}.")


def apply_layer_shapes(model: nn.Module, layers: dict[str, dict[str, Any]], architecture: str | None = None) -> nn.Module:
    """Resize the named layers of a freshly built base model (weights left uninitialised)."""
    target = pruning_target(model)
    modules = dict(target.named_modules())
    for name, shape in layers.items():
        if name not in modules:
            raise ValueError(
                f"The pruning record names layer {name!r}, which the base architecture {architecture!r} does not "
                "have: record and architecture do not match."
            )
        _resize(modules[name], shape)
    head = target.get_classifier() if hasattr(target, "get_classifier") else None
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
        head = head[-1]
    if isinstance(head, nn.Linear) and hasattr(target, "num_features"):
        target.num_features = head.in_features
    return model


def apply_record(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """Resize the layers of a freshly built base model to the shapes in ``record`` (weights left uninitialised)."""
    return apply_layer_shapes(model, record["layers"], record["base"].get("architecture"))


def attach_record(model: nn.Module, record: dict[str, Any]) -> None:
    """Remember the record on the model so that saving writes it next to the weights."""
    unwrap(model).r2kd_pruning_record = record


def record_of(model: nn.Module) -> dict[str, Any] | None:
    return getattr(unwrap(model), "r2kd_pruning_record", None)


def write_record(record: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, PRUNING_RECORD_NAME)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    return path
