"""What the R2KD reference code does, point by point, and where our defaults and options stand against it.

The reference is the authors' code (GitHub ``Seonghak35/R2KD``, built on mdistiller). Each :class:`ReferencePoint`
names the recipe field that controls the behaviour, the reference's value, and why it matters. ``--print_recipe``
marks every resolved field that differs from the reference with these notes, and ``docs/reference_fidelity.md`` is
generated from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReferencePoint:
    field: str
    reference: Any
    why: str
    source: str


REFERENCE_POINTS: tuple[ReferencePoint, ...] = (
    ReferencePoint("max_grad_norm", 0.0, "the reference never clips; transformers clips at 1.0, which shrinks R2KD steps 10-25x", "engine/trainer.py"),
    ReferencePoint("weight_decay_all_parameters", True, "plain SGD decays biases and BatchNorm weights too", "engine/trainer.py"),
    ReferencePoint("optim", "sgd", "SGD, no Nesterov", "engine/trainer.py"),
    ReferencePoint("optim_args", "momentum=0.9", "momentum 0.9", "engine/cfg.py"),
    ReferencePoint("weight_decay", 0.0005, "weight decay 5e-4", "configs/tiny/r2kd/*.yaml"),
    ReferencePoint("per_device_train_batch_size", 64, "batch 64 on one GPU; the per-class term depends on the batch", "configs/tiny/r2kd/*.yaml"),
    ReferencePoint("num_train_epochs", 240, "240 epochs", "configs/tiny/r2kd/*.yaml"),
    ReferencePoint("lr_scheduler_type", "constant", "step schedule only (lr_decay_epochs), no cosine/linear decay", "engine/utils.py"),
    ReferencePoint("lr_decay_epochs", [150, 180, 210], "x0.1 at epochs 150, 180, 210 (epochs counted from 1)", "engine/utils.py"),
    ReferencePoint("lr_decay_rate", 0.1, "x0.1 per milestone", "engine/utils.py"),
    ReferencePoint("warmup_steps", 0, "no warm-up", "engine/utils.py"),
    ReferencePoint("dataloader_drop_last", False, "the last partial batch is kept", "dataset/*.py"),
    ReferencePoint("seed", 42, "seed 42", "tools/train.py"),
    ReferencePoint("label_smoothing_factor", 0.0, "no label smoothing", "distillers/R2KD.py"),
    ReferencePoint("loss_name", "r2kd", "the method", "distillers/R2KD.py"),
    ReferencePoint("temperature", 4.0, "T = 4", "engine/cfg.py"),
    ReferencePoint(
        "loss_kwargs",
        {"value_weight": 2.0, "rank_weight": 2.0, "rank_mode": "monitor", "value_similarity": "cosine"},
        "value/rank weights 2/2; uncentred |cos| value term; hard-rank Spearman term without gradient",
        "distillers/R2KD.py",
    ),
    ReferencePoint("ce_weight", 1.0, "CE weight 1 on the clean view only", "engine/cfg.py"),
    ReferencePoint("kd_weight", 1.0, "KD terms summed without extra weight", "distillers/R2KD.py"),
    ReferencePoint("aug_kd_weight", 1.0, "the second view gets the KD terms only, weight 1", "distillers/R2KD.py"),
    ReferencePoint("second_view", "cutmix", "CLI default cutmix (mixup, cutout, autoaug, cutmixpick are the others)", "tools/train.py"),
    ReferencePoint("prune_teacher", True, "the R2KD distiller always has a pruned teacher", "tools/train.py"),
    ReferencePoint("teacher_prune_method", "l1_unstructured", "layer-wise L1 on every Conv2d/Linear weight, no fine-tuning", "engine/utils.py"),
    ReferencePoint("teacher_prune_amount", 0.1, "10 % of each layer's weights", "engine/cfg.py"),
    ReferencePoint("pruned_teacher_weight", 0.3, "target = 0.7 teacher + 0.3 pruned teacher (logits)", "engine/cfg.py"),
    ReferencePoint("pruned_teacher_bn", "batch_stats", "the pruned copy stays in train mode: BatchNorm uses batch statistics", "distillers/_base.py"),
    ReferencePoint("transform_style", "cifar", "RandomCrop with padding + horizontal flip", "dataset/*.py"),
    ReferencePoint("teacher_precision", "fp32", "fp32 teachers (bf16 is an r2kd_hf option; its measured effect is in "
                   "docs/fast_path_and_gpus.md)", "distillers/_base.py"),
)
"""Points with a single reference value; :func:`differences` compares a resolved recipe with them."""



def _same(value: Any, reference: Any) -> bool:
    if isinstance(reference, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(float(value) - reference) < 1e-12
    if isinstance(reference, list) and isinstance(value, (list, tuple)):
        return len(value) == len(reference) and all(_same(v, r) for v, r in zip(value, reference))
    return value == reference


def differences(resolved: dict[str, Any]) -> dict[str, str]:
    """``{field: note}`` for every field of ``resolved`` (a flat field -> value mapping) that differs from the reference.

    ``loss_kwargs`` is compared key by key, and only for the R2KD loss (other losses have other hyper-parameters).
    """
    notes: dict[str, str] = {}
    for point in REFERENCE_POINTS:
        if point.field not in resolved:
            continue
        value = resolved[point.field]
        if point.field == "loss_kwargs":
            if resolved.get("loss_name") != "r2kd":
                continue
            changed = {k: value[k] for k in point.reference if k in (value or {}) and not _same(value[k], point.reference[k])}
            if changed:
                ref = {k: point.reference[k] for k in changed}
                notes[point.field] = f"reference {ref}: {point.why}"
        elif not _same(value, point.reference):
            notes[point.field] = f"reference {point.reference!r}: {point.why}"
    return notes


def annotate_recipe_text(text: str, resolved: dict[str, Any]) -> str:
    """Append ``# differs from the reference ...`` to the YAML line of every field that differs."""
    notes = differences(resolved)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        key = stripped.split(":", 1)[0] if line.startswith("  ") and not line.startswith("   ") and ":" in stripped else None
        if key in notes:
            line = f"{line}  # differs from the {notes[key]}"
        lines.append(line)
    header = (
        f"# {len(notes)} field(s) differ from the R2KD reference code (marked below); see docs/reference_fidelity.md.\n"
        if notes
        else "# every field with a reference value matches the R2KD reference code.\n"
    )
    return header + "\n".join(lines) + ("\n" if text.endswith("\n") else "")
