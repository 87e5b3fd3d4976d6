"""Name -> loss function registry, so recipes and users pick a distillation loss by name.

A registered loss is a pure function ``fn(student_logits, teacher_logits, **hyper_parameters) -> dict`` that
returns its named terms plus their sum under ``"loss"``. Two optional keyword arguments are filled in by the
trainer when the function declares them: ``labels`` (the ground-truth class ids) and ``epoch`` (the float epoch,
for warm-up schedules such as DKD's).
"""

from __future__ import annotations

import difflib
import inspect
from typing import Callable, Protocol

import torch

LossTerms = dict[str, torch.Tensor]
CONTEXT_ARGUMENTS = ("labels", "epoch")
"""Keyword arguments a loss may declare that the trainer supplies (they are not hyper-parameters)."""


class DistillationLoss(Protocol):
    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, **kwargs) -> LossTerms: ...


_LOSSES: dict[str, DistillationLoss] = {}


def register_loss(name: str) -> Callable[[DistillationLoss], DistillationLoss]:
    """Decorator that registers ``fn`` under ``name`` (lower-case). Re-registering a name raises.

    Example:
        >>> @register_loss("my_mse")
        ... def my_mse(student_logits, teacher_logits, temperature=1.0):
        ...     value = (student_logits - teacher_logits).pow(2).mean()
        ...     return {"kd_mse": value, "loss": value}
    """
    key = name.lower()

    def decorator(fn: DistillationLoss) -> DistillationLoss:
        if key in _LOSSES and _LOSSES[key] is not fn:
            raise ValueError(f"A loss named {key!r} is already registered ({_LOSSES[key].__module__}). Pick another name.")
        _LOSSES[key] = fn
        return fn

    return decorator


def available_losses() -> list[str]:
    """Sorted names of every registered loss."""
    return sorted(_LOSSES)


def get_loss(name: str) -> DistillationLoss:
    """Return the loss registered as ``name``; the error lists the valid names and the closest match."""
    key = str(name).lower()
    if key not in _LOSSES:
        close = difflib.get_close_matches(key, _LOSSES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown distillation loss {name!r}.{hint} Valid names: {', '.join(available_losses())}. "
            "Register your own with @r2kd_hf.register_loss('name')."
        )
    return _LOSSES[key]


def hyper_parameter_names(name: str) -> list[str]:
    """Keyword hyper-parameters a loss accepts (context arguments such as ``labels`` excluded)."""
    params = inspect.signature(get_loss(name)).parameters
    return [p for p in list(params)[2:] if p not in CONTEXT_ARGUMENTS and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def compute_loss_terms(
    name: str,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    epoch: float | None = None,
    **hyper_parameters,
) -> LossTerms:
    """Call the loss ``name``, passing ``labels``/``epoch`` only to losses that declare them."""
    fn = get_loss(name)
    params = inspect.signature(fn).parameters
    context = {"labels": labels, "epoch": epoch}
    for key, value in context.items():
        if key in params:
            if key == "labels" and value is None:
                raise ValueError(f"The {name!r} loss needs the ground-truth labels; pass `labels=`.")
            hyper_parameters[key] = value
    return fn(student_logits, teacher_logits, **hyper_parameters)


def validate_loss_kwargs(name: str, hyper_parameters: dict) -> None:
    """Fail fast on an unknown loss, unknown keyword or invalid value, by running the loss once on a tiny batch."""
    valid = hyper_parameter_names(name)
    unknown = sorted(set(hyper_parameters) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown hyper-parameter(s) {unknown} for loss {name!r}. Valid ones: {', '.join(valid) or '(none)'}."
        )
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    compute_loss_terms(name, student, teacher, labels=torch.tensor([0, 1, 2, 0]), epoch=1.0, **hyper_parameters)
