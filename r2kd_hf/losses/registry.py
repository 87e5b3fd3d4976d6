"""Name -> loss function registry, so recipes and users pick a distillation loss by name.

A registered loss is a pure function ``fn(student_logits, teacher_logits, **hyper_parameters) -> dict`` that
returns its named terms plus their sum under ``"loss"``. Its registration declares the context it needs
(``labels``, ``epoch``) and its citation; :func:`bind_loss` binds the hyper-parameters once, at setup.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Protocol

import torch

from ..registry import Entry, Registry

LossTerms = dict[str, torch.Tensor]
CONTEXT_ARGUMENTS = ("labels", "epoch")
"""Keyword arguments a loss may declare at registration; the trainer supplies them (they are not hyper-parameters)."""


class DistillationLoss(Protocol):
    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, **kwargs) -> LossTerms: ...


LossEntry = Entry
LOSSES = Registry("distillation loss", CONTEXT_ARGUMENTS, "@r2kd_hf.register_loss('name')")


def register_loss(name: str, *, needs: tuple[str, ...] = (), citation: str = "") -> Callable[[DistillationLoss], DistillationLoss]:
    """Decorator that registers ``fn`` under ``name`` (lower-case). Re-registering a name raises.

    Args:
        needs: context the trainer must pass, among ``labels`` (ground-truth class ids) and ``epoch`` (counted
            from 1, for warm-ups such as DKD's). Declared here, never guessed from the signature.
        citation: BibTeX of the method, written into model cards.

    Example:
        >>> @register_loss("my_mse")
        ... def my_mse(student_logits, teacher_logits, temperature=1.0):
        ...     value = (student_logits - teacher_logits).pow(2).mean()
        ...     return {"kd_mse": value, "loss": value}
    """
    return LOSSES.register(name, needs=needs, citation=citation)


def available_losses() -> list[str]:
    """Sorted names of every registered loss."""
    return sorted(LOSSES.names())


def loss_entry(name: str) -> Entry:
    """The registration of ``name``; the error lists the valid names and the closest match."""
    return LOSSES.entry(name)


def get_loss(name: str) -> DistillationLoss:
    """Return the loss function registered as ``name``."""
    return loss_entry(name).fn


def hyper_parameter_names(name: str) -> list[str]:
    """Keyword hyper-parameters a loss accepts (its declared context excluded): for validating recipes."""
    entry = loss_entry(name)
    params = inspect.signature(entry.fn).parameters
    return [p for p in list(params)[2:] if p not in entry.needs and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def bind_loss(name: str, **hyper_parameters) -> Callable[..., LossTerms]:
    """``fn(student_logits, teacher_logits, labels=None, epoch=None)`` with the hyper-parameters bound once.

    Only the context the loss declared at registration is passed on.
    """
    entry = loss_entry(name)
    bound = functools.partial(entry.fn, **hyper_parameters)

    def loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels=None, epoch=None) -> LossTerms:
        context = {"labels": labels, "epoch": epoch}
        if "labels" in entry.needs and labels is None:
            raise ValueError(f"The {entry.name!r} loss needs the ground-truth labels; pass `labels=`.")
        return bound(student_logits, teacher_logits, **{k: context[k] for k in entry.needs})

    loss.entry = entry
    return loss


def compute_loss_terms(
    name: str,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    epoch: float | None = None,
    **hyper_parameters,
) -> LossTerms:
    """Call the loss ``name`` once (binds the hyper-parameters, passes the declared context)."""
    return bind_loss(name, **hyper_parameters)(student_logits, teacher_logits, labels=labels, epoch=epoch)


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
    compute_loss_terms(name, student, teacher, labels=torch.tensor([0, 1, 2, 0]), epoch=1, **hyper_parameters)


def has_batch_wise_terms(name: str, hyper_parameters: dict) -> bool:
    """Whether the loss couples the samples of a batch (DIST's and R2KD's per-class correlations do; KD's per-sample
    KL does not): its value on 8 samples differs from the mean of its values on the two halves."""
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 5, generator=generator), torch.randn(8, 5, generator=generator)
    labels = torch.arange(8) % 5
    terms = [compute_loss_terms(name, student[part], teacher[part], labels=labels[part], epoch=1, **hyper_parameters)["loss"]
             for part in (slice(0, 8), slice(0, 4), slice(4, 8))]
    return not torch.allclose(terms[0], (terms[1] + terms[2]) / 2, rtol=1e-5, atol=1e-6)
