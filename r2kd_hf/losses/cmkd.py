"""CMKD-style correlation matching (Niu, Wang, Cai, Hou, arXiv:2410.06561).

The CMKD paper's exact formula, soft-ranking method and difficulty weighting are not public (no code, and only the
abstract could be read). This module implements what the abstract states (a Pearson loss on probability values, a
Spearman loss on class ranks, per-sample weights from sample difficulty) with these **assumptions** of ours:

* Pearson term: DIST-style ``1 - ρ_p`` per sample, plus the per-class (across-batch) Pearson term, each ``× T²``.
* Spearman term: ``1 - ρ_p`` between the student's sigmoid soft ranks (differentiable) and the teacher's hard ranks.
* Difficulty: the teacher's normalised entropy ``w_i = H(q_i) / log C ∈ [0, 1]``; a hard (high-entropy) sample leans
  on the rank term, an easy one on the value term: ``(1 − w_i)·d_P + w_i·d_S``.

Replace these when the paper's definitions become available; the function keeps its name and signature.
"""

from __future__ import annotations

import math

import torch

from .functional import check_pair, hard_rank, pearson_correlation, soft_rank, softmax_fp32
from .. import citations
from .registry import LossTerms, register_loss


@register_loss("cmkd", citation=citations.CMKD)
def cmkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    weight: float = 2.0,
    intra_weight: float = 1.0,
    soft_rank_strength: float = 0.1,
    dynamic_weighting: bool = True,
) -> LossTerms:
    r"""Per-sample difficulty-weighted Pearson + Spearman correlation distance (assumptions in the module docstring).

    .. math::
        w_i = \frac{H(q_i)}{\log C},\quad
        L = \lambda T^2\Big[\tfrac1B\sum_i (1-w_i)\,d_P(p_i, q_i) + w_i\,d_S(p_i, q_i)
            + \lambda_{intra}\,\tfrac1C\sum_j d_P(p_{:,j}, q_{:,j})\Big]

    With ``dynamic_weighting=False`` every ``w_i = 0.5``.

    Returns:
        ``{"kd_pearson", "kd_spearman", "kd_intra", "loss"}``.
    """
    check_pair(student_logits, teacher_logits, temperature)
    if not soft_rank_strength > 0:
        raise ValueError(f"soft_rank_strength must be > 0, got {soft_rank_strength}.")
    p_student = softmax_fp32(student_logits, temperature)
    p_teacher = softmax_fp32(teacher_logits, temperature)
    num_classes = p_student.shape[1]
    if dynamic_weighting and num_classes > 1:
        entropy = -(p_teacher * p_teacher.clamp_min(1e-12).log()).sum(1)
        difficulty = (entropy / math.log(num_classes)).clamp(0.0, 1.0).detach()
    else:
        difficulty = torch.full_like(p_student[:, 0], 0.5)
    d_pearson = 1.0 - pearson_correlation(p_student, p_teacher, dim=1)
    student_ranks = soft_rank(torch.log_softmax(student_logits.float() / temperature, dim=1), soft_rank_strength)
    d_spearman = 1.0 - pearson_correlation(student_ranks, hard_rank(p_teacher), dim=1)
    scale = weight * temperature**2
    pearson_term = scale * ((1.0 - difficulty) * d_pearson).mean()
    spearman_term = scale * (difficulty * d_spearman).mean()
    if p_student.shape[0] > 1:
        intra = scale * intra_weight * (1.0 - pearson_correlation(p_student, p_teacher, dim=0).mean())
    else:
        intra = p_student.new_zeros(())
    return {"kd_pearson": pearson_term, "kd_spearman": spearman_term, "kd_intra": intra, "loss": pearson_term + spearman_term + intra}
