"""The distillation target: a frozen teacher, optionally mixed with a pruned copy of itself (R2KD).

:class:`TeacherEnsemble` is the one object the trainer asks for targets. The pruning callback hands it the pruned
copy (:meth:`TeacherEnsemble.add_pruned_copy`) before the first step; nothing else changes it during training.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import nn

from .introspection import logits_of

logger = logging.getLogger(__name__)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
TEACHER_PRECISION_CHOICES = (*PRECISIONS, "auto")


def resolve_teacher_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the teacher forwards on ``device`` (``None``: fp32), falling back to fp32 with one
    warning where the device cannot run the asked precision. ``auto``: bf16 on accelerators that support it, else fp32
    (on CPUs without bf16 units it is slower than fp32)."""
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        logger.info("teacher_precision=auto: fp32 teachers on %s (bf16 only where the accelerator supports it).", device)
        return None
    dtype = PRECISIONS[precision]
    if dtype is None:
        return None
    try:  # a tiny convolution tells whether autocast supports this dtype on this device
        with torch.autocast(device.type, dtype=dtype):
            probe = nn.functional.conv2d(torch.ones(1, 1, 3, 3, device=device), torch.ones(1, 1, 1, 1, device=device))
        if probe.dtype != dtype:
            raise RuntimeError(f"autocast returned {probe.dtype}")
    except Exception as error:  # noqa: BLE001 - whatever the backend raises, the run goes on in fp32
        logger.warning("teacher_precision=%s is not available on %s (%s: %s); the teachers run in fp32.",
                       precision, device, type(error).__name__, str(error).splitlines()[0][:200])
        return None
    return dtype


class CompiledForward:
    """``torch.compile(module)`` that falls back to the eager module, with one warning, when compiling fails here.

    Only the first call may fall back (a missing C compiler or an unsupported backend shows there); a later failure
    is a real error and is raised. The eager module stays the one that is pruned, saved and inspected.
    """

    def __init__(self, module: nn.Module, mode: str = "default"):
        self.module, self.mode = module, mode
        self.compiled: Callable | None = torch.compile(module, mode=None if mode == "default" else mode)
        self.calls = 0

    def __call__(self, pixel_values: torch.Tensor):
        if self.compiled is not None:
            try:
                if not self.calls:  # the first call compiles: tens of seconds before the first step, which look like a hang
                    logger.info("Compiling %s with torch.compile (mode %s): the first training step waits for it (about 30 s "
                                "on a CPU, minutes for large networks).", type(self.module).__name__, self.mode)
                out = self.compiled(pixel_values)
                self.calls += 1
                return out
            except Exception as error:  # noqa: BLE001
                if self.calls:
                    raise
                logger.warning("torch.compile of the teacher failed on this machine (%s: %s); the teachers run eager.",
                               type(error).__name__, str(error).splitlines()[0][:300] if str(error) else "")
                self.compiled = None
        return self.module(pixel_values)


class TeacherEnsemble(nn.Module):
    r"""Targets ``z̃ = (1 - w)·z_t + w·z_p`` from a frozen teacher ``t`` and, once added, its pruned copy ``p``.

    Reference behaviour (R2KD code): the teacher runs in eval mode; the pruned copy is left in train mode, so its
    BatchNorm uses batch statistics (``pruned_bn="batch_stats"``); ``"running_stats"`` keeps it in eval mode.

    Every forward runs under ``torch.inference_mode`` (no autograd records, no version counters); the targets are
    handed back as ordinary tensors, so the losses may save them for backward.

    Args:
        teacher: the frozen teacher (already placed on the training device).
        pruned_weight: ``w``, the pruned copy's share of the target logits (reference 0.3).
        pruned_bn: ``"batch_stats"`` (reference) or ``"running_stats"``.
        fuse_views: one teacher forward over the clean and augmented views together (exact for eval-mode models).
        precision: autocast dtype of the teacher forwards (``None``: fp32, the reference); the logits are fp32.
        compile_mode: ``torch.compile`` the teacher and the pruned copy with this mode (``None``: eager).
        module: the bare teacher module when ``teacher`` is a placement wrapper (a DeepSpeed inference engine): the
            pruning callback copies and prunes this one, never the wrapper.
        place: how the pruned copy is placed like the teacher (the trainer's own placement; default: as given).
    """

    def __init__(self, teacher: nn.Module, pruned_weight: float = 0.3, pruned_bn: str = "batch_stats", fuse_views: bool = True,
                 precision: torch.dtype | None = None, compile_mode: str | None = None, module: nn.Module | None = None,
                 place: Callable[[nn.Module], nn.Module] | None = None):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False)
        self.module = module if module is not None else teacher
        self.place = place or (lambda m: m)
        self.pruned: nn.Module | None = None
        self.pruning_report: dict[str, Any] | None = None
        self.pruned_weight, self.pruned_bn, self.fuse_views = pruned_weight, pruned_bn, fuse_views
        self.precision, self.compile_mode = precision, compile_mode
        # compiled once, here and in add_pruned_copy, on the bare modules: never an accelerate/DDP wrapper
        self._run_teacher = CompiledForward(self.teacher, compile_mode) if compile_mode else self.teacher
        self._run_pruned: Callable | None = None

    def add_pruned_copy(self, pruned: nn.Module, report: dict[str, Any]) -> None:
        """Use ``pruned`` in the target mix from now on (called once, by :class:`TeacherPruningCallback`)."""
        if self.pruned is not None:
            raise RuntimeError("This ensemble already has a pruned teacher; the teacher is pruned once per run.")
        self.pruned = self.place(pruned.requires_grad_(False))
        self.pruning_report = report
        self._run_pruned = CompiledForward(self.pruned, self.compile_mode) if self.compile_mode else self.pruned

    def _autocast(self, device: torch.device):
        # fp32 teachers stay fp32 inside the student's mixed precision (Trainer's bf16/fp16 autocast wraps compute_loss)
        if self.precision is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.precision)

    def train(self, mode: bool = True) -> TeacherEnsemble:
        # The teacher is always in eval mode; the pruned copy follows the reference's BatchNorm choice.
        self.teacher.eval()
        if self.pruned is not None:
            self.pruned.train(self.pruned_bn == "batch_stats")
        return self

    def mix(self, teacher_logits: torch.Tensor, pruned_logits: torch.Tensor) -> torch.Tensor:
        return torch.lerp(teacher_logits.float(), pruned_logits.float(), self.pruned_weight)

    def targets(self, clean: torch.Tensor, augmented: torch.Tensor | None = None):
        """``(target on clean, target on augmented or None, raw teacher logits on clean)``, fp32."""
        self.train()
        with torch.inference_mode(), self._autocast(clean.device):
            teacher_clean, teacher_aug = _forward_views(self._run_teacher, clean, augmented, self.fuse_views)
            if self.pruned is None:
                out = (teacher_clean.float(), None if teacher_aug is None else teacher_aug.float(), teacher_clean.float())
            else:
                # Batch statistics depend on the batch, so the reference mode keeps the two views in separate forwards.
                fuse_pruned = self.fuse_views and self.pruned_bn == "running_stats"
                pruned_clean, pruned_aug = _forward_views(self._run_pruned, clean, augmented, fuse_pruned)
                mix_aug = self.mix(teacher_aug, pruned_aug) if augmented is not None else None
                out = (self.mix(teacher_clean, pruned_clean), mix_aug, teacher_clean.float())
        return tuple(None if t is None else t.clone() for t in out)  # inference tensors -> ordinary tensors

    def predictions(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of the teacher, and of the pruned copy and the mix when there is one (for validation)."""
        self.train()
        with torch.inference_mode(), self._autocast(pixel_values.device):
            out = {"teacher": logits_of(self._run_teacher(pixel_values)).float()}
            if self.pruned is not None:
                out["pruned_teacher"] = logits_of(self._run_pruned(pixel_values)).float()
                out["teacher_mix"] = self.mix(out["teacher"], out["pruned_teacher"])
        return {k: v.clone() for k, v in out.items()}


def _forward_views(model: Callable, clean: torch.Tensor, augmented: torch.Tensor | None, fuse: bool):
    """Logits on the clean and augmented views; one forward over both when ``fuse`` (exact for eval-mode models)."""
    if augmented is None:
        return logits_of(model(clean)), None
    if fuse and clean.shape[1:] == augmented.shape[1:]:
        both = logits_of(model(torch.cat([clean, augmented])))
        return both[: clean.shape[0]], both[clean.shape[0] :]
    return logits_of(model(clean)), logits_of(model(augmented))
