"""``R2KDTrainer``: a ``transformers.Trainer`` that distils a student from a frozen (and pruned) teacher."""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

from .augment import build_second_view
from .collate import ImageClassificationCollator
from .config import R2KDConfig
from .distributed import gather_batch, world_size
from .losses import compute_loss_terms
from .metrics import topk_accuracy
from .modeling import (
    DEFAULT_MEAN,
    DEFAULT_STD,
    data_config_of,
    id2label_of,
    load_model,
    logits_of,
    maybe_renormalize_teacher,
    num_labels_of,
)
from .pruning.callback import TeacherPruningCallback
from .saving import save_classifier
from .pruning.teacher import prune_teacher_copy

logger = logging.getLogger(__name__)
TRAINING_ARGS_JSON = "training_args.json"


def dataset_label_names(dataset) -> list[str] | None:
    """Class names from a ``datasets`` ``ClassLabel`` column named ``labels`` or ``label``."""
    features = getattr(dataset, "features", None) or {}
    for column in ("labels", "label"):
        feature = features.get(column) if hasattr(features, "get") else None
        if feature is not None and hasattr(feature, "names"):
            return list(feature.names)
    return None


def check_label_agreement(student: nn.Module, teacher: nn.Module | None, dataset=None) -> None:
    """Fail before training when student, teacher and dataset disagree on the classes."""
    names = dataset_label_names(dataset)
    counts = {"student": num_labels_of(student), "teacher": num_labels_of(teacher) if teacher is not None else None}
    counts["dataset"] = len(names) if names else None
    known = {k: v for k, v in counts.items() if v}
    if len(set(known.values())) > 1:
        detail = ", ".join(f"{k} {v}" for k, v in known.items())
        raise ValueError(
            f"Class counts disagree ({detail}). Teacher, student and dataset must share one label set: use a teacher "
            "fine-tuned on this dataset (scripts/train_teacher.py trains one) and create the student with "
            "num_labels equal to the dataset's number of classes."
        )
    if names and teacher is not None and (teacher_names := id2label_of(teacher)):
        for index, name in enumerate(names):
            if teacher_names.get(index) != name:
                raise ValueError(
                    f"The teacher's label {index} is {teacher_names.get(index)!r} but the dataset's is {name!r}: the label "
                    "orders differ, so distillation would teach the wrong classes. Re-map the dataset labels to the "
                    "teacher's id2label (or fine-tune the teacher on this dataset)."
                )


class R2KDTrainer(Trainer):
    r"""Distil ``model`` (the student) from ``teacher_model`` with a registered loss (R2KD by default).

    Per training step, as in the R2KD reference code:

    ``loss = ce_weight·CE(z_s(x), y) + kd_weight·KD(z_s(x), z̃_t(x)) + aug_kd_weight·KD(z_s(x'), z̃_t(x'))``

    where ``x'`` is the optional second view (``second_view``), which gets the distillation terms only, and
    ``z̃_t = (1-w)·z_t + w·z_p`` mixes in the pruned teacher when ``prune_teacher`` is on. Every term is logged.

    The teacher is frozen, kept in eval mode on every step, prepared by the accelerator in evaluation mode (no DDP
    wrapper, never seen by the optimizer) and not run during evaluation. Under multi-process training the loss is
    computed on the global batch, so batch-wise terms match a single process with the same global batch.

    Args:
        model: the student (an ``nn.Module``, a local folder, a Hub repo id or a timm name).
        args: an :class:`R2KDConfig`.
        teacher_model: an ``nn.Module``, a local folder, a Hub repo id or a timm name (loaded with pretrained weights).
        teacher_revision: Hub revision of ``teacher_model`` (recorded in the model card).
        model_card_info: extra facts for the model card (``dataset``, ``dataset_split``, ``recipe`` text, ...).
        Other arguments are those of ``transformers.Trainer``.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean: let Trainer divide by GA steps
    _tag_names = ["r2kd_hf", "knowledge-distillation", "image-classification"]

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
        teacher_revision: str | None = None,
        model_card_info: dict[str, Any] | None = None,
        **kwargs,
    ):
        args = args if args is not None else R2KDConfig(output_dir="r2kd-output")
        if not isinstance(args, R2KDConfig):
            raise TypeError(f"args must be an R2KDConfig (got {type(args).__name__}); R2KDConfig accepts every TrainingArguments field.")
        if model is None:
            raise ValueError("Pass the student as `model=` (an nn.Module, a folder, a Hub repo id or a timm name).")
        names = dataset_label_names(train_dataset)
        if isinstance(model, str):
            model = load_model(model, role="student", num_labels=len(names) if names else None)
        teacher = None
        if args.uses_teacher:
            if teacher_model is None:
                raise ValueError(f"loss_name={args.loss_name!r} needs a `teacher_model`; use loss_name='none' to train with CE only.")
            teacher = load_model(teacher_model, role="teacher", revision=teacher_revision)
        check_label_agreement(model, teacher, train_dataset)

        callbacks = list(callbacks or [])
        if args.prune_teacher and not any(isinstance(c, TeacherPruningCallback) or c is TeacherPruningCallback for c in callbacks):
            callbacks.append(TeacherPruningCallback())
        try:
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator or ImageClassificationCollator(),
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                callbacks=callbacks,
                compute_metrics=compute_metrics or topk_accuracy,
                **kwargs,
            )
        except Exception as error:
            if args.push_to_hub and "hub" in f"{type(error).__module__} {error}".lower():
                raise RuntimeError(
                    f"push_to_hub=True but the Hub repo could not be created ({type(error).__name__}: {error}). "
                    "Check HF_ENDPOINT, your token (`hf auth login`) and network, or set push_to_hub=False; nothing was trained."
                ) from error
            raise
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, TeacherPruningCallback):
                callback.bind(self)

        self.teacher_id = teacher_model if isinstance(teacher_model, str) else (type(teacher).__name__ if teacher is not None else None)
        self.teacher_revision = teacher_revision
        self.model_card_info = dict(model_card_info or {})
        self.teacher_metrics: dict[str, float] = {}
        self.pruning_report: dict[str, Any] | None = None
        self.pruned_teacher: nn.Module | None = None
        if teacher is not None and args.renormalize_teacher_inputs:
            teacher = maybe_renormalize_teacher(teacher, model)
        self._raw_teacher = teacher
        self.teacher_model = self._prepare_frozen(teacher) if teacher is not None else None
        data_config = data_config_of(model) or {}
        self.second_view = build_second_view(
            args.second_view, data_config.get("mean", DEFAULT_MEAN), data_config.get("std", DEFAULT_STD), **args.second_view_kwargs
        )
        self._loss_hyper_parameters = args.loss_hyper_parameters() if args.uses_teacher else {}
        self._pending_terms: dict[str, torch.Tensor] = {}
        self._pending_steps = 0
        self._example_inputs: torch.Tensor | None = None
        self.skipped_images = 0  # unreadable images dropped by the collator (skip_corrupt_images=True)

    # ------------------------------------------------------------------ teacher handling
    def _prepare_frozen(self, module: nn.Module) -> nn.Module:
        module.eval().requires_grad_(False)
        if self.is_deepspeed_enabled:
            return _prepare_deepspeed(module, self.accelerator)
        return self.accelerator.prepare_model(module, evaluation_mode=True)

    def attach_pruned_teacher(self, method: str, amount: float) -> dict[str, Any]:
        """Prune a copy of the (unprepared) teacher and use it in the target mix. Returns the pruning report."""
        if self._raw_teacher is None:
            raise ValueError("prune_teacher needs a teacher; this trainer has none (loss_name='none').")
        example = self.example_inputs() if method == "structured" else None
        pruned, report = prune_teacher_copy(self._raw_teacher, method=method, amount=amount, example_inputs=example)
        self.pruned_teacher = self._prepare_frozen(pruned)
        self.pruning_report = report
        logger.info("Pruned teacher (%s, amount %.3f): overall weight sparsity %.4f", method, amount, report["sparsity_overall"])
        return report

    def _set_pruned_teacher_mode(self) -> None:
        # Reference code: the pruned teacher is a child module left in train mode, so BN uses batch statistics.
        self.pruned_teacher.train(self.args.pruned_teacher_bn == "batch_stats")

    @torch.no_grad()
    def _teacher_targets(self, clean: torch.Tensor, augmented: torch.Tensor | None):
        """``(target on clean, target on augmented or None, raw teacher logits on clean)``."""
        self.teacher_model.eval()
        fuse = self.args.fuse_teacher_views
        teacher_clean, teacher_aug = _forward_views(self.teacher_model, clean, augmented, fuse)
        if self.pruned_teacher is None:
            return teacher_clean, teacher_aug, teacher_clean
        self._set_pruned_teacher_mode()
        # Batch statistics depend on the batch, so the reference mode keeps the two views in separate forwards.
        fuse_pruned = fuse and self.args.pruned_teacher_bn == "running_stats"
        pruned_clean, pruned_aug = _forward_views(self.pruned_teacher, clean, augmented, fuse_pruned)
        w = self.args.pruned_teacher_weight
        mix_clean = torch.lerp(teacher_clean.float(), pruned_clean.float(), w)
        mix_aug = torch.lerp(teacher_aug.float(), pruned_aug.float(), w) if augmented is not None else None
        return mix_clean, mix_aug, teacher_clean

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        pixel_values, labels = _batch_tensors(inputs)
        if "skipped_images" in inputs:
            self.skipped_images += int(inputs["skipped_images"])
        student_logits = logits_of(model(pixel_values))
        if not model.training:  # evaluation: the teacher is skipped, the loss is plain CE
            loss = F.cross_entropy(student_logits.float(), labels) if labels is not None else student_logits.new_zeros(())
            return (loss, {"logits": student_logits}) if return_outputs else loss
        if labels is None:
            raise KeyError("The training batch has no 'labels'; the dataset transform must return them.")
        loss, terms = self._training_loss(model, pixel_values, labels, student_logits)
        self._remember(terms)
        return (loss, {"logits": student_logits}) if return_outputs else loss

    def _training_loss(self, model, pixel_values, labels, student_logits) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        args = self.args
        gather = args.gather_across_processes and world_size() > 1
        if self.teacher_model is None:
            logits, targets = gather_batch(student_logits, labels) if gather else (student_logits, labels)
            ce = F.cross_entropy(logits.float(), targets)
            return args.ce_weight * ce, {"ce": ce}

        view = self.second_view
        needs_teacher = getattr(view, "needs_teacher_logits", False)
        augmented = view(pixel_values) if view is not None and not needs_teacher else None
        target_clean, target_aug, raw_teacher_clean = self._teacher_targets(pixel_values, augmented)
        if needs_teacher:
            # Reference (cutmixpick): samples are ranked by the entropy of the raw teacher on the clean images.
            augmented = view(pixel_values, teacher_logits=raw_teacher_clean)
            target_aug, _, _ = self._teacher_targets(augmented, None)

        s, t, y = gather_batch(student_logits, target_clean, labels) if gather else (student_logits, target_clean, labels)
        ce = F.cross_entropy(s.float(), y)
        epoch = self.current_epoch_number
        kd = compute_loss_terms(args.loss_name, s, t, labels=y, epoch=epoch, **self._loss_hyper_parameters)
        terms = {"ce": ce, **{k: v for k, v in kd.items() if k != "loss"}}
        loss = args.ce_weight * ce + args.kd_weight * kd["loss"]
        if augmented is not None:
            student_aug = logits_of(model(augmented))
            s_aug, t_aug = gather_batch(student_aug, target_aug) if gather else (student_aug, target_aug)
            # The augmented view has no trustworthy label: losses that need one get the teacher's prediction.
            aug = compute_loss_terms(
                args.loss_name, s_aug, t_aug, labels=t_aug.argmax(1), epoch=epoch, **self._loss_hyper_parameters
            )
            terms.update({f"aug_{k}": v for k, v in aug.items() if k != "loss"})
            loss = loss + args.aug_kd_weight * aug["loss"]
        return loss, terms

    @property
    def current_epoch_number(self) -> int:
        """The epoch being trained, counted from 1 as mdistiller counts it (DKD's warm-up reads ``epoch / warmup``)."""
        return math.floor(self.state.epoch or 0.0) + 1

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        """Every parameter when ``weight_decay_all_parameters`` (reference SGD), else transformers' grouping."""
        if self.args.weight_decay_all_parameters:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

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

    # ------------------------------------------------------------------ checks before training
    def example_inputs(self) -> torch.Tensor:
        """One training image (after the transform), on the training device."""
        if self._example_inputs is None:
            if self.train_dataset is None:
                raise ValueError("No train_dataset: cannot take an example input.")
            batch = self.data_collator([self.train_dataset[0]])
            self._example_inputs = batch["pixel_values"][:1].to(self.args.device)
        return self._example_inputs

    def _preflight(self) -> None:
        if self.train_dataset is None:
            return
        samples = [self.train_dataset[i] for i in range(min(2, len(self.train_dataset)))]
        try:
            batch = self.data_collator(samples)
        except KeyError as error:
            raise KeyError(f"The training data cannot be batched: {error.args[0]}") from None
        _batch_tensors(batch, require_labels=True)
        pixel_values = batch["pixel_values"].to(self.args.device)
        self._example_inputs = pixel_values[:1]
        if self.teacher_model is None:
            return
        with torch.no_grad():
            was_training = self.model.training
            self.model.eval()
            student_shape = tuple(logits_of(self.model(pixel_values)).shape)
            self.model.train(was_training)
            teacher_shape = tuple(logits_of(self.teacher_model(pixel_values)).shape)
        if student_shape != teacher_shape:
            raise ValueError(
                f"Student logits {student_shape} and teacher logits {teacher_shape} differ in shape: the two models "
                "predict different numbers of classes. Use a teacher trained on this dataset's label set."
            )

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        self._preflight()
        pruning_later = any(isinstance(c, TeacherPruningCallback) for c in self.callback_handler.callbacks)
        if self.teacher_model is not None and self.args.validate_teacher and self.eval_dataset is not None and not pruning_later:
            metrics = self.evaluate_teachers()
            self.teacher_metrics.update(metrics)
            self.log(dict(metrics))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    @torch.no_grad()
    def evaluate_teachers(self, eval_dataset=None, max_batches: int | None = None) -> dict[str, float]:
        """Top-1 accuracy of the teacher (and pruned teacher and their mix, when pruning is on) on the eval split.

        Warns loudly when the teacher is near chance: a wrong checkpoint, label order or normalisation is the
        most common silent failure in distillation.
        """
        max_batches = max_batches if max_batches is not None else self.args.teacher_validation_max_batches
        loader = self.get_eval_dataloader(eval_dataset)
        correct: dict[str, torch.Tensor] = {}
        seen = 0
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            batch = self._prepare_inputs(batch)
            pixel_values, labels = _batch_tensors(batch, require_labels=True)
            self.teacher_model.eval()
            predictions = {"teacher": logits_of(self.teacher_model(pixel_values)).float()}
            if self.pruned_teacher is not None:
                self._set_pruned_teacher_mode()
                predictions["pruned_teacher"] = logits_of(self.pruned_teacher(pixel_values)).float()
                predictions["teacher_mix"] = torch.lerp(predictions["teacher"], predictions["pruned_teacher"], self.args.pruned_teacher_weight)
            labels = self.accelerator.gather_for_metrics(labels)
            for name, logits in predictions.items():
                hits = (self.accelerator.gather_for_metrics(logits.argmax(1)) == labels).sum()
                correct[name] = correct.get(name, 0) + hits
            seen += labels.numel()
        metrics = {f"{name}_eval_accuracy": round(float(hits) / max(seen, 1), 6) for name, hits in correct.items()}
        num_classes = num_labels_of(self.model) or (predictions["teacher"].shape[1] if correct else None)
        accuracy = metrics.get("teacher_eval_accuracy")
        if accuracy is not None and num_classes and accuracy < 2.0 / num_classes:
            logger.warning(
                "\n" + "!" * 100 + f"\nTHE TEACHER IS NEAR CHANCE: eval accuracy {accuracy:.4f} with {num_classes} classes "
                f"(chance {1.0 / num_classes:.4f}).\nDistilling from it will not help. Check the checkpoint, the label "
                "order (id2label) and the input normalisation.\n" + "!" * 100
            )
        return metrics

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """``lr_decay_epochs`` builds the papers' step schedule (x ``lr_decay_rate`` at each epoch); else the usual one."""
        if self.lr_scheduler is None and self.args.lr_decay_epochs:
            steps_per_epoch = num_training_steps / self.args.num_train_epochs
            milestones = [max(1, round(epoch * steps_per_epoch)) for epoch in self.args.lr_decay_epochs]
            self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
                optimizer or self.optimizer, milestones=milestones, gamma=self.args.lr_decay_rate
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    # ------------------------------------------------------------------ saving and the Hub
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the student in the one student format (:mod:`r2kd_hf.saving`) and the training arguments as JSON.

        timm, transformers and :func:`r2kd_hf.load_student` load the folder; nothing in it is pickled. Checkpoints
        (``checkpoint-*``) use the same files for the model; their optimizer and RNG states are Trainer's own.
        """
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # sharded weights: Trainer gathers them
            return super().save_model(output_dir, _internal_call)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            save_classifier(self.accelerator.unwrap_model(self.model), output_dir, label_names=dataset_label_names(self.train_dataset))
            with open(os.path.join(output_dir, TRAINING_ARGS_JSON), "w", encoding="utf-8") as handle:
                handle.write(self.args.to_json_string())
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save")

    def create_model_card(self, model_name: str | None = None, tags: list[str] | str | None = None, **kwargs) -> None:
        """Write ``README.md`` saying how the student was made (teacher, loss, pruning, data, metrics, recipe)."""
        if not self.is_world_process_zero():
            return
        from .hub import build_model_card

        os.makedirs(self.args.output_dir, exist_ok=True)
        card = build_model_card(self, model_name=model_name, extra_tags=[tags] if isinstance(tags, str) else tags, **kwargs)
        card.save(os.path.join(self.args.output_dir, "README.md"))

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True, **kwargs):
        """``Trainer.push_to_hub`` that first completes the local output and explains a failed upload."""
        self.save_model(_internal_call=True)
        self.create_model_card(**{k: v for k, v in kwargs.items() if k in ("model_name", "tags", "dataset")})
        try:
            return super().push_to_hub(commit_message=commit_message, blocking=blocking, **kwargs)
        except Exception as error:
            repo = self.args.hub_model_id or os.path.basename(os.path.abspath(self.args.output_dir))
            raise RuntimeError(
                f"Pushing to the Hub repo {repo!r} failed ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
                f"The model, its config and model card are complete in {self.args.output_dir!r}; retry with "
                f"trainer.push_to_hub() or `hf upload {repo} {self.args.output_dir}` once the Hub is reachable."
            ) from error


def _batch_tensors(inputs: dict, require_labels: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    if "pixel_values" not in inputs:
        raise KeyError(
            f"The batch has no 'pixel_values' (keys: {sorted(inputs)}). Image datasets must yield 'pixel_values' and "
            "'labels'; build them with r2kd_hf.data.prepare_dataset or rename your columns."
        )
    labels = inputs.get("labels")
    if labels is None and require_labels:
        raise KeyError(f"The batch has no 'labels' (keys: {sorted(inputs)}). Rename the label column to 'labels'.")
    return inputs["pixel_values"], labels


def _forward_views(model: nn.Module, clean: torch.Tensor, augmented: torch.Tensor | None, fuse: bool):
    """Logits on the clean and augmented views; one forward over both when ``fuse`` (exact for eval-mode models)."""
    if augmented is None:
        return logits_of(model(clean)), None
    if fuse and clean.shape[1:] == augmented.shape[1:]:
        both = logits_of(model(torch.cat([clean, augmented])))
        return both[: clean.shape[0]], both[clean.shape[0] :]
    return logits_of(model(clean)), logits_of(model(augmented))


def _prepare_deepspeed(model: nn.Module, accelerator) -> nn.Module:
    """Wrap a frozen model for DeepSpeed inference: ZeRO-3 shards it like the student; other stages use stage 0."""
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    stage = config.get("zero_optimization", {}).get("stage", 0)
    if stage != 3:
        config["zero_optimization"] = {"stage": 0}
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine
