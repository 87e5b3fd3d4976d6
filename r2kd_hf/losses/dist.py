"""DIST: Knowledge Distillation from A Stronger Teacher (Huang et al., NeurIPS 2022, arXiv:2205.10536)."""

from __future__ import annotations

import torch

from .functional import check_pair, pearson_correlation, softmax_fp32
from .. import citations
from .registry import LossTerms, register_loss


@register_loss("dist", citation=citations.DIST)
def dist_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    beta: float = 2.0,
    gamma: float = 2.0,
) -> LossTerms:
    r"""DIST inter- and intra-class relation losses with Pearson distance :math:`d_p = 1 - \rho_p`.

    .. math::
        L = \beta\,\tau^2 \tfrac1B\sum_i d_p(Y^s_{i,:}, Y^t_{i,:}) + \gamma\,\tau^2 \tfrac1C\sum_j d_p(Y^s_{:,j}, Y^t_{:,j}),
        \quad Y = \mathrm{softmax}(Z/\tau)

    The official configs use ``kd_loss_weight=2`` with ``beta=gamma=1``, i.e. effective ``beta=gamma=2`` (the
    defaults here); ``tau=4`` on CIFAR-100 and ``tau=1`` on ImageNet. For ``B == 1`` the intra term is skipped (0).

    Returns:
        ``{"kd_inter", "kd_intra", "loss"}``.
    """
    check_pair(student_logits, teacher_logits, temperature)
    p_student = softmax_fp32(student_logits, temperature)
    p_teacher = softmax_fp32(teacher_logits, temperature)
    inter = beta * temperature**2 * (1.0 - pearson_correlation(p_student, p_teacher, dim=1).mean())
    if p_student.shape[0] > 1:
        intra = gamma * temperature**2 * (1.0 - pearson_correlation(p_student, p_teacher, dim=0).mean())
    else:
        intra = p_student.new_zeros(())
    return {"kd_inter": inter, "kd_intra": intra, "loss": inter + intra}
