"""R2KD correlation-distance loss (Kim, Ham, Cho, Kim, IEEE TKDE 2024, arXiv:2311.13934)."""

from __future__ import annotations

import torch

from .functional import abs_cosine_similarity, check_pair, hard_rank, pearson_correlation, soft_rank, softmax_fp32
from .. import citations
from .registry import LossTerms, register_loss

RANK_MODES = ("monitor", "soft", "off")
VALUE_SIMILARITIES = ("cosine", "pearson")


@register_loss("r2kd", citation=citations.R2KD)
def r2kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    value_weight: float = 2.0,
    rank_weight: float = 2.0,
    rank_mode: str = "monitor",
    value_similarity: str = "cosine",
    soft_rank_strength: float = 0.1,
) -> LossTerms:
    r"""R2KD correlation distance between softmaxed student and teacher predictions.

    With :math:`P=\mathrm{softmax}(z_s/T)`, :math:`Q=\mathrm{softmax}(z_t/T)` (rows: B samples, columns: C classes)
    and a similarity :math:`e`,

    .. math::
        L_{value} = \lambda_v T^2 \Big[\big(1-\tfrac1B\sum_i e(P_{i,:},Q_{i,:})\big)
                    + \big(1-\tfrac1C\sum_j e(P_{:,j},Q_{:,j})\big)\Big]

        L_{rank} = \lambda_r \big(1 - \tfrac1B \sum_i \rho_{Spearman}(P_{i,:}, Q_{i,:})\big)

    The first bracket is per sample across classes, the second per class across the batch.

    Faithful to the authors' code (``Seonghak35/R2KD``): ``value_similarity="cosine"`` is the **uncentred**
    ``|u·v| / (‖u‖‖v‖ + 1e-8)``; ``"pearson"`` centres the vectors first (the DIST choice, an option here).
    ``rank_mode="monitor"`` reproduces the reference: hard ranks (argsort), so the rank term carries **no gradient**
    and only shifts the logged loss. ``"soft"`` makes it differentiable with sigmoid soft ranks of the student's
    log-probabilities (``soft_rank_strength`` in units of ``z/T``; the teacher keeps hard ranks). ``"off"`` drops it.

    A batch of one sample has no per-class (across-batch) statistics: that term is skipped (0) for ``B == 1``.
    Inputs of any float dtype are computed in float32.

    Args:
        student_logits: ``(B, C)`` student logits.
        teacher_logits: ``(B, C)`` target logits (already mixed with the pruned teacher when R2KD pruning is on).
        temperature: ``T``; reference 4.
        value_weight: ``λ_v``; reference 2.
        rank_weight: ``λ_r``; reference 2 (no ``T²`` factor, as in the code).
        rank_mode: one of ``"monitor"`` (reference), ``"soft"``, ``"off"``.
        value_similarity: ``"cosine"`` (reference) or ``"pearson"``.
        soft_rank_strength: temperature of the soft rank (``rank_mode="soft"`` only).

    Returns:
        ``{"kd_value", "kd_rank", "loss"}``; ``loss = kd_value + kd_rank``.
    """
    check_pair(student_logits, teacher_logits, temperature)
    if rank_mode not in RANK_MODES:
        raise ValueError(f"Unknown rank_mode {rank_mode!r}; valid: {', '.join(RANK_MODES)}.")
    if value_similarity not in VALUE_SIMILARITIES:
        raise ValueError(f"Unknown value_similarity {value_similarity!r}; valid: {', '.join(VALUE_SIMILARITIES)}.")
    if rank_mode == "soft" and not soft_rank_strength > 0:
        raise ValueError(f"soft_rank_strength must be > 0, got {soft_rank_strength}.")

    similarity = abs_cosine_similarity if value_similarity == "cosine" else pearson_correlation
    p_student = softmax_fp32(student_logits, temperature)
    p_teacher = softmax_fp32(teacher_logits, temperature)

    inter_class = 1.0 - similarity(p_student, p_teacher, dim=1).mean()
    if p_student.shape[0] > 1:
        intra_class = 1.0 - similarity(p_student, p_teacher, dim=0).mean()
    else:
        intra_class = p_student.new_zeros(())
    kd_value = value_weight * temperature**2 * (inter_class + intra_class)

    kd_rank = rank_weight * rank_distance(p_student, p_teacher, student_logits, temperature, rank_mode, soft_rank_strength)
    return {"kd_value": kd_value, "kd_rank": kd_rank, "loss": kd_value + kd_rank}


def rank_distance(p_student: torch.Tensor, p_teacher: torch.Tensor, student_logits: torch.Tensor, temperature: float,
                  rank_mode: str, soft_rank_strength: float) -> torch.Tensor:
    r"""``1 - mean_i ρ_Spearman(P_i, Q_i)``: detached hard ranks (``monitor``), soft student ranks (``soft``), or 0."""
    if rank_mode == "off":
        return p_student.new_zeros(())
    teacher_ranks = hard_rank(p_teacher)
    if rank_mode == "monitor":
        student_ranks = hard_rank(p_student)
    else:
        student_ranks = soft_rank(torch.log_softmax(student_logits.float() / temperature, dim=1), soft_rank_strength)
    distance = 1.0 - pearson_correlation(student_ranks, teacher_ranks, dim=1).mean()
    return distance.detach() if rank_mode == "monitor" else distance
