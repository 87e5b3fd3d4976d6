"""Stand-alone evaluation of a saved model: top-1/top-5, parameters, MACs and CPU latency."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .collate import ImageClassificationCollator
from .modeling import logits_of


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, dataset, batch_size: int = 256, num_workers: int = 0, device: str = "cpu") -> dict[str, float]:
    """Top-1 and top-5 accuracy of ``model`` on a prepared dataset (samples with ``pixel_values`` and ``labels``)."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=ImageClassificationCollator())
    top1 = top5 = seen = 0
    for batch in tqdm(loader, desc="evaluating", leave=False):
        logits = logits_of(model(batch["pixel_values"].to(device))).float()
        labels = batch["labels"].to(device)
        top1 += int((logits.argmax(1) == labels).sum())
        k = min(5, logits.shape[1])
        top5 += int((logits.topk(k, dim=1).indices == labels[:, None]).any(1).sum())
        seen += labels.numel()
    return {"top1": top1 / max(seen, 1), "top5": top5 / max(seen, 1), "samples": seen}


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
