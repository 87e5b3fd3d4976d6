"""Training-curve plots (PNG) from a Trainer's ``log_history``."""

from __future__ import annotations

import math


def plot_training_curves(log_history: list[dict], path: str) -> str | None:
    """Loss terms per step (left) and eval accuracy per epoch (right); returns the path, or None if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [e for e in log_history if "loss" in e and "step" in e]
    evals = [e for e in log_history if "eval_accuracy" in e]
    if not train and not evals:
        return None
    terms = sorted({k for e in train for k in e if k in ("loss", "ce") or k.startswith(("kd_", "aug_kd_"))})
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for term in terms:
        points = [(e["step"], e[term]) for e in train if term in e and math.isfinite(float(e[term]))]
        if points:
            left.plot(*zip(*points), label=term, linewidth=2 if term == "loss" else 1)
    left.set(xlabel="step", ylabel="value", title="training loss and its terms")
    if terms:
        left.legend(fontsize=8)
    if evals:
        right.plot([e.get("epoch", i) for i, e in enumerate(evals)], [e["eval_accuracy"] for e in evals], marker="o")
    right.set(xlabel="epoch", ylabel="top-1", title="eval accuracy")
    right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
