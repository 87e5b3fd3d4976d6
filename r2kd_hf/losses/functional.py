"""Small differentiable statistics shared by the correlation-based losses (pure functions, fp32 inside)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8


def abs_cosine_similarity(a: torch.Tensor, b: torch.Tensor, dim: int = 1, eps: float = EPS) -> torch.Tensor:
    """``|a·b| / (‖a‖‖b‖ + eps)`` along ``dim``: the *uncentred* cosine of the R2KD reference code."""
    dot = (a * b).sum(dim)
    return dot.abs() / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


def pearson_correlation(a: torch.Tensor, b: torch.Tensor, dim: int = 1, eps: float = EPS) -> torch.Tensor:
    """Pearson correlation along ``dim``: the cosine of the mean-centred vectors (as in DIST).

    A constant vector has no defined correlation; it yields 0 here (distance 1), never NaN.
    """
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return F.cosine_similarity(a, b, dim=dim, eps=eps)


def hard_rank(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """1-based ranks along ``dim`` (``argsort(argsort(x)) + 1``); ties are broken by position. No gradient."""
    return x.argsort(dim=dim).argsort(dim=dim).to(torch.float32) + 1.0


def soft_rank(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Differentiable 1-based ranks along the last dim: ``r_i = 0.5 + Σ_j σ((x_i − x_j)/strength)``.

    As ``strength → 0`` this tends to :func:`hard_rank` (ties count half). Memory is O(C²) per row.
    """
    diff = (x.unsqueeze(-1) - x.unsqueeze(-2)) / strength
    return 0.5 + torch.sigmoid(diff).sum(-1)


def softmax_fp32(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(z / T)`` computed in float32 whatever the input dtype (bf16/fp16 logits are common)."""
    return F.softmax(logits.float() / temperature, dim=1)


def check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> None:
    """Shared argument checks with messages that say what to fix."""
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "Student and teacher logits must both be (batch, num_classes) with the same shape; got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}. Check that both models predict the "
            "same label set."
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
