"""Structured (channel) pruning with Torch-Pruning, for teachers and for prune-then-distill students."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..introspection import count_macs, count_parameters, logits_of, timm_module_of, unwrap

SUPPORTED_FAMILIES = (
    "convolutional networks built from Conv2d, BatchNorm and Linear layers: ResNet/ResNeXt, Wide-ResNet, VGG, "
    "MobileNetV2/V3, EfficientNet, RegNet and the paper's CIFAR ResNet/WRN/VGG/MobileNetV2 (not ShuffleNetV2: its "
    "channel split and shuffle cannot be pruned consistently)"
)


def check_structured_support(model: nn.Module) -> None:
    """Refuse architectures whose channel pruning Torch-Pruning cannot keep consistent without per-family patches."""
    for name, module in unwrap(model).named_modules():
        kind = type(module).__name__
        if "Shuffle" in kind:  # channel split + shuffle: Torch-Pruning cannot keep the halves consistent
            raise ValueError(
                f"Structured pruning could not prune {kind} (found at {name or 'the top level'!r}): its channel split and "
                f"shuffle cannot be pruned consistently. Supported: {SUPPORTED_FAMILIES}."
            )
        if isinstance(module, nn.MultiheadAttention) or hasattr(module, "qkv") or "Attention" in kind:
            raise ValueError(
                f"Structured pruning does not support attention models yet (found {kind} at {name!r}). "
                f"Supported: {SUPPORTED_FAMILIES}. Use teacher_prune_method='l1_unstructured' for transformers."
            )


def _check_amount(amount: float) -> None:
    if not 0.0 < amount < 1.0:
        raise ValueError(f"The pruning amount must be in (0, 1), got {amount}.")


def _target(model: nn.Module) -> nn.Module:
    """The module to prune: the timm model inside a transformers wrapper, else the model itself."""
    return timm_module_of(model) or unwrap(model)


def prune_channels(
    model: nn.Module,
    amount: float,
    example_inputs: torch.Tensor,
    importance: str = "l1",
    round_to: int | None = None,
) -> dict[str, Any]:
    """Remove ``amount`` of the channels of every prunable group (classifier outputs kept), in place.

    Magnitude importance is deterministic, so every rank of a multi-process run prunes identically.

    Returns:
        a report with params and MACs before and after.
    """
    import torch_pruning as tp

    _check_amount(amount)
    check_structured_support(model)
    target = _target(model)
    was_training = target.training
    target.eval()
    input_size = tuple(example_inputs.shape[1:])
    before = {"params": count_parameters(target), "macs": count_macs(target, input_size)}
    importances = {"l1": tp.importance.GroupMagnitudeImportance(p=1), "l2": tp.importance.GroupMagnitudeImportance(p=2)}
    if importance not in importances:
        raise ValueError(f"Unknown importance {importance!r}; valid: {', '.join(importances)}.")
    head = target.get_classifier() if hasattr(target, "get_classifier") else None
    ignored = [head] if isinstance(head, nn.Module) else [_last_linear(target)]
    _run_torch_pruning(target, example_inputs, importances[importance], amount, [m for m in ignored if m is not None], round_to)
    if hasattr(target, "num_features") and isinstance(ignored[0], nn.Linear):
        target.num_features = ignored[0].in_features
    target.train(was_training)
    after = {"params": count_parameters(target), "macs": count_macs(target, input_size)}
    if after["params"] >= before["params"]:
        raise ValueError(
            f"Structured pruning removed nothing from {type(target).__name__} (amount {amount}). "
            f"Supported: {SUPPORTED_FAMILIES}."
        )
    return {
        "method": "structured",
        "importance": importance,
        "amount": amount,
        "input_size": list(input_size),
        "params_before": before["params"],
        "params_after": after["params"],
        "macs_before": before["macs"],
        "macs_after": after["macs"],
    }


def _run_torch_pruning(target: nn.Module, example_inputs: torch.Tensor, importance, amount: float, ignored: list,
                       round_to: int | None) -> None:
    """One Torch-Pruning step over ``target``'s dependency graph (traced through autograd, also for a frozen copy)."""
    import torch_pruning as tp

    frozen = [p for p in target.parameters() if not p.requires_grad]
    for param in frozen:
        param.requires_grad_(True)
    try:
        with torch.enable_grad():
            pruner_class = getattr(tp.pruner, "BasePruner", None) or tp.pruner.MetaPruner  # renamed in 1.6
            pruner_class(target, example_inputs, importance=importance, pruning_ratio=amount, ignored_layers=ignored,
                         round_to=round_to, output_transform=logits_of).step()
    except Exception as error:
        raise ValueError(
            f"Torch-Pruning could not prune {type(target).__name__} structurally ({type(error).__name__}: {error}). "
            f"Supported: {SUPPORTED_FAMILIES}. Use an unstructured method for this architecture."
        ) from error
    finally:
        for param in frozen:
            param.requires_grad_(False)


def _last_linear(model: nn.Module) -> nn.Module | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None
