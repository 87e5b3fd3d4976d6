"""Logit distillation losses, all reachable by name through one registry.

Every loss is a pure function of ``(student_logits, teacher_logits, **hyper_parameters)`` that returns a dict of
named terms and their sum under ``"loss"``; the trainer logs every term.
"""

from .cmkd import cmkd_loss
from .dist import dist_loss
from .dkd import dkd_loss
from .kd import kd_loss
from .r2kd import RANK_MODES, VALUE_SIMILARITIES, r2kd_loss
from .registry import (
    LossEntry,
    available_losses,
    bind_loss,
    compute_loss_terms,
    get_loss,
    has_batch_wise_terms,
    hyper_parameter_names,
    loss_entry,
    register_loss,
    validate_loss_kwargs,
)

__all__ = [
    "LossEntry",
    "bind_loss",
    "loss_entry",
    "RANK_MODES",
    "VALUE_SIMILARITIES",
    "available_losses",
    "cmkd_loss",
    "compute_loss_terms",
    "dist_loss",
    "dkd_loss",
    "get_loss",
    "has_batch_wise_terms",
    "hyper_parameter_names",
    "kd_loss",
    "r2kd_loss",
    "register_loss",
    "validate_loss_kwargs",
]
