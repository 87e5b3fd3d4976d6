"""The distillation target: a frozen teacher, optionally mixed with a pruned copy of itself (R2KD).

:class:`TeacherEnsemble` is the one object the trainer asks for targets. The pruning callback hands it the pruned
copy (:meth:`TeacherEnsemble.add_pruned_copy`) before the first step; nothing else changes it during training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .modeling import logits_of


class TeacherEnsemble(nn.Module):
    r"""Targets ``z̃ = (1 - w)·z_t + w·z_p`` from a frozen teacher ``t`` and, once added, its pruned copy ``p``.

    Reference behaviour (R2KD code): the teacher runs in eval mode; the pruned copy is left in train mode, so its
    BatchNorm uses batch statistics (``pruned_bn="batch_stats"``); ``"running_stats"`` keeps it in eval mode.

    Args:
        teacher: the frozen teacher (already placed on the training device).
        pruned_weight: ``w``, the pruned copy's share of the target logits (reference 0.3).
        pruned_bn: ``"batch_stats"`` (reference) or ``"running_stats"``.
        fuse_views: one teacher forward over the clean and augmented views together (exact for eval-mode models).
    """

    def __init__(self, teacher: nn.Module, pruned_weight: float = 0.3, pruned_bn: str = "batch_stats", fuse_views: bool = True):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.pruned: nn.Module | None = None
        self.pruning_report: dict[str, Any] | None = None
        self.pruned_weight, self.pruned_bn, self.fuse_views = pruned_weight, pruned_bn, fuse_views

    def add_pruned_copy(self, pruned: nn.Module, report: dict[str, Any]) -> None:
        """Use ``pruned`` in the target mix from now on (called once, by :class:`TeacherPruningCallback`)."""
        if self.pruned is not None:
            raise RuntimeError("This ensemble already has a pruned teacher; the teacher is pruned once per run.")
        self.pruned = pruned.requires_grad_(False)
        self.pruning_report = report

    def train(self, mode: bool = True) -> TeacherEnsemble:
        # The teacher is always in eval mode; the pruned copy follows the reference's BatchNorm choice.
        self.teacher.eval()
        if self.pruned is not None:
            self.pruned.train(self.pruned_bn == "batch_stats")
        return self

    def mix(self, teacher_logits: torch.Tensor, pruned_logits: torch.Tensor) -> torch.Tensor:
        return torch.lerp(teacher_logits.float(), pruned_logits.float(), self.pruned_weight)

    @torch.no_grad()
    def targets(self, clean: torch.Tensor, augmented: torch.Tensor | None = None):
        """``(target on clean, target on augmented or None, raw teacher logits on clean)``."""
        self.train()
        teacher_clean, teacher_aug = _forward_views(self.teacher, clean, augmented, self.fuse_views)
        if self.pruned is None:
            return teacher_clean, teacher_aug, teacher_clean
        # Batch statistics depend on the batch, so the reference mode keeps the two views in separate forwards.
        fuse_pruned = self.fuse_views and self.pruned_bn == "running_stats"
        pruned_clean, pruned_aug = _forward_views(self.pruned, clean, augmented, fuse_pruned)
        mix_aug = self.mix(teacher_aug, pruned_aug) if augmented is not None else None
        return self.mix(teacher_clean, pruned_clean), mix_aug, teacher_clean

    @torch.no_grad()
    def predictions(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of the teacher, and of the pruned copy and the mix when there is one (for validation)."""
        self.train()
        out = {"teacher": logits_of(self.teacher(pixel_values)).float()}
        if self.pruned is not None:
            out["pruned_teacher"] = logits_of(self.pruned(pixel_values)).float()
            out["teacher_mix"] = self.mix(out["teacher"], out["pruned_teacher"])
        return out


def _forward_views(model: nn.Module, clean: torch.Tensor, augmented: torch.Tensor | None, fuse: bool):
    """Logits on the clean and augmented views; one forward over both when ``fuse`` (exact for eval-mode models)."""
    if augmented is None:
        return logits_of(model(clean)), None
    if fuse and clean.shape[1:] == augmented.shape[1:]:
        both = logits_of(model(torch.cat([clean, augmented])))
        return both[: clean.shape[0]], both[clean.shape[0] :]
    return logits_of(model(clean)), logits_of(model(augmented))
