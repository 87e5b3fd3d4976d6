"""Pruned copies of the teacher for the R2KD teacher ensemble."""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Callable

import torch
from torch import nn

from .structured import prune_channels
from .unstructured import l1_unstructured_global, l1_unstructured_layerwise, weight_sparsity

TeacherPruner = Callable[[nn.Module, float, "torch.Tensor | None"], dict[str, Any]]
_PRUNERS: dict[str, TeacherPruner] = {}


def register_teacher_pruner(name: str) -> Callable[[TeacherPruner], TeacherPruner]:
    """Register ``fn(model, amount, example_inputs) -> report`` that prunes ``model`` in place (a teacher copy)."""

    def decorator(fn: TeacherPruner) -> TeacherPruner:
        if name in _PRUNERS and _PRUNERS[name] is not fn:
            raise ValueError(f"A teacher pruner named {name!r} is already registered. Pick another name.")
        _PRUNERS[name] = fn
        return fn

    return decorator


def available_teacher_pruners() -> list[str]:
    return list(_PRUNERS)


@register_teacher_pruner("l1_unstructured")
def _layerwise(model: nn.Module, amount: float, example_inputs=None) -> dict[str, Any]:
    """Reference: every Conv2d/Linear weight loses its own ``amount`` smallest-|w| entries."""
    l1_unstructured_layerwise(model, amount)
    return {}


@register_teacher_pruner("global_l1_unstructured")
def _global(model: nn.Module, amount: float, example_inputs=None) -> dict[str, Any]:
    """All Conv2d/Linear weights ranked together."""
    l1_unstructured_global(model, amount)
    return {}


@register_teacher_pruner("structured")
def _channels(model: nn.Module, amount: float, example_inputs=None) -> dict[str, Any]:
    """``amount`` of the channels removed with Torch-Pruning: a cheaper extra forward."""
    if example_inputs is None:
        raise ValueError("Structured teacher pruning needs example_inputs (one batch of images).")
    return prune_channels(model, amount, example_inputs)


def prune_teacher_copy(
    teacher: nn.Module, method: str = "l1_unstructured", amount: float = 0.1, example_inputs: torch.Tensor | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Deep-copy ``teacher`` and prune the copy; the original is untouched. No fine-tuning (as in R2KD).

    ``l1_unstructured`` is the reference method (layer-wise L1, every Conv2d/Linear weight loses its own
    ``amount``); ``global_l1_unstructured`` ranks all weights together; ``structured`` removes ``amount`` of the
    channels with Torch-Pruning, which makes the extra forward cheaper (needs ``example_inputs``).
    """
    if method not in _PRUNERS:
        raise ValueError(f"Unknown teacher pruning method {method!r}; valid: {', '.join(_PRUNERS)}.")
    if not 0.0 < amount < 1.0:
        raise ValueError(f"The teacher pruning amount must be in (0, 1), got {amount}.")
    pruned = copy.deepcopy(teacher)
    pruned.requires_grad_(False)
    channels_last = any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
                        for p in pruned.parameters())
    if channels_last:  # torch's pruning flattens weights with .view(): prune in the default layout, then restore
        pruned = pruned.to(memory_format=torch.contiguous_format)
    report: dict[str, Any] = {"method": method, "amount": amount}
    report.update(_PRUNERS[method](pruned, amount, example_inputs))
    if channels_last:
        pruned = pruned.to(memory_format=torch.channels_last)
    sparsity = weight_sparsity(pruned)
    report["sparsity_overall"] = sparsity.pop("overall")
    report["sparsity_per_layer"] = sparsity
    report["fingerprint"] = fingerprint(pruned)
    return pruned, report


@torch.no_grad()
def fingerprint(model: nn.Module) -> str:
    """A short hash of every parameter's shape, zero count and sum: equal for identically pruned copies."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(f"{name}:{tuple(param.shape)}:{int((param == 0).sum())}:{float(param.double().sum()):.6e};".encode())
    return digest.hexdigest()[:16]
