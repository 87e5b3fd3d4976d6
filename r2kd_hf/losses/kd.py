"""Classic logit distillation (Hinton, Vinyals, Dean, 2015, arXiv:1503.02531)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import check_pair
from .. import citations
from .registry import LossTerms, register_loss


@register_loss("kd", citation=citations.KD)
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> LossTerms:
    r"""Temperature-scaled KL divergence, averaged over the batch:

    .. math:: L = T^2 \, \tfrac1B \sum_i \mathrm{KL}\big(\mathrm{softmax}(z_{t,i}/T) \,\|\, \mathrm{softmax}(z_{s,i}/T)\big)

    The ``T²`` factor keeps gradient magnitudes comparable across temperatures. mdistiller's CIFAR setting is
    T=4 with CE weight 0.1 and KD weight 0.9 (set ``ce_weight``/``kd_weight`` in the config).

    Returns:
        ``{"kd_kl", "loss"}``.
    """
    check_pair(student_logits, teacher_logits, temperature)
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * temperature**2
    return {"kd_kl": kl, "loss": kl}
