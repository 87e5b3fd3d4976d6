"""Classification metrics: one top-1/top-k implementation for training evaluation, scripts/evaluate_model.py and the benchmarks.

The `evaluate` package is not needed (its metrics load their code from the Hub unless HF_EVALUATE_OFFLINE=1); a
``compute_metrics`` built with it works with the trainer too (the ``evaluate`` extra). Also the two readings of a
Trainer's ``log_history`` that cards, summaries and benchmarks share.
"""

from __future__ import annotations

import numpy as np


def topk_accuracy(eval_pred, k: int = 5) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: top-1 ``accuracy`` and, with more than ``k`` classes, ``top{k}_accuracy``."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    logits, labels = np.asarray(logits), np.asarray(labels).reshape(-1)
    metrics = {"accuracy": float((logits.argmax(-1) == labels).mean())}
    if logits.shape[-1] > k:
        top = np.argpartition(-logits, k, axis=-1)[:, :k]
        metrics[f"top{k}_accuracy"] = float((top == labels[:, None]).any(-1).mean())
    return metrics


# ------------------------------------------------------------------ from a Trainer's log_history
def final_and_best(log_history: list[dict], metric: str = "eval_accuracy") -> tuple[float | None, float | None]:
    values = [entry[metric] for entry in log_history if metric in entry]
    return (values[-1], max(values)) if values else (None, None)


def teacher_metrics(log_history: list[dict]) -> dict[str, float]:
    """What the teacher callbacks logged before the first step (accuracies, sparsity)."""
    keys = ("teacher_eval_accuracy", "pruned_teacher_eval_accuracy", "teacher_mix_eval_accuracy", "pruned_teacher_sparsity", "pruned_teacher_params")
    return {k: entry[k] for entry in log_history for k in keys if k in entry}
