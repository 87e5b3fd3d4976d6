"""``R2KDTrainer``: a ``transformers.Trainer`` whose loss distils a student from a frozen (and pruned) teacher.

The trainer takes ready modules (:mod:`r2kd_hf.loading` builds them) and keeps to the distillation step, its logging
and evaluation. Public ``Trainer`` hooks it overrides, and why:

* ``compute_loss``: the distillation step (below);
* ``log``: adds every loss term, averaged over the logging interval;
* ``create_scheduler``: the papers' step schedule (``lr_decay_epochs``);
* ``get_decay_parameter_names``: weight decay on every parameter, as the reference's SGD;
* ``save_model`` / ``create_model_card`` / ``push_to_hub``: one pickle-free student format and a card that says
  how the student was made.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

from .augment import build_second_view
from .callbacks import TeacherPruningCallback, TeacherValidationCallback
from .collate import ImageClassificationCollator
from .config import R2KDConfig
from .distributed import gather_batch, world_size
from .losses import bind_loss
from .metrics import topk_accuracy
from .introspection import DEFAULT_MEAN, DEFAULT_STD, data_config_of, logits_of, unwrap
from .faults import NonFiniteLossCallback, Preempted, PreemptionCallback
from .run_record import RunRecord
from .saving import save_classifier
from .checks import check_label_agreement, dataset_label_names
from .loading import load_model
from .teacher import Teacher, is_convolutional, resolve_teacher_precision

logger = logging.getLogger(__name__)
TRAINING_ARGS_JSON = "training_args.json"


class R2KDTrainer(Trainer):
    r"""Distil ``model`` (the student) from ``teacher_model`` with a registered loss (R2KD by default).

    Per training step, as in the R2KD reference code:

    ``loss = ce_weight·CE(z_s(x), y) + kd_weight·KD(z_s(x), z̃_t(x)) + aug_kd_weight·KD(z_s(x'), z̃_t(x'))``

    where ``x'`` is the optional second view (``second_view``), which gets the distillation terms only, and
    ``z̃_t = (1-w)·z_t + w·z_p`` mixes in the pruned teacher once :class:`TeacherPruningCallback` has added it
    (``prune_teacher=True`` adds that callback). Every term is logged.

    The teacher is frozen, in eval mode on every step, prepared by the accelerator in evaluation mode (no DDP
    wrapper, never in the optimizer) and not run during evaluation. Under multi-process training the loss is
    computed on the global batch (``gather_across_processes``).

    Args:
        model: the student, an ``nn.Module`` (a string is loaded with :func:`r2kd_hf.load_model`).
        args: an :class:`R2KDConfig`.
        teacher_model: the teacher: an ``nn.Module``, or any spec :func:`r2kd_hf.load_model` reads (folder, Hub id,
            timm name, reference checkpoint). Built once, as a :class:`r2kd_hf.teacher.Teacher`.
        teacher_revision / teacher_arch: the Hub revision of a teacher spec, the architecture of a checkpoint file.
        data_config: the run's data config (``mean``/``std`` for the policy views); default: the student's.
        lineage: facts for the model card (``teacher``, ``teacher_revision``, ``dataset``, ``eval_split``, ``recipe``...).
        Other arguments are those of ``transformers.Trainer``.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean: let Trainer divide by GA steps

    def __init__(
        self,
        model: nn.Module | str | None = None,
        args: R2KDConfig | None = None,
        teacher_model: nn.Module | str | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        callbacks: list | None = None,
        compute_metrics=None,
        data_config: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        teacher_revision: str | None = None,
        teacher_arch: str | None = None,
        **kwargs,
    ):
        args = args if args is not None else R2KDConfig(output_dir="r2kd-output")
        if not isinstance(args, R2KDConfig):
            raise TypeError(f"args must be an R2KDConfig (got {type(args).__name__}); R2KDConfig accepts every TrainingArguments field.")
        if model is None:
            raise ValueError("Pass the student as `model=` (an nn.Module; strings go through r2kd_hf.load_model).")
        label_names = dataset_label_names(train_dataset)
        model = self._student(args, model, label_names)
        self.lineage = dict(lineage or {})
        if dataset_name_of(train_dataset):
            self.lineage.setdefault("dataset", dataset_name_of(train_dataset))
        self.files_to_publish: set[str] = set()  # what push_to_hub uploads: the files this run wrote (names in output_dir)
        self.run_record = RunRecord()  # what the end of the run adds (record_run): ONNX, robustness, its files
        teacher = self._build_teacher(args, teacher_model, model, label_names, teacher_revision, teacher_arch)

        self._loss_finite: torch.Tensor | None = None  # device-side: every training loss so far was finite
        callbacks, pruning = self._run_callbacks(args, list(callbacks or []), teacher)
        super().__init__(
            model=model, args=args, data_collator=data_collator or ImageClassificationCollator(), train_dataset=train_dataset,
            eval_dataset=eval_dataset, callbacks=callbacks, compute_metrics=compute_metrics or topk_accuracy, **kwargs,
        )
        self.teacher = self._attach_teacher(teacher, pruning, eval_dataset) if teacher is not None else None
        data_config = data_config or data_config_of(model) or {}
        self.data_config = data_config  # what a saved student records: how it was fed (a transformers model: its processor)
        self.second_view = build_second_view(
            args.second_view, data_config.get("mean", DEFAULT_MEAN), data_config.get("std", DEFAULT_STD), **args.second_view_kwargs
        )
        self.distillation_loss = bind_loss(args.loss_name, **args.loss_hyper_parameters()) if args.uses_teacher else None
        self._pending_terms: dict[str, torch.Tensor] = {}
        self._pending_steps = 0
        self.skipped_images = 0  # unreadable images dropped by the collator (skip_corrupt_images=True)
        self.student_ema = None
        if args.student_ema_decay is not None:
            from .ema import StudentEMA, StudentEMACallback

            self.student_ema = StudentEMA(self._bare_student(), args.student_ema_decay)
            self.add_callback(StudentEMACallback(self.student_ema, lambda m: unwrap(self.accelerator.unwrap_model(m))))
        # the small-image path: uint8 batches, augmented here on the device (r2kd_hf.small_images)
        self.device_transform = getattr(train_dataset, "device_transform", None)
        self._augment_counter = (-1, 0)

    def _student(self, args: R2KDConfig, model: nn.Module | str, label_names: list[str] | None) -> nn.Module:
        """The student module (strings through :func:`r2kd_hf.load_model`), in the run's memory format."""
        model = self._in_memory_format(args, load_model(model, role="student", num_labels=len(label_names) if label_names else None))
        if args.label_smoothing_factor and not hasattr(model, "config"):
            # Trainer.__init__ reads model.config.problem_type when label smoothing is on (AttributeError otherwise)
            raise ValueError("label_smoothing_factor needs a model with a transformers config: build the student with "
                             "r2kd_hf.loading.create_timm_classifier(name, num_labels, id2label) or a transformers model "
                             "class, or set label_smoothing_factor 0.")
        return model

    def _run_callbacks(self, args: R2KDConfig, callbacks: list, teacher: Teacher | None) -> tuple[list, list]:
        """``(callbacks, pruning callbacks)``: the user's plus the run's own (preemption, non-finite loss, pruning)."""
        self.preemption = PreemptionCallback() if args.save_on_signal else None
        callbacks += [c for c in (self.preemption,) if c is not None]
        if args.stop_on_nonfinite_loss:
            callbacks.append(NonFiniteLossCallback(self.losses_were_finite, args.output_dir))
        pruning = [c for c in callbacks if isinstance(c, TeacherPruningCallback)]
        if teacher is not None and args.prune_teacher and not pruning:
            pruning = [TeacherPruningCallback()]
            callbacks += pruning
        return callbacks, pruning

    def _in_memory_format(self, args: R2KDConfig, model: nn.Module) -> nn.Module:
        """``channels_last`` for convolutional students, before the optimizer and any wrapper see the parameters."""
        self.channels_last = args.channels_last and is_convolutional(model)
        if args.channels_last and not self.channels_last:
            logger.warning("channels_last=True has no effect on %s: it has no 2-d convolution.", type(model).__name__)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _build_teacher(self, args: R2KDConfig, teacher_model, student, label_names, revision, arch) -> Teacher | None:
        """The run's :class:`~r2kd_hf.teacher.Teacher`, built once, with the fast-path options (placed after
        ``Trainer.__init__``, by :meth:`_attach_teacher`)."""
        if not args.uses_teacher:
            check_label_agreement(student, None, label_names)
            return None
        if teacher_model is None:
            raise ValueError(f"loss_name={args.loss_name!r} needs a `teacher_model`; use loss_name='none' to train with CE only.")
        self.lineage.setdefault("teacher", teacher_model if isinstance(teacher_model, str) else describe_source(teacher_model))
        return Teacher.build(
            teacher_model, student, label_names=label_names, renormalize=args.renormalize_teacher_inputs, revision=revision,
            arch=arch, pruned_weight=args.pruned_teacher_weight, pruned_bn=args.pruned_teacher_bn, fuse_views=args.fuse_teacher_views,
            precision=resolve_teacher_precision(args.teacher_precision, args.device), channels_last=self.channels_last,
            compile_mode=args.teacher_compile_mode if args.compile_teachers else None,
        )

    def _attach_teacher(self, teacher: Teacher, pruning: list, eval_dataset) -> Teacher:
        """Placed like the student (never DDP-wrapped); the pruning and validation callbacks get it."""
        teacher.place(self._place_frozen)
        for callback in pruning:
            callback.teacher = callback.teacher or teacher
        if self.args.validate_teacher and eval_dataset is not None:
            self.add_callback(TeacherValidationCallback(
                teacher, eval_dataset, self.args.per_device_eval_batch_size, self.args.teacher_validation_max_batches, self.data_collator
            ))
        return teacher

    def _bare_student(self) -> nn.Module:
        return unwrap(self.accelerator.unwrap_model(self.model))

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """``Trainer.train``; on resume, the student's EMA continues from the checkpoint's ``student_ema.safetensors``."""
        if self.student_ema is not None and resume_from_checkpoint:
            from transformers.trainer_utils import get_last_checkpoint

            folder = get_last_checkpoint(self.args.output_dir) if resume_from_checkpoint is True else resume_from_checkpoint
            if folder and not self.student_ema.load(folder):
                logger.warning("%s holds no student_ema.safetensors: the EMA restarts from the initial weights.", folder)
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial,
                               ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)
        if self.preemption is not None and self.preemption.signum:  # stopped early by a signal, after a checkpoint
            from transformers.trainer_utils import get_last_checkpoint

            raise Preempted(self.preemption.signum, self.state.global_step, get_last_checkpoint(self.args.output_dir)
                            if os.path.isdir(self.args.output_dir) else None)
        return output

    def losses_were_finite(self) -> bool:
        """Whether every training loss so far was finite, on every process (one host sync)."""
        if self._loss_finite is None:
            return True
        flag = self._loss_finite.float().reshape(1)
        if world_size() > 1:  # every process stops at the same step
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item() > 0.5)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """``Trainer.evaluate``, plus the same metrics of the student's EMA (``eval_ema_*``) when one is kept."""
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.student_ema is not None and metric_key_prefix == "eval":
            with self.student_ema.applied_to(self._bare_student()):
                metrics.update(super().evaluate(eval_dataset, ignore_keys, "eval_ema"))
        return metrics

    def _place_frozen(self, module: nn.Module) -> nn.Module:
        if self.is_deepspeed_enabled:
            from .distributed import prepare_deepspeed_inference

            return prepare_deepspeed_inference(module, self.accelerator)
        return self.accelerator.prepare_model(module, evaluation_mode=True)

    # ------------------------------------------------------------------ the distillation step
    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None):
        pixel_values, labels = inputs["pixel_values"], inputs.get("labels")
        if "skipped_images" in inputs:
            self.skipped_images += int(inputs["skipped_images"])
        if pixel_values.dtype == torch.uint8:
            pixel_values = self._device_augment(pixel_values, model.training)
        if self.channels_last and pixel_values.dim() == 4:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        student_logits = logits_of(model(pixel_values))
        if not model.training:  # evaluation: the teacher is skipped, the loss is plain CE
            loss = self.cross_entropy(student_logits, labels) if labels is not None else student_logits.new_zeros(())
        else:
            loss, terms = self.distillation_step(model, pixel_values, labels, student_logits)
            self._remember(terms)
            finite = torch.isfinite(loss.detach())  # no host sync here: read at log/save steps (r2kd_hf.faults)
            self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite
        return (loss, {"logits": student_logits}) if return_outputs else loss

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE of the labelled (clean) view in fp32, with ``label_smoothing_factor`` as ``Trainer`` applies it
        (reference: 0, no smoothing)."""
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.args.label_smoothing_factor)

    def _device_augment(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """The small-image path's transform on the device; its randomness is a function of (seed, step, process,
        micro-batch), so a resumed run draws the same crops and flips as an uninterrupted one."""
        if self.device_transform is None:
            raise ValueError("The batch holds uint8 images but the training dataset carries no device_transform; build it "
                             "with r2kd_hf.small_images.in_memory_split, or convert images with r2kd_hf.data.prepare_dataset.")
        generator = None
        if train:
            step, micro = self._augment_counter
            micro = micro + 1 if step == self.state.global_step else 0
            self._augment_counter = (self.state.global_step, micro)
            seed = hash((self.args.seed, self.state.global_step, micro, self.args.process_index)) % (2**63)
            generator = torch.Generator(device=images.device).manual_seed(seed)
        return self.device_transform(images, train=train, generator=generator)

    def distillation_step(self, model, pixel_values, labels, student_logits) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss, named terms)`` of one training batch: CE + KD on the clean view, KD on the second view."""
        args, gather = self.args, self.args.gather_across_processes and world_size() > 1
        if self.teacher is None:  # cross-entropy only (teachers, baselines)
            s, y = gather_batch(student_logits, labels, equal_sizes=self._even_batches) if gather else (student_logits, labels)
            ce = self.cross_entropy(s, y)
            return args.ce_weight * ce, {"ce": ce}
        view, epoch = self.second_view, self.current_epoch_number
        picks_by_teacher = view is not None and view.needs_teacher_logits
        augmented = view(pixel_values) if view is not None and not picks_by_teacher else None
        target, target_aug, raw_teacher = self.teacher.targets(pixel_values, augmented)
        if picks_by_teacher:  # reference cutmixpick: ranked by the raw teacher's entropy on the clean images
            augmented = view(pixel_values, teacher_logits=raw_teacher)
            target_aug, _, _ = self.teacher.targets(augmented)

        s, t, y = gather_batch(student_logits, target, labels, equal_sizes=self._even_batches) if gather else (student_logits, target, labels)
        ce = self.cross_entropy(s, y)
        kd = self.distillation_loss(s, t, labels=y, epoch=epoch)
        loss = args.ce_weight * ce + args.kd_weight * kd.pop("loss")
        terms = {"ce": ce, **kd}
        if augmented is not None:  # the second view gets the KD terms only; its label is the teacher's prediction
            s_aug = logits_of(model(augmented))
            s_aug, t_aug = gather_batch(s_aug, target_aug, equal_sizes=self._even_batches) if gather else (s_aug, target_aug)
            aug = self.distillation_loss(s_aug, t_aug, labels=t_aug.argmax(1), epoch=epoch)
            loss = loss + args.aug_kd_weight * aug.pop("loss")
            terms.update({f"aug_{k}": v for k, v in aug.items()})
        return loss, terms

    @property
    def _even_batches(self) -> bool:
        return bool(getattr(self.accelerator, "even_batches", False))

    @property
    def current_epoch_number(self) -> int:
        """The epoch being trained, counted from 1 as mdistiller counts it (DKD's warm-up reads ``epoch / warmup``)."""
        return math.floor(self.state.epoch or 0.0) + 1

    # ------------------------------------------------------------------ logging
    def _remember(self, terms: dict[str, torch.Tensor]) -> None:
        # Kept as device tensors: no host sync per step; reduced once per logging interval.
        for name, value in terms.items():
            value = value.detach().float()
            self._pending_terms[name] = self._pending_terms[name] + value if name in self._pending_terms else value
        self._pending_steps += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._pending_terms:
            names = sorted(self._pending_terms)
            stacked = torch.stack([self._pending_terms[n] for n in names]) / self._pending_steps
            if world_size() > 1:
                stacked = self.accelerator.reduce(stacked, reduction="mean")
            logs.update({n: round(float(v), 6) for n, v in zip(names, stacked.tolist())})
            self._pending_terms, self._pending_steps = {}, 0
            if self.skipped_images:
                logs["skipped_images"] = self.skipped_images
        super().log(logs, start_time)

    # ------------------------------------------------------------------ optimisation as the reference
    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """``lr_decay_epochs`` builds the papers' step schedule (x ``lr_decay_rate`` at each epoch); else the usual one."""
        if self.lr_scheduler is None and self.args.lr_decay_epochs:
            if self.args.max_steps and self.args.max_steps > 0:  # a shortened run: the epochs keep their real length
                from transformers.trainer_utils import has_length

                if not has_length(self.train_dataset):
                    raise ValueError("lr_decay_epochs are in epochs, and a streamed (iterable) training set has no epoch "
                                     "length: use lr_scheduler_type (e.g. cosine) with max_steps instead.")
                steps_per_epoch = self._update_steps_per_epoch
            else:
                steps_per_epoch = num_training_steps / self.args.num_train_epochs
            milestones = [max(1, round(epoch * steps_per_epoch)) for epoch in self.args.lr_decay_epochs]
            if self.args.max_steps and self.args.max_steps > 0:
                reached = [m for m in milestones if m <= num_training_steps]
                logger.warning(
                    "max_steps=%d with lr_decay_epochs %s: an epoch is %s update steps, so the learning rate is multiplied by "
                    "%s at steps %s; this run ends at step %d (epoch %.2f), %s.", num_training_steps, list(self.args.lr_decay_epochs),
                    f"{steps_per_epoch:,}", self.args.lr_decay_rate, milestones, num_training_steps, num_training_steps / steps_per_epoch,
                    f"after {len(reached)} of the {len(milestones)} decays" if reached else "before the first decay (the rate stays "
                    f"{self.args.learning_rate})")
            self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer or self.optimizer, milestones=milestones, gamma=self.args.lr_decay_rate)
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        """``Trainer``'s loader that skips the trained batches of the resumed epoch, with that epoch told to the dataset.

        accelerate's ``set_epoch`` does not reach the dataset through the skipping sampler (accelerate 1.15), and the
        per-sample augmentation seeds (:class:`r2kd_hf.data.PerSampleSeeds`) need it for an exact resume."""
        loader = super().get_resumed_dataloader(dataloader, num_batches)
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(math.floor(self.state.epoch or 0.0))
        return loader

    def set_initial_training_values(self, args, dataloader):
        """``Trainer``'s own count of the run's length; the update steps in an epoch are kept for the step schedule."""
        values = super().set_initial_training_values(args, dataloader)
        self._update_steps_per_epoch = values[1]
        return values

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        """Every parameter when ``weight_decay_all_parameters`` (reference SGD), else transformers' grouping."""
        if self.args.weight_decay_all_parameters:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    # ------------------------------------------------------------------ saving and the Hub
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the student in the one student format (:mod:`r2kd_hf.saving`) and the training arguments as JSON.

        timm, transformers and :func:`r2kd_hf.load_student` load the folder; nothing in it is pickled. Checkpoints
        (``checkpoint-*``) use the same files for the model; their optimizer and RNG states are Trainer's own. As in
        ``transformers.Trainer``, a call from user code with ``push_to_hub=True`` also pushes (one commit).
        """
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # sharded weights: Trainer gathers them
            super().save_model(output_dir, _internal_call=True)
            if self.args.should_save:
                from .pruning.serialization import record_of, write_record

                record = record_of(unwrap(self.accelerator.unwrap_model(self.model)))
                if record is not None:  # the pruned architecture must travel with the gathered weights
                    write_record(record, output_dir)
        elif self.args.should_save:
            final = os.path.abspath(output_dir) == os.path.abspath(self.args.output_dir)
            swap = (self.student_ema.applied_to(self._bare_student()) if final and self.args.save_ema_student and self.student_ema
                    else contextlib.nullcontext())
            with swap:  # checkpoints always hold the live weights (exact resume); the final folder may hold the EMA
                written = save_classifier(self.accelerator.unwrap_model(self.model), output_dir,
                                          label_names=dataset_label_names(self.train_dataset), data_config=self.data_config or None)
            with open(os.path.join(output_dir, TRAINING_ARGS_JSON), "w", encoding="utf-8") as handle:
                handle.write(self.args.to_json_string())
            if os.path.abspath(output_dir) == os.path.abspath(self.args.output_dir):
                self.files_to_publish.update([*written, TRAINING_ARGS_JSON])
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save")

    def record_run(self, record: RunRecord) -> None:
        """Add what the run measured or wrote after training (:class:`r2kd_hf.RunRecord`): the card shows its ONNX
        export and robustness, and the push uploads its files with the model."""
        self.run_record = self.run_record.merge(record)
        self.files_to_publish.update(record.files)

    def create_model_card(self, model_name: str | None = None, tags: list[str] | str | None = None, **kwargs) -> None:
        """Write ``README.md`` saying how the student was made (teacher, loss, pruning, data, metrics, recipe)."""
        if not self.is_world_process_zero():
            return
        from .cards import build_model_card

        os.makedirs(self.args.output_dir, exist_ok=True)
        from .cards import EVAL_RESULTS_FILE, write_eval_results

        card = build_model_card(self, model_name=model_name, extra_tags=[tags] if isinstance(tags, str) else tags)
        card.save(os.path.join(self.args.output_dir, "README.md"))
        self.files_to_publish.add("README.md")
        if write_eval_results(self, self.args.output_dir):
            self.files_to_publish.add(EVAL_RESULTS_FILE)

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """``Trainer.init_hf_repo`` (called before any training when ``push_to_hub``), with an actionable error."""
        from .hub import hub_access_error

        try:
            super().init_hf_repo(token=token, private=private)
        except Exception as error:  # noqa: BLE001 - every failure here means "cannot publish": say what to do
            raise hub_access_error(self.args, error) from None

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True, **kwargs):
        """Upload this run's student, card and records to ``hub_model_id`` in **one commit**.

        The local folder is completed first (model, training arguments, card). Only the files this run wrote are
        uploaded (``files_to_publish``: never ``checkpoint-*``, a ``teacher/`` trained by the run, or leftovers of an
        earlier run in the same folder). A failed upload says what is where and how to retry.
        """
        if self.hub_model_id is None:
            self.init_hf_repo(token=kwargs.get("token"))
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self.create_model_card(**{k: v for k, v in kwargs.items() if k in ("model_name", "tags")})
        files = sorted(f for f in self.files_to_publish if os.path.isfile(os.path.join(self.args.output_dir, f)))
        from huggingface_hub import HfApi

        try:
            return HfApi(token=kwargs.get("token", self.args.hub_token)).upload_folder(
                repo_id=self.hub_model_id, folder_path=self.args.output_dir, commit_message=commit_message,
                allow_patterns=files, revision=kwargs.get("revision", self.args.hub_revision), run_as_future=not blocking,
            )
        except Exception as error:
            repo = self.hub_model_id
            raise RuntimeError(
                f"Pushing to the Hub repo {repo!r} failed ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
                f"The model (config.json, model.safetensors) and its card are complete in {self.args.output_dir!r}; retry "
                f"with trainer.push_to_hub() or `hf upload {repo} {self.args.output_dir}` once the Hub is reachable."
            ) from error


def dataset_name_of(dataset) -> str | None:
    """The name a ``datasets`` split records (Hub id or builder), for cards."""
    name = getattr(getattr(dataset, "info", None), "dataset_name", None)
    return name if name and name not in ("imagefolder", "parquet", "json", "csv", "arrow") else None


def describe_source(model: nn.Module) -> str:
    """Where an in-memory model came from, for cards: its Hub id or folder, else its timm architecture."""
    inner = unwrap(model)
    path = getattr(getattr(inner, "config", None), "_name_or_path", "") or getattr(inner, "name_or_path", "")
    if path:
        return str(path)
    cfg = getattr(inner, "pretrained_cfg", None) or getattr(getattr(inner, "timm_model", None), "pretrained_cfg", None) or {}
    source = cfg.get("hf_hub_id") or cfg.get("architecture")
    return f"{source} (timm)" if source else type(inner).__name__
