"""Loss values against independent float64 re-implementations written from the papers' formulas."""

import math

import numpy as np
import pytest
import torch

from r2kd_hf import available_losses, dist_loss, dkd_loss, get_loss, kd_loss, r2kd_loss, register_loss
from r2kd_hf.losses import cmkd_loss, compute_loss_terms, validate_loss_kwargs


def _softmax(z, t):
    z = np.asarray(z, dtype=np.float64) / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _eisen(u, v):
    return abs(float(np.dot(u, v))) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-8)


def _pearson(u, v):
    u, v = u - u.mean(), v - v.mean()
    return float(np.dot(u, v)) / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-8)


def _ranks(x):
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    return ranks


def reference_r2kd(zs, zt, T=4.0, wv=2.0, wr=2.0):
    """The loss as the R2KD reference code computes it, loop by loop."""
    p, q = _softmax(zs, T), _softmax(zt, T)
    b, c = p.shape
    inter = 1 - np.mean([_eisen(p[i], q[i]) for i in range(b)])
    intra = 1 - np.mean([_eisen(p[:, j], q[:, j]) for j in range(c)])
    value = wv * T * T * (inter + intra)
    rank = wr * (1 - np.mean([_pearson(_ranks(p[i]), _ranks(q[i])) for i in range(b)]))
    return value, rank


def test_r2kd_matches_independent_reference(rng):
    zs, zt = torch.randn(16, 10, generator=rng) * 3, torch.randn(16, 10, generator=rng) * 3
    out = r2kd_loss(zs, zt)
    value, rank = reference_r2kd(zs.numpy(), zt.numpy())
    assert out["kd_value"].item() == pytest.approx(value, rel=1e-5)
    assert out["kd_rank"].item() == pytest.approx(rank, rel=1e-5)
    assert out["loss"].item() == pytest.approx(value + rank, rel=1e-5)


def test_r2kd_hand_worked_value():
    # Two samples, two classes, T=1: P rows [.5,.5] (z=0,0) and Q one-hot-ish softmax([0, ln 3]) = [.25,.75].
    zs = torch.zeros(2, 2)
    zt = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    out = r2kd_loss(zs, zt, temperature=1.0, value_weight=1.0, rank_mode="off")
    # per sample: cos([.5,.5],[.25,.75]) = 0.5 / (0.7071 * 0.7906) = 0.894427; per class: columns are constant -> 1.
    assert out["kd_value"].item() == pytest.approx(1 - 2 / math.sqrt(5), rel=1e-5)


def test_monitor_rank_has_no_gradient_and_soft_rank_has():
    zs = torch.randn(8, 5, requires_grad=True)
    zt = torch.randn(8, 5)
    monitor = r2kd_loss(zs, zt, value_weight=0.0, rank_mode="monitor")
    assert not monitor["kd_rank"].requires_grad
    soft = r2kd_loss(zs, zt, value_weight=0.0, rank_mode="soft")
    soft["loss"].backward()
    assert zs.grad is not None and zs.grad.abs().sum() > 0
    off = r2kd_loss(zs, zt, rank_mode="off")
    assert off["kd_rank"].item() == 0.0


def test_soft_rank_approaches_hard_rank():
    from r2kd_hf.losses.functional import hard_rank, soft_rank

    x = torch.tensor([[0.3, -1.0, 2.0, 0.9]])
    assert torch.allclose(soft_rank(x, 1e-3), hard_rank(x), atol=1e-3)


def test_pearson_option_matches_dist_formula(rng):
    zs, zt = torch.randn(6, 7, generator=rng), torch.randn(6, 7, generator=rng)
    r2 = r2kd_loss(zs, zt, value_similarity="pearson", rank_mode="off")
    dist = dist_loss(zs, zt, temperature=4.0, beta=2.0, gamma=2.0)
    assert r2["kd_value"].item() == pytest.approx(dist["loss"].item(), rel=1e-5)


def test_dist_matches_independent_reference(rng):
    zs, zt = torch.randn(5, 4, generator=rng), torch.randn(5, 4, generator=rng)
    p, q = _softmax(zs.numpy(), 1.0), _softmax(zt.numpy(), 1.0)
    inter = 1 - np.mean([_pearson(p[i], q[i]) for i in range(5)])
    intra = 1 - np.mean([_pearson(p[:, j], q[:, j]) for j in range(4)])
    out = dist_loss(zs, zt, temperature=1.0, beta=1.0, gamma=3.0)
    assert out["kd_inter"].item() == pytest.approx(inter, rel=1e-5)
    assert out["kd_intra"].item() == pytest.approx(3 * intra, rel=1e-5)


def test_kd_matches_kl_formula(rng):
    zs, zt = torch.randn(4, 6, generator=rng), torch.randn(4, 6, generator=rng)
    p, q = _softmax(zs.numpy(), 2.0), _softmax(zt.numpy(), 2.0)
    kl = np.mean(np.sum(q * (np.log(q) - np.log(p)), axis=1)) * 4.0
    assert kd_loss(zs, zt, temperature=2.0)["loss"].item() == pytest.approx(kl, rel=1e-5)


def test_dkd_matches_independent_reference(rng):
    zs, zt = torch.randn(4, 5, generator=rng), torch.randn(4, 5, generator=rng)
    labels = torch.tensor([0, 3, 1, 4])
    T, alpha, beta = 2.0, 1.0, 3.0
    p, q = _softmax(zs.numpy(), T), _softmax(zt.numpy(), T)
    tckd = nckd = 0.0
    for i, y in enumerate(labels.tolist()):
        bs, bt = np.array([p[i, y], 1 - p[i, y]]), np.array([q[i, y], 1 - q[i, y]])
        tckd += np.sum(bt * np.log(bt / bs))
        mask = np.arange(5) != y
        ps, qt = p[i, mask] / p[i, mask].sum(), q[i, mask] / q[i, mask].sum()
        nckd += np.sum(qt * np.log(qt / ps))
    out = dkd_loss(zs, zt, labels, temperature=T, alpha=alpha, beta=beta, epoch=None)
    assert out["kd_tckd"].item() == pytest.approx(alpha * tckd / 4 * T * T, rel=1e-4)
    assert out["kd_nckd"].item() == pytest.approx(beta * nckd / 4 * T * T, rel=1e-4)
    half = dkd_loss(zs, zt, labels, temperature=T, alpha=alpha, beta=beta, warmup_epochs=20, epoch=10)
    assert half["loss"].item() == pytest.approx(0.5 * out["loss"].item(), rel=1e-5)


def test_cmkd_weights_follow_teacher_entropy():
    zs = torch.randn(2, 4)
    confident = torch.tensor([[20.0, 0, 0, 0], [20.0, 0, 0, 0]])
    out = cmkd_loss(zs, confident, temperature=1.0)
    # A near one-hot teacher has ~0 entropy: the Spearman share vanishes.
    assert out["kd_spearman"].item() < 1e-4
    flat = cmkd_loss(zs, torch.zeros(2, 4), temperature=1.0, intra_weight=0.0)
    assert flat["kd_pearson"].item() < 1e-4  # uniform teacher -> weight 1 on ranks


@pytest.mark.parametrize("name", ["r2kd", "dist", "kd", "dkd", "cmkd"])
@pytest.mark.parametrize(
    "case",
    ["batch_of_one", "constant_logits", "one_hot_teacher", "huge_logits", "bf16", "fp16"],
)
def test_edge_cases_are_finite_and_differentiable(name, case):
    generator = torch.Generator().manual_seed(0)
    batch = 1 if case == "batch_of_one" else 6
    zs = torch.randn(batch, 5, generator=generator)
    zt = torch.randn(batch, 5, generator=generator)
    if case == "constant_logits":
        zs, zt = torch.zeros_like(zs), torch.full_like(zt, 3.0)
    if case == "one_hot_teacher":
        zt = torch.nn.functional.one_hot(torch.arange(batch) % 5, 5).float() * 1e4
    if case == "huge_logits":
        zs, zt = zs * 1e4, zt * 1e4
    if case in ("bf16", "fp16"):
        dtype = torch.bfloat16 if case == "bf16" else torch.float16
        zs, zt = zs.to(dtype), zt.to(dtype)
    zs.requires_grad_(True)
    out = compute_loss_terms(name, zs, zt, labels=torch.arange(batch) % 5, epoch=100.0)
    for term, value in out.items():
        assert value.dtype == torch.float32, term
        assert torch.isfinite(value).all(), (term, value)
    out["loss"].backward()
    assert torch.isfinite(zs.grad).all()


def test_batch_of_one_skips_the_per_class_term():
    zs, zt = torch.randn(1, 4), torch.randn(1, 4)
    out = dist_loss(zs, zt)
    assert out["kd_intra"].item() == 0.0


def test_registry_and_errors():
    assert set(available_losses()) >= {"r2kd", "dist", "kd", "dkd", "cmkd"}
    with pytest.raises(ValueError, match="Valid choices: "):
        get_loss("r2dk")
    with pytest.raises(ValueError, match="Did you mean 'r2kd'"):
        get_loss("r2kdd")
    with pytest.raises(ValueError, match="rank_mode"):
        r2kd_loss(torch.randn(2, 3), torch.randn(2, 3), rank_mode="hard")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        r2kd_loss(torch.randn(2, 3), torch.randn(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="Unknown hyper-parameter"):
        validate_loss_kwargs("dist", {"alpha": 1.0})

    @register_loss("test_l2")
    def l2(student_logits, teacher_logits, temperature=1.0):
        value = (student_logits - teacher_logits).pow(2).mean()
        return {"kd_l2": value, "loss": value}

    out = compute_loss_terms("test_l2", torch.ones(2, 2), torch.zeros(2, 2))
    assert out["loss"].item() == 1.0
    with pytest.raises(ValueError, match="already registered"):
        register_loss("test_l2")(lambda s, t: {"loss": s.sum()})


def test_losses_that_couple_a_batch_warn_under_gradient_accumulation(tmp_path, caplog):
    """Per-class correlations (DIST, R2KD, CMKD) change with micro-batches; per-sample KL (KD, DKD) does not."""
    import logging

    from r2kd_hf import R2KDConfig
    from r2kd_hf.losses import has_batch_wise_terms

    assert {n: has_batch_wise_terms(n, {"temperature": 4.0}) for n in ("kd", "dkd", "dist", "r2kd", "cmkd")} == {
        "kd": False, "dkd": False, "dist": True, "r2kd": True, "cmkd": True}
    for loss_name, accumulation, warned in (("r2kd", 4, True), ("r2kd", 1, False), ("kd", 4, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="r2kd_hf.config"):
            R2KDConfig(output_dir=str(tmp_path), loss_name=loss_name, gradient_accumulation_steps=accumulation,
                       per_device_train_batch_size=16, use_cpu=True)
        messages = [r.getMessage() for r in caplog.records if "micro-batches of 16, not over the 64 images" in r.getMessage()]
        assert bool(messages) == warned, (loss_name, accumulation, messages)
