"""Stand-alone evaluation of a saved model: top-1/top-5, parameters, MACs and CPU latency."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import EvalPrediction
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .collate import ImageClassificationCollator
from .metrics import topk_accuracy
from .introspection import logits_of


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, dataset, batch_size: int = 256, num_workers: int = 0, device: str = "cpu",
                      return_predictions: bool = False) -> dict[str, Any]:
    """Top-1 and top-5 accuracy of ``model`` on a prepared dataset, with the trainer's metric (:func:`topk_accuracy`);
    ``return_predictions`` adds each image's top-1 class (``predictions``, in dataset order)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=ImageClassificationCollator())
    logits, labels = [], []
    for batch in tqdm(loader, desc="evaluating", leave=False):
        logits.append(logits_of(model(batch["pixel_values"].to(device))).float().cpu().numpy())
        labels.append(batch["labels"].numpy())
    metrics = topk_accuracy(EvalPrediction(predictions=np.concatenate(logits), label_ids=np.concatenate(labels)))
    result = {"top1": metrics["accuracy"], "top5": metrics.get("top5_accuracy", 1.0), "samples": int(sum(len(x) for x in labels))}
    if return_predictions:
        result["predictions"] = np.concatenate(logits).argmax(1).tolist()
    return result


@torch.no_grad()
def cpu_latency_ms(model: nn.Module, input_size: tuple[int, int, int], batch_size: int = 1, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time (ms) of one forward on CPU at ``batch_size``, after ``warmup`` untimed calls."""
    model = model.to("cpu").eval()
    x = torch.randn(batch_size, *input_size)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)
