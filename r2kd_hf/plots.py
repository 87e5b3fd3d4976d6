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


def plot_corruption_accuracy(report: dict, path: str, title: str | None = None) -> str | None:
    """Bar chart: accuracy per corruption (mean over severities), clean accuracy and mCA as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["per_corruption"])
    means = [report["per_corruption"][n]["mean"] for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 2), 3.6))
    ax.bar(range(len(names)), means, color="#4c72b0")
    ax.axhline(report["clean_accuracy"], color="#55a868", linestyle="--", label=f"clean {report['clean_accuracy']:.3f}")
    ax.axhline(report["mca"], color="#c44e52", linestyle=":", label=f"mCA {report['mca']:.3f}")
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=7)
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title or f"Common corruptions ({report['benchmark']} constants, severities {list(report['per_severity'])})", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
