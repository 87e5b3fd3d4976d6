"""DKD: Decoupled Knowledge Distillation (Zhao et al., CVPR 2022, arXiv:2203.08679)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import check_pair
from .. import citations
from .registry import LossTerms, register_loss


@register_loss("dkd", needs=('labels', 'epoch'), citation=citations.DKD)
def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    warmup_epochs: float = 20.0,
    epoch: float | None = None,
) -> LossTerms:
    r"""Target-class (TCKD) and non-target-class (NCKD) KL terms, with a linear warm-up:

    .. math::
        L = \min(e / e_w, 1)\; T^2 \big[\alpha\,\mathrm{KL}(b^t \| b^s) + \beta\,\mathrm{KL}(\hat p^t \| \hat p^s)\big]

    where :math:`b=[p_y, 1-p_y]` are the binary target/non-target probabilities and :math:`\hat p` the softmax over
    the non-target logits only. mdistiller CIFAR defaults: T=4, alpha=1, beta=8 (2 for ResNet56→20, 6 for some
    pairs), warm-up 20 epochs; ImageNet: T=1, beta=0.5, warm-up 1. ``epoch=None`` disables the warm-up.

    Returns:
        ``{"kd_tckd", "kd_nckd", "loss"}``.
    """
    check_pair(student_logits, teacher_logits, temperature)
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}.")
    z_student, z_teacher = student_logits.float() / temperature, teacher_logits.float() / temperature
    target = F.one_hot(labels.long(), num_classes=z_student.shape[1]).bool()
    p_student, p_teacher = F.softmax(z_student, dim=1), F.softmax(z_teacher, dim=1)

    def binary(p: torch.Tensor) -> torch.Tensor:
        p_target = (p * target).sum(1, keepdim=True)
        return torch.cat([p_target, 1.0 - p_target], dim=1).clamp_min(1e-12)

    batch = z_student.shape[0]
    b_student, b_teacher = binary(p_student), binary(p_teacher)
    tckd = (b_teacher * (b_teacher.log() - b_student.log())).sum() / batch * temperature**2
    # Masking the target logit with a large negative value renormalises over the non-target classes.
    log_q_student = F.log_softmax(z_student.masked_fill(target, -1e4), dim=1)
    log_q_teacher = F.log_softmax(z_teacher.masked_fill(target, -1e4), dim=1)
    nckd = F.kl_div(log_q_student, log_q_teacher, reduction="sum", log_target=True) / batch * temperature**2
    warmup = 1.0 if epoch is None or warmup_epochs == 0 else min(float(epoch) / warmup_epochs, 1.0)
    tckd, nckd = warmup * alpha * tckd, warmup * beta * nckd
    return {"kd_tckd": tckd, "kd_nckd": nckd, "loss": tckd + nckd}
