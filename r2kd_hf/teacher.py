"""The teacher of a run: one object that owns what a teacher is in r2kd_hf.

:class:`Teacher` is built from a module or any model spec (:meth:`Teacher.build`), frozen, checked against the
student's and the dataset's classes, fed inputs re-normalised for it, kept in the student's memory format, run in its
precision (and compiled when asked), and mixed with the pruned copy of itself that :class:`TeacherPruningCallback`
adds before the first step. The trainer holds it; the callbacks use it; nothing else wraps a teacher.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import nn

from .checks import check_label_agreement
from .introspection import data_config_of, logits_of
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


def input_transform(teacher: nn.Module, student_config: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(scale, shift)`` that turn inputs normalised for the student into inputs normalised for the teacher, or
    ``None`` when both data configs are not known or their mean/std agree.

    ``x_teacher = (x * std_s + mean_s - mean_t) / std_t = x * scale + shift`` (one FMA on the device).
    """
    teacher_config = data_config_of(teacher)
    if teacher_config is None or student_config is None:
        return None
    if all(abs(a - b) < 1e-6 for key in ("mean", "std") for a, b in zip(teacher_config[key], student_config[key])):
        return None
    s_mean, s_std = torch.tensor(student_config["mean"]), torch.tensor(student_config["std"])
    t_mean, t_std = torch.tensor(teacher_config["mean"]), torch.tensor(teacher_config["std"])
    return (s_std / t_std).view(1, -1, 1, 1), ((s_mean - t_mean) / t_std).view(1, -1, 1, 1)


class Teacher(nn.Module):
    r"""A frozen teacher and, once added, its pruned copy: targets ``z̃ = (1 - w)·z_t + w·z_p``.

    Reference behaviour (R2KD code): the teacher runs in eval mode; the pruned copy is left in train mode, so its
    BatchNorm uses batch statistics (``pruned_bn="batch_stats"``); ``"running_stats"`` keeps it in eval mode.

    Every forward runs under ``torch.inference_mode`` (no autograd records, no version counters); the targets are
    handed back as ordinary tensors, so the losses may save them for backward. Calling the object gives the
    teacher's logits for inputs normalised for the student.

    Args:
        module: the teacher network (frozen here; the pruning callback copies and prunes this bare module).
        pruned_weight: ``w``, the pruned copy's share of the target logits (reference 0.3).
        pruned_bn: ``"batch_stats"`` (reference) or ``"running_stats"``.
        fuse_views: one teacher forward over the clean and augmented views together (exact for eval-mode models).
        precision: autocast dtype of the teacher forwards (``None``: fp32, the reference); the logits are fp32.
        compile_mode: ``torch.compile`` the teacher and the pruned copy with this mode (``None``: eager).
        renormalize: ``(scale, shift)`` from :func:`input_transform` (``None``: the inputs are fed as they come).
        channels_last: keep the teacher (and its pruned copy) in channels-last memory format.
    """

    def __init__(self, module: nn.Module, pruned_weight: float = 0.3, pruned_bn: str = "batch_stats", fuse_views: bool = True,
                 precision: torch.dtype | None = None, compile_mode: str | None = None,
                 renormalize: tuple[torch.Tensor, torch.Tensor] | None = None, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.module = self._formatted(module.eval().requires_grad_(False))
        self.placed: nn.Module = self.module  # what runs: the module, or the trainer's placement of it (DeepSpeed)
        self.pruned: nn.Module | None = None
        self.pruning_report: dict[str, Any] | None = None
        self.pruned_weight, self.pruned_bn, self.fuse_views = pruned_weight, pruned_bn, fuse_views
        self.precision, self.compile_mode = precision, compile_mode
        self.renormalize = renormalize
        self._place: Callable[[nn.Module], nn.Module] = lambda m: m
        # compiled once, here (again in place()) and in add_pruned_copy, on bare modules: never an accelerate/DDP wrapper
        self._run_teacher = self._compiled(self.placed)
        self._run_pruned: Callable | None = None

    @classmethod
    def build(cls, spec: str | nn.Module, student: nn.Module, *, label_names: list[str] | None = None,
              renormalize: bool = True, revision: str | None = None, arch: str | None = None, **options: Any) -> Teacher:
        """The teacher of a run, from a module (used as it is) or any of :data:`r2kd_hf.loading.MODEL_SPEC_FORMS`:
        loaded, frozen, checked against the student's and the dataset's classes, and fed inputs re-normalised for it
        when its data config's mean/std differ from the student's (``renormalize``). A checkpoint file records no
        normalisation: it is taken to share the student's (the run's data config). ``options``: :class:`Teacher`'s."""
        from .loading import load_model

        student_config = data_config_of(student)
        module = load_model(spec, role="teacher", revision=revision, arch=arch, data_config=student_config)
        check_label_agreement(student, module, label_names)
        return cls(module, renormalize=input_transform(module, student_config) if renormalize else None, **options)

    def _formatted(self, module: nn.Module) -> nn.Module:
        return module.to(memory_format=torch.channels_last) if self.channels_last and is_convolutional(module) else module

    def _compiled(self, module: nn.Module) -> Callable:
        return CompiledForward(module, self.compile_mode) if self.compile_mode else module

    def place(self, place: Callable[[nn.Module], nn.Module]) -> Teacher:
        """Run the teacher (and the pruned copy added later) as ``place`` prepares it: the trainer's device placement,
        in evaluation mode (never DDP-wrapped), or a DeepSpeed inference engine. The bare module is what is pruned."""
        self._place = place
        self.placed = place(self.module)
        self._run_teacher = self._compiled(self.placed)
        return self

    def add_pruned_copy(self, pruned: nn.Module, report: dict[str, Any]) -> None:
        """Use ``pruned`` in the target mix from now on (called once, by :class:`TeacherPruningCallback`)."""
        if self.pruned is not None:
            raise RuntimeError("This teacher already has a pruned teacher copy; the teacher is pruned once per run.")
        self.pruned = self._place(self._formatted(pruned.requires_grad_(False)))
        self.pruning_report = report
        self._run_pruned = self._compiled(self.pruned)

    def _autocast(self, device: torch.device):
        # fp32 teachers stay fp32 inside the student's mixed precision (Trainer's bf16/fp16 autocast wraps compute_loss)
        if self.precision is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.precision)

    def _teacher_inputs(self, pixel_values: torch.Tensor | None) -> torch.Tensor | None:
        if pixel_values is None or self.renormalize is None:
            return pixel_values
        scale, shift = self.renormalize
        if scale.device != pixel_values.device:  # moved once, on the first batch
            self.renormalize = scale, shift = scale.to(pixel_values.device), shift.to(pixel_values.device)
        return pixel_values * scale.to(pixel_values.dtype) + shift.to(pixel_values.dtype)

    def train(self, mode: bool = True) -> Teacher:
        # The teacher is always in eval mode; the pruned copy follows the reference's BatchNorm choice.
        self.placed.eval()
        if self.pruned is not None:
            self.pruned.train(self.pruned_bn == "batch_stats")
        return self

    def mix(self, teacher_logits: torch.Tensor, pruned_logits: torch.Tensor) -> torch.Tensor:
        return torch.lerp(teacher_logits.float(), pruned_logits.float(), self.pruned_weight)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The teacher's fp32 logits for inputs normalised for the student."""
        self.train()
        with torch.inference_mode(), self._autocast(pixel_values.device):
            logits = logits_of(self._run_teacher(self._teacher_inputs(pixel_values))).float()
        return logits.clone()

    def targets(self, clean: torch.Tensor, augmented: torch.Tensor | None = None):
        """``(target on clean, target on augmented or None, raw teacher logits on clean)``, fp32."""
        self.train()
        with torch.inference_mode(), self._autocast(clean.device):
            clean, augmented = self._teacher_inputs(clean), self._teacher_inputs(augmented)
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
            inputs = self._teacher_inputs(pixel_values)
            out = {"teacher": logits_of(self._run_teacher(inputs)).float()}
            if self.pruned is not None:
                out["pruned_teacher"] = logits_of(self._run_pruned(inputs)).float()
                out["teacher_mix"] = self.mix(out["teacher"], out["pruned_teacher"])
        return {k: v.clone() for k, v in out.items()}


TeacherEnsemble = Teacher  # the name of earlier releases


def is_convolutional(model: nn.Module) -> bool:
    """Whether channels-last memory format can matter: the model has a 2-d convolution."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _forward_views(model: Callable, clean: torch.Tensor, augmented: torch.Tensor | None, fuse: bool):
    """Logits on the clean and augmented views; one forward over both when ``fuse`` (exact for eval-mode models)."""
    if augmented is None:
        return logits_of(model(clean)), None
    if fuse and clean.shape[1:] == augmented.shape[1:]:
        both = logits_of(model(torch.cat([clean, augmented])))
        return both[: clean.shape[0]], both[clean.shape[0] :]
    return logits_of(model(clean)), logits_of(model(augmented))
