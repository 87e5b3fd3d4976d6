"""``R2KDConfig``: ``transformers.TrainingArguments`` plus everything distillation needs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from transformers import TrainingArguments

from .augment import available_views
from .fields import FieldError, check_range, option
from .messages import invalid_choice
from .losses import available_losses, has_batch_wise_terms, hyper_parameter_names, validate_loss_kwargs
from .pruning.teacher import available_teacher_pruners
from .teacher import TEACHER_PRECISION_CHOICES

logger = logging.getLogger(__name__)
PRUNED_TEACHER_BN_MODES = ("batch_stats", "running_stats")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class R2KDConfig(TrainingArguments):
    r"""Training arguments for :class:`~r2kd_hf.R2KDTrainer`.

    Every ``TrainingArguments`` field works as usual. The defaults of ``remove_unused_columns`` (``False``: image
    pipelines built with ``set_transform`` need their raw columns) and ``label_names`` (``["labels"]``: plain timm
    modules do not declare ``labels`` in ``forward``) are changed so that image pipelines work out of the box.

    Args:
        loss_name: registered distillation loss (``r2kd``, ``dist``, ``kd``, ``dkd``, ``cmkd``, or your own);
            ``none`` trains with cross-entropy only (no teacher).
        temperature: softmax temperature ``T`` given to the loss.
        loss_kwargs: other hyper-parameters of the loss (e.g. ``{"rank_mode": "soft"}``), checked against its signature.
        ce_weight / kd_weight / aug_kd_weight: weights of the clean-view CE, clean-view KD and second-view KD sums.
        second_view: batch augmentation used as a second, KD-only view (reference: ``cutmix``).
        second_view_kwargs: options of that augmentation (e.g. ``{"alpha": 1.0}``).
        prune_teacher / teacher_prune_method / teacher_prune_amount / pruned_teacher_weight / pruned_teacher_bn:
            the R2KD pruned-teacher ensemble (reference: l1_unstructured, 0.1, 0.3, batch_stats).
        validate_teacher: evaluate the teacher on the eval split before training and warn when it is near chance.
        gather_across_processes: compute batch-wise loss terms over the global batch under multi-process training.
        fuse_teacher_views: run the teacher once over the clean and augmented views together (exact in eval mode).
        renormalize_teacher_inputs: re-normalise inputs on device when teacher and student normalisations differ.
        max_grad_norm / weight_decay_all_parameters: follow the reference trainer (no clipping, decay on all
            parameters); see ``r2kd_hf.reference`` for every default compared with the reference.
    """

    _VALID_DICT_FIELDS = TrainingArguments._VALID_DICT_FIELDS + ["loss_kwargs", "second_view_kwargs"]

    # Image-pipeline-friendly defaults (see the class docstring).
    remove_unused_columns: bool = option(False, "Keep raw dataset columns; image transforms applied with set_transform need them.")
    label_names: list[str] | None = option(help="Batch keys that hold the labels. Plain timm modules need this set explicitly.",
                                           factory=lambda: ["labels"])
    hub_strategy: str = option("end", "When to push: 'end' (one push of the finished student). Trainer's other strategies also "
                               "push its pickled training_args.bin, which r2kd_hf never publishes on its own.")
    logging_nan_inf_filter: bool = option(False, "Drop NaN/inf losses from the logged mean (transformers' default: True, which "
                                          "logs a diverged run's loss as a finite number). r2kd_hf logs what happened and "
                                          "stops the run instead (stop_on_nonfinite_loss).")
    stop_on_nonfinite_loss: bool = option(True, "Stop the run (exit 1) within a few steps of the loss becoming NaN or inf, "
                                          "before that state is logged, checkpointed, saved or pushed; the message names the "
                                          "steps, the last finite values and the usual causes.")
    save_on_signal: bool = option(True, "On SIGTERM or SIGINT (preemption, a scheduler's time limit, Ctrl-C), finish the step, "
                                  "write a checkpoint and stop with the signal's exit code (143/130); --resume_from_checkpoint "
                                  "last continues. A second signal stops at once.")
    # Optimisation defaults of the reference trainer (mdistiller), not of transformers (docs/reference_fidelity.md).
    max_grad_norm: float = option(0.0, "Gradient clipping norm; 0 disables it. The reference never clips (transformers' default is 1.0).")
    weight_decay_all_parameters: bool = option(True, "Apply weight_decay to every parameter, biases and norm weights included, "
                                               "as the reference's plain SGD does. False: transformers' grouping (no decay on biases "
                                               "and norm weights).")

    loss_name: str = option("r2kd", f"Distillation loss, by registry name: {', '.join(available_losses())}, or 'none' (CE only).")
    temperature: float = option(4.0, "Softmax temperature T of the distillation loss (> 0).")
    loss_kwargs: dict[str, Any] | str | None = option(help="Other loss hyper-parameters as a dict (JSON on the command line), e.g. "
                                                      "'{\"rank_mode\": \"soft\"}'.", factory=dict)
    ce_weight: float = option(1.0, "Weight of cross-entropy on the clean view (reference 1).")
    kd_weight: float = option(1.0, "Weight of the distillation terms on the clean view.")
    aug_kd_weight: float = option(1.0, "Weight of the distillation terms on the second view.")
    second_view: str = option("none", f"Second, augmented view that gets the KD terms only: {', '.join(available_views())} (or one "
                              "you register).")
    second_view_kwargs: dict[str, Any] | str | None = option(help="Options of the second-view augmentation, e.g. '{\"alpha\": 1.0}'.",
                                                             factory=dict)
    prune_teacher: bool = option(False, "Distil from a mix of the teacher and a pruned copy of it (R2KD).")
    teacher_prune_method: str = option("l1_unstructured", f"How the teacher copy is pruned: {', '.join(available_teacher_pruners())} "
                                       "(reference: l1_unstructured, layer-wise).")
    teacher_prune_amount: float = option(0.1, "Fraction of weights (or channels, for 'structured') removed, in (0, 1). Reference 0.1.")
    pruned_teacher_weight: float = option(0.3, "Share w_p of the pruned teacher in the target logits (1-w_p)*z_t + w_p*z_p, in [0, 1). "
                                          "Reference 0.3.")
    pruned_teacher_bn: str = option("batch_stats", "BatchNorm of the pruned teacher: 'batch_stats' (reference code: train mode) or "
                                    "'running_stats' (eval mode).")
    validate_teacher: bool = option(True, "Evaluate the teacher on the eval split before training; warn loudly near chance.")
    teacher_validation_max_batches: int | None = option(None, "Evaluate the teacher on at most this many eval batches (None: the "
                                                        "whole split).")
    gather_across_processes: bool = option(True, "Under multi-process training, compute the loss over the global batch (gathered "
                                           "logits).")
    fuse_teacher_views: bool = option(True, "One teacher forward over clean + augmented views (exact for an eval-mode teacher).")
    renormalize_teacher_inputs: bool = option(True, "Re-normalise inputs for the teacher when its timm data config differs from the "
                                              "student's.")

    # The fast path (docs/fast_path_and_gpus.md). Defaults keep the reference's fp32, eager, NCHW teachers.
    teacher_precision: str = option("fp32", "Precision of the teacher forwards (autocast): fp32 (reference), bf16, fp16, or auto "
                                    "(bf16 where the accelerator supports it, else fp32). Targets stay fp32. Unavailable here: one "
                                    "warning, fp32.")
    channels_last: bool = option(False, "Channels-last memory format for the student, the teachers and the inputs of convolutional "
                                 "networks (faster convolutions on GPUs with tensor cores and on many CPUs).")
    compile_teachers: bool = option(False, "torch.compile the teacher and its pruned copy, once, before any accelerate/DDP wrapping. "
                                    "If compiling fails on this machine (e.g. no C compiler for inductor): one warning, eager teachers.")
    teacher_compile_mode: str = option("default", f"torch.compile mode of the teachers: {', '.join(COMPILE_MODES)}.")

    student_ema_decay: float | None = option(None, "Keep an exponential moving average of the student's weights, updated after every "
                                             "optimiser step (ema = d*ema + (1-d)*w; e.g. 0.999), evaluated beside the live weights "
                                             "(eval_ema_* metrics) and saved in every checkpoint. Off when unset.")
    save_ema_student: bool = option(False, "Save (and push) the EMA weights as the student at the end (needs student_ema_decay).")

    lr_decay_epochs: list[float] | None = option(None, "Multiply the learning rate by lr_decay_rate at these epochs (step schedule of "
                                                 "the KD papers, e.g. 150 180 210). It replaces lr_scheduler_type (constant or "
                                                 "the default linear; no warm-up).")
    lr_decay_rate: float = option(0.1, "Factor applied at each of lr_decay_epochs.")

    def __post_init__(self) -> None:
        if not self.dataloader_num_workers and (self.dataloader_prefetch_factor is not None or self.dataloader_persistent_workers):
            # a recipe's worker settings (224 px) overridden with --dataloader_num_workers 0: they have nothing to apply to
            logger.info("dataloader_num_workers=0: dataloader_prefetch_factor and dataloader_persistent_workers are ignored.")
            self.dataloader_prefetch_factor, self.dataloader_persistent_workers = None, False
        self.loss_name = str(self.loss_name).lower()
        for name in ("loss_kwargs", "second_view_kwargs"):
            setattr(self, name, _as_dict(name, getattr(self, name)))
        check_distillation_fields(self)  # first, once: one message per bad value, before TrainingArguments' own checks
        super().__post_init__()
        if self.push_to_hub and str(getattr(self.hub_strategy, "value", self.hub_strategy)) != "end":
            logger.warning(
                "hub_strategy=%s pushes during training, and Trainer then uploads training_args.bin (a pickle) with the "
                "model. Keep hub_strategy='end' to publish only pickle-free files.", self.hub_strategy,
            )

    @property
    def uses_teacher(self) -> bool:
        return self.loss_name != "none"

    def loss_hyper_parameters(self) -> dict[str, Any]:
        """``loss_kwargs`` plus ``temperature`` when the selected loss takes one."""
        kwargs = dict(self.loss_kwargs)
        if "temperature" in hyper_parameter_names(self.loss_name):
            kwargs["temperature"] = self.temperature
        return kwargs


def _as_dict(name: str, value: Any) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"{name} must be a JSON object, e.g. '{{\"alpha\": 1.0}}'; could not parse {value!r} ({error}).") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict (or a JSON object string), got {value!r}.")
    return value


def check_distillation_fields(values: R2KDConfig) -> None:
    """Validate the fields a run cannot train with (called once, by ``R2KDConfig.__post_init__``)."""
    check_training_ranges(values)
    loss_name, loss_kwargs = values.loss_name, values.loss_kwargs
    if values.lr_decay_epochs:
        if sorted(values.lr_decay_epochs) != list(values.lr_decay_epochs) or min(values.lr_decay_epochs) <= 0:
            raise ValueError(f"lr_decay_epochs must be increasing positive epochs, got {values.lr_decay_epochs}.")
        # the step schedule replaces Trainer's: another schedule or a warm-up asked beside it would be silently dropped
        schedule = str(getattr(values.lr_scheduler_type, "value", values.lr_scheduler_type))
        if schedule not in ("constant", "linear"):  # linear: TrainingArguments' default, replaced as documented
            raise FieldError("lr_scheduler_type", schedule, "lr_decay_epochs builds the step schedule itself",
                             "Set lr_scheduler_type constant to keep the step schedule, or drop lr_decay_epochs to use "
                             f"{schedule}.")
        if values.warmup_steps:
            raise FieldError("warmup_steps", values.warmup_steps, "the step schedule of lr_decay_epochs has no warm-up "
                             "(the reference has none)", "Set warmup_steps 0, or drop lr_decay_epochs and use "
                             "lr_scheduler_type with warmup_steps.")
    if loss_name != "none" and loss_name not in available_losses():
        raise ValueError(invalid_choice("distillation loss", values.loss_name, ["none", *available_losses()],
                                        "'none' trains with cross-entropy only; register your own loss with "
                                        "@r2kd_hf.register_loss('name')."))
    if loss_name != "none":
        if "temperature" in loss_kwargs:
            raise ValueError("Set the temperature with the `temperature` field, not inside loss_kwargs.")
        hyper = dict(loss_kwargs)
        if "temperature" in hyper_parameter_names(loss_name):
            hyper["temperature"] = values.temperature
        validate_loss_kwargs(loss_name, hyper)
        if values.gradient_accumulation_steps > 1 and has_batch_wise_terms(loss_name, hyper):
            logger.warning(
                "loss_name=%s couples the samples of a batch (per-class correlations), and gradient_accumulation_steps=%d "
                "computes it over micro-batches of %d, not over the %d images of an update: the method changes (the "
                "reference computes it over its batch of 64 in one forward). Prefer a larger per_device_train_batch_size, "
                "or more processes (gather_across_processes gathers the global batch).", loss_name,
                values.gradient_accumulation_steps, values.per_device_train_batch_size,
                values.per_device_train_batch_size * values.gradient_accumulation_steps)
    _check_choice("second_view", values.second_view, tuple(available_views()))
    _check_choice("teacher_prune_method", values.teacher_prune_method, tuple(available_teacher_pruners()))
    _check_choice("pruned_teacher_bn", values.pruned_teacher_bn, PRUNED_TEACHER_BN_MODES)
    _check_choice("teacher_precision", values.teacher_precision, TEACHER_PRECISION_CHOICES)
    _check_choice("teacher_compile_mode", values.teacher_compile_mode, COMPILE_MODES)
    if loss_name == "none" and (values.prune_teacher or values.second_view != "none"):
        raise ValueError("loss_name='none' trains without a teacher: set prune_teacher=False and second_view='none'.")


def check_training_ranges(values: Any) -> None:
    """The numeric fields a run cannot train with, refused before anything is built (each names its allowed range)."""
    import os

    if values.max_steps is not None and values.max_steps != -1:
        check_range(values, "max_steps", 1, hint="Use -1 (the default) to train for num_train_epochs.")
    else:
        check_range(values, "num_train_epochs", 0, low_open=True, hint="Or set max_steps to a positive number of steps.")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        check_range(values, name, 1)
    check_range(values, "learning_rate", 0, low_open=True, hint="The reference uses 0.05 (SGD) on CIFAR.")
    check_range(values, "weight_decay", 0)
    check_range(values, "max_grad_norm", 0, hint="0 disables clipping (the reference).")
    check_range(values, "warmup_steps", 0)
    check_range(values, "lr_decay_rate", 0, 1, low_open=True)
    check_range(values, "temperature", 0, low_open=True, hint="The reference value is 4.")
    for name in ("ce_weight", "kd_weight", "aug_kd_weight"):
        check_range(values, name, 0)
    check_range(values, "teacher_prune_amount", 0, 1, low_open=True, high_open=True, hint="Reference 0.1.")
    check_range(values, "pruned_teacher_weight", 0, 1, high_open=True, hint="Reference 0.3.")
    for name in ("logging_steps", "save_steps", "eval_steps"):
        value = getattr(values, name, None)
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise FieldError(name, value, "it must be > 0 (a step count, or a fraction of the run below 1)")
    if values.student_ema_decay is not None:
        check_range(values, "student_ema_decay", 0, 1, low_open=True, high_open=True, hint="timm's default is 0.9998.")
    if values.save_ema_student and values.student_ema_decay is None:
        raise FieldError("save_ema_student", True, "it needs student_ema_decay (the average to save)")
    output_dir = getattr(values, "output_dir", None)
    if output_dir and os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FieldError("output_dir", output_dir, "it names an existing file, not a folder",
                         "Give a new or existing folder (the run writes its model, card and records there).")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(invalid_choice(name, value, choices))
