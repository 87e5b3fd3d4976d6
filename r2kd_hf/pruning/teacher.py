"""Pruned copies of the teacher, which the run's :class:`~r2kd_hf.teacher.Teacher` mixes into its targets."""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Callable

import torch

from .. import citations
from torch import nn

from ..registry import Registry
from .structured import prune_channels
from .unstructured import l1_unstructured_global, l1_unstructured_layerwise, weight_sparsity

TeacherPruner = Callable[[nn.Module, float, "torch.Tensor | None"], dict[str, Any]]
PRUNERS = Registry("teacher pruning method", ("example_inputs",), "@r2kd_hf.register_teacher_pruner('name')")


def register_teacher_pruner(name: str, *, needs: tuple[str, ...] = (), citation: str = "") -> Callable[[TeacherPruner], TeacherPruner]:
    """Register ``fn(model, amount, example_inputs) -> report`` that prunes ``model`` in place (a teacher copy).
    ``needs=("example_inputs",)``: the callback passes one batch of zeros of the teacher's input size."""
    return PRUNERS.register(name, needs=needs, citation=citation)


def available_teacher_pruners() -> list[str]:
    return PRUNERS.names()


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


@register_teacher_pruner("structured", needs=("example_inputs",), citation=citations.TORCH_PRUNING)
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
    entry = PRUNERS.entry(method)
    if not 0.0 < amount < 1.0:
        raise ValueError(f"The teacher pruning amount must be in (0, 1), got {amount}.")
    pruned = copy.deepcopy(teacher)
    pruned.requires_grad_(False)
    channels_last = any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
                        for p in pruned.parameters())
    if channels_last:  # torch's pruning flattens weights with .view(): prune in the default layout, then restore
        pruned = pruned.to(memory_format=torch.contiguous_format)
    report: dict[str, Any] = {"method": method, "amount": amount}
    report.update(entry.fn(pruned, amount, example_inputs))
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
