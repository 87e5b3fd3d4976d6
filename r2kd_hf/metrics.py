"""Classification metrics: one top-1/top-k implementation for training evaluation, scripts/evaluate.py and the benchmarks.

The `evaluate` package is not used: its metrics load their code from the Hub, which offline runs cannot reach.
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
