"""Pruned copies of the teacher for the R2KD teacher ensemble."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import torch
from torch import nn

from .structured import prune_channels
from .unstructured import l1_unstructured_global, l1_unstructured_layerwise, weight_sparsity

TEACHER_PRUNERS = ("l1_unstructured", "global_l1_unstructured", "structured")


def prune_teacher_copy(
    teacher: nn.Module, method: str = "l1_unstructured", amount: float = 0.1, example_inputs: torch.Tensor | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Deep-copy ``teacher`` and prune the copy; the original is untouched. No fine-tuning (as in R2KD).

    ``l1_unstructured`` is the reference method (layer-wise L1, every Conv2d/Linear weight loses its own
    ``amount``); ``global_l1_unstructured`` ranks all weights together; ``structured`` removes ``amount`` of the
    channels with Torch-Pruning, which makes the extra forward cheaper (needs ``example_inputs``).
    """
    if method not in TEACHER_PRUNERS:
        raise ValueError(f"Unknown teacher pruning method {method!r}; valid: {', '.join(TEACHER_PRUNERS)}.")
    if not 0.0 < amount < 1.0:
        raise ValueError(f"The teacher pruning amount must be in (0, 1), got {amount}.")
    pruned = copy.deepcopy(teacher)
    pruned.requires_grad_(False)
    report: dict[str, Any] = {"method": method, "amount": amount}
    if method == "l1_unstructured":
        l1_unstructured_layerwise(pruned, amount)
    elif method == "global_l1_unstructured":
        l1_unstructured_global(pruned, amount)
    else:
        if example_inputs is None:
            raise ValueError("Structured teacher pruning needs example_inputs (one batch of images).")
        report.update(prune_channels(pruned, amount, example_inputs))
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
