"""Callbacks that prepare the teacher side before the first training step.

Both act on the :class:`~r2kd_hf.teacher.Teacher` they are given; neither calls into the trainer. Their
results are appended to ``state.log_history`` (so they reach ``trainer_state.json``, the summary and the card).
"""

from __future__ import annotations

import json
import logging
import os

import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from .collate import ImageClassificationCollator
from .introspection import data_config_of
from .pruning.teacher import PRUNERS, prune_teacher_copy
from .teacher import Teacher

logger = logging.getLogger(__name__)
TEACHER_PRUNING_RECORD = "teacher_pruning.json"


def _log(state, logs: dict) -> None:
    logger.info("%s", logs)
    state.log_history.append({**logs, "step": state.global_step})


class TeacherPruningCallback(TrainerCallback):
    """Prune a copy of the teacher once, at ``on_train_begin``, and hand it to the :class:`~r2kd_hf.teacher.Teacher`.

    The target then becomes ``(1 - w)·teacher + w·pruned`` (``w = pruned_teacher_weight``, reference 0.3). Arguments
    left as ``None`` come from the :class:`R2KDConfig` at ``on_train_begin``; ``teacher`` is filled in by
    :class:`R2KDTrainer` when you add the callback yourself without one.

    The teacher is frozen and the pruning deterministic, so a resumed run rebuilds the same copy; its fingerprint is
    checked against ``teacher_pruning.json`` of the first run. A teacher that already has a copy is left alone.
    """

    def __init__(self, method: str | None = None, amount: float | None = None, teacher: Teacher | None = None):
        self.method, self.amount, self.teacher = method, amount, teacher
        self.report: dict | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        teacher = self.teacher
        if teacher is None:
            raise RuntimeError("TeacherPruningCallback has no teacher; add it to an R2KDTrainer (which hands it one).")
        if teacher.pruned is not None:
            logger.info("The teacher already has a pruned copy; not pruning again.")
            return
        method = self.method or args.teacher_prune_method
        amount = self.amount if self.amount is not None else args.teacher_prune_amount
        example = None
        if "example_inputs" in PRUNERS.entry(method).needs:  # e.g. channel pruning traces one forward
            size = (data_config_of(teacher.module) or {}).get("input_size", (3, 32, 32))
            example = torch.zeros(1, *size, device=next(teacher.module.parameters()).device)
        # the bare module (never a DeepSpeed engine) is copied and pruned; the teacher places the copy
        pruned, report = prune_teacher_copy(teacher.module, method=method, amount=amount, example_inputs=example)
        record_path = os.path.join(args.output_dir, TEACHER_PRUNING_RECORD)
        if state.global_step > 0 and os.path.exists(record_path):
            with open(record_path, encoding="utf-8") as handle:
                previous = json.load(handle)
            if previous.get("fingerprint") != report["fingerprint"]:
                raise RuntimeError(
                    f"The rebuilt pruned teacher differs from the one this run started with ({record_path}). The "
                    "teacher or the pruning settings changed between runs; resume with the original ones."
                )
        teacher.add_pruned_copy(pruned, report)
        self.report = report
        logs = {"pruned_teacher_sparsity": round(report["sparsity_overall"], 6)}
        if "params_after" in report:
            logs["pruned_teacher_params"] = report["params_after"]
        _log(state, logs)
        if args.should_save:
            os.makedirs(args.output_dir, exist_ok=True)
            with open(record_path, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2)


class TeacherValidationCallback(TrainerCallback):
    """Evaluate the teacher (and the pruned copy and the mix) on the eval split before the first step.

    Warns loudly when the teacher is near chance: a wrong checkpoint, label order or normalisation is the most
    common silent failure in distillation. Runs after :class:`TeacherPruningCallback` when both are present.
    """

    def __init__(self, teacher: Teacher, eval_dataset, batch_size: int = 256, max_batches: int | None = None, collator=None):
        self.teacher, self.eval_dataset, self.batch_size, self.max_batches = teacher, eval_dataset, batch_size, max_batches
        self.collator = collator or ImageClassificationCollator()
        self.metrics: dict[str, float] = {}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        device = next(self.teacher.module.parameters()).device
        loader = DataLoader(self.eval_dataset, batch_size=self.batch_size, collate_fn=self.collator)
        correct: dict[str, int] = {}
        seen = 0
        for index, batch in enumerate(loader):
            if self.max_batches is not None and index >= self.max_batches:
                break
            labels = batch["labels"].to(device)
            for name, logits in self.teacher.predictions(batch["pixel_values"].to(device)).items():
                correct[name] = correct.get(name, 0) + int((logits.argmax(1) == labels).sum())
            seen += labels.numel()
            num_classes = logits.shape[1]
        if not seen:
            return {}
        metrics = {f"{name}_eval_accuracy": round(hits / max(seen, 1), 6) for name, hits in correct.items()}
        accuracy = metrics.get("teacher_eval_accuracy")
        if accuracy is not None and accuracy < 2.0 / num_classes:
            logger.warning(
                "\n" + "!" * 100 + f"\nTHE TEACHER IS NEAR CHANCE: eval accuracy {accuracy:.4f} with {num_classes} classes "
                f"(chance {1.0 / num_classes:.4f}).\nDistilling from it will not help. Check the checkpoint, the label "
                "order (id2label) and the input normalisation.\n" + "!" * 100
            )
        return metrics

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:  # one rank measures and logs; the others wait at the first collective
            return
        self.metrics = self.evaluate()
        _log(state, dict(self.metrics))
