"""``TeacherPruningCallback``: gives the trainer a pruned copy of the teacher before the first training step."""

from __future__ import annotations

import json
import logging
import os

from transformers import TrainerCallback

logger = logging.getLogger(__name__)
TEACHER_PRUNING_RECORD = "teacher_pruning.json"


class TeacherPruningCallback(TrainerCallback):
    """Prune a copy of the teacher once, at ``on_train_begin``, and hand it to :class:`~r2kd_hf.R2KDTrainer`.

    The trainer's target then becomes ``(1 - w) * teacher_logits + w * pruned_logits`` (``w =
    pruned_teacher_weight``, reference 0.3). Arguments left as ``None`` come from the trainer's :class:`R2KDConfig`.

    The teacher is frozen, so a resumed run rebuilds exactly the same pruned copy from it (the pruning is
    deterministic); the copy's fingerprint is compared with the one written in ``teacher_pruning.json`` at the first
    run. A trainer that already holds a pruned teacher is never pruned again.

    Logs the achieved sparsity and, with ``evaluate=True`` and an eval split, the accuracy of the teacher, the pruned
    teacher and their mix.
    """

    def __init__(self, method: str | None = None, amount: float | None = None, evaluate: bool = True):
        self.method, self.amount, self.evaluate = method, amount, evaluate
        self.trainer = None
        self.report: dict | None = None

    def bind(self, trainer) -> None:
        """Called by ``R2KDTrainer.__init__``: callbacks receive no teacher, so they keep the trainer."""
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError("TeacherPruningCallback only works with R2KDTrainer (it was not bound to a trainer).")
        if trainer.pruned_teacher is not None:
            logger.info("The trainer already has a pruned teacher; not pruning again.")
            return
        method = self.method or args.teacher_prune_method
        amount = self.amount if self.amount is not None else args.teacher_prune_amount
        report = trainer.attach_pruned_teacher(method=method, amount=amount)
        record_path = os.path.join(args.output_dir, TEACHER_PRUNING_RECORD)
        if state.global_step > 0 and os.path.exists(record_path):
            with open(record_path, encoding="utf-8") as handle:
                previous = json.load(handle)
            if previous.get("fingerprint") != report["fingerprint"]:
                raise RuntimeError(
                    f"The rebuilt pruned teacher differs from the one this run started with ({record_path}). The "
                    "teacher or the pruning settings changed between runs; resume with the original ones."
                )
        logs = {"pruned_teacher_sparsity": round(report["sparsity_overall"], 6)}
        if "params_after" in report:
            logs["pruned_teacher_params"] = report["params_after"]
        if self.evaluate and trainer.eval_dataset is not None:
            logs.update(trainer.evaluate_teachers())
        trainer.teacher_metrics.update(logs)
        trainer.log(dict(logs))
        self.report = report
        if args.should_save:
            os.makedirs(args.output_dir, exist_ok=True)
            summary = {k: v for k, v in report.items() if k != "sparsity_per_layer"}
            summary["sparsity_per_layer"] = report["sparsity_per_layer"]
            with open(record_path, "w", encoding="utf-8") as handle:
                json.dump(summary, handle, indent=2)
