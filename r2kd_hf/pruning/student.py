"""Prune-then-distill: structurally prune the student before the optimizer exists."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .serialization import attach_record, layer_shapes, make_record, pruning_target
from .structured import prune_channels


def prune_student(
    model: nn.Module,
    amount: float,
    input_size: tuple[int, int, int] = (3, 224, 224),
    importance: str = "l1",
    round_to: int | None = None,
) -> dict[str, Any]:
    """Remove ``amount`` of the student's channels (Torch-Pruning, magnitude importance), in place.

    Call it before building the trainer (the optimizer must see the pruned parameters). The model remembers a
    pruning record, so ``trainer.save_model()`` writes ``r2kd_pruning.json`` and :func:`r2kd_hf.load_student`
    rebuilds it. Deterministic: every rank of a multi-process run gets the same network.

    Returns:
        the pruning report (params and MACs before and after).
    """
    base_shapes = layer_shapes(pruning_target(model))
    example = torch.zeros(1, *input_size, device=next(model.parameters()).device)
    report = prune_channels(model, amount, example, importance=importance, round_to=round_to)
    attach_record(model, make_record(base_shapes, model, report))
    return report
