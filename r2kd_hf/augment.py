"""The second, augmented view of R2KD: batch augmentations applied on device, during training only.

Following the reference code (after Wang et al., "What makes a good data augmentation in knowledge distillation",
NeurIPS 2022), the augmented view is an *extra* view of every batch that receives the distillation terms only;
its labels are never used. Every view maps a normalised ``(B, 3, H, W)`` batch to an augmented batch, so the
student, the teacher and the pruned teacher all see exactly the same augmented images.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import torch

from . import citations
from .introspection import DEFAULT_MEAN, DEFAULT_STD
from .registry import Entry, Registry


VIEW_NEEDS = ("teacher_logits", "normalization")
VIEWS = Registry("second view", VIEW_NEEDS, "@r2kd_hf.register_view('name')")


def register_view(name: str, *, needs: tuple[str, ...] = (), citation: str = ""):
    """Class decorator registering a second view under ``name``.

    A view is called as ``view(x, teacher_logits=None) -> x_aug`` on a normalised ``(B, 3, H, W)`` batch.
    ``needs``: ``teacher_logits`` (the trainer passes the raw teacher's logits on the clean batch, as ``cutmixpick``
    needs), ``normalization`` (the view de-normalises, augments uint8 and re-normalises: it receives the run's
    ``mean``/``std``).
    """
    register = VIEWS.register(name, needs=needs, citation=citation)

    def decorator(cls: type) -> type:
        cls.needs_teacher_logits = "teacher_logits" in needs
        return register(cls)

    return decorator


def available_views() -> list[str]:
    """``none`` and every registered second view, in registration order."""
    return ["none", *VIEWS.names()]


def view_entry(name: str) -> Entry:
    return VIEWS.entry(name, extra_choices=("none",))


def _beta(alpha: float) -> float:
    return float(torch.distributions.Beta(alpha, alpha).sample())


@register_view("mixup", citation=citations.MIXUP)
class MixUp:
    """``λx + (1-λ)x[perm]`` with one ``λ ~ Beta(α, α)`` per batch (reference α = 0.2)."""

    def __init__(self, alpha: float = 0.2):
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be > 0, got {alpha}.")
        self.alpha = alpha

    def __call__(self, x: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        lam = _beta(self.alpha)
        perm = torch.randperm(x.shape[0], device=x.device)
        return x.mul(lam).add_(x[perm], alpha=1.0 - lam)


@register_view("cutmix", citation=citations.CUTMIX)
class CutMix:
    """Paste one box from a permuted batch; side ``√(1-λ)·size``, ``λ ~ Beta(α, α)`` (reference α = 1), clipped."""

    def __init__(self, alpha: float = 1.0):
        if alpha <= 0:
            raise ValueError(f"cutmix alpha must be > 0, got {alpha}.")
        self.alpha = alpha

    def __call__(self, x: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        height, width = x.shape[-2:]
        cut = math.sqrt(1.0 - _beta(self.alpha))
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        perm = torch.randperm(x.shape[0], device=x.device)
        mixed = x.clone()
        mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        return mixed


@register_view("cutout", citation=citations.CUTOUT)
class Cutout:
    """Zero a ``size × size`` square (clipped at the borders); reference: 8 px at 32 px, 16 px at 64 px (``size/4``).

    ``per_image=False`` (reference) places **one** hole at the same random position for the whole batch;
    ``per_image=True`` draws a position per image (the usual Cutout of DeVries & Taylor, 2017).
    """

    def __init__(self, size: int | None = None, holes: int = 1, per_image: bool = False):
        if size is not None and size < 1 or holes < 1:
            raise ValueError(f"cutout needs size >= 1 and holes >= 1, got size={size}, holes={holes}.")
        self.size, self.holes, self.per_image = size, holes, per_image

    def __call__(self, x: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = x.shape
        size = self.size or max(1, height // 4)
        positions = batch if self.per_image else 1
        ys = torch.arange(height, device=x.device).view(1, height, 1)
        xs = torch.arange(width, device=x.device).view(1, 1, width)
        keep = torch.ones(positions, height, width, dtype=torch.bool, device=x.device)
        for _ in range(self.holes):
            cy = torch.randint(height, (positions, 1, 1), device=x.device)
            cx = torch.randint(width, (positions, 1, 1), device=x.device)
            top, left = cy - size // 2, cx - size // 2
            hole = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
            keep &= ~hole
        return x * keep.unsqueeze(1).to(x.dtype)


class _PolicyView:
    """Apply a torchvision uint8 policy to a normalised batch: de-normalise, augment, re-normalise.

    As in the reference, one call on the whole batch samples **one** sub-policy for the batch.
    """

    def __init__(self, transform: Callable, mean=DEFAULT_MEAN, std=DEFAULT_STD):
        self.transform = transform
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        # Truncation to uint8, as the reference does (``.mul(255).type(torch.uint8)``); clamped so nothing wraps.
        images = ((x * std + mean) * 255.0).clamp_(0, 255).to(torch.uint8)
        images = self._transform_for(images)
        return (images.to(x.dtype) / 255.0 - mean) / std

    def _transform_for(self, images: torch.Tensor) -> torch.Tensor:
        return self.transform(images)


@register_view("autoaugment", needs=("normalization",), citation=citations.AUTOAUGMENT)
class AutoAugment(_PolicyView):
    """torchvision AutoAugment with policy ``cifar10``, ``imagenet``, ``svhn`` or ``auto``.

    ``auto`` (default) follows the reference: the CIFAR-10 policy for 32-px images (it uses it on CIFAR-100) and
    the ImageNet policy for larger ones (TinyImageNet, 64 px).
    """

    def __init__(self, policy: str = "auto", mean=DEFAULT_MEAN, std=DEFAULT_STD):
        from torchvision.transforms import v2

        policies = {p.name.lower(): p for p in v2.AutoAugmentPolicy}
        if policy.lower() not in (*policies, "auto"):
            raise ValueError(f"Unknown AutoAugment policy {policy!r}; valid: auto, {', '.join(policies)}.")
        self.policy = policy.lower()
        self._by_policy = {name: v2.AutoAugment(p) for name, p in policies.items()}
        super().__init__(self._by_policy.get(self.policy), mean, std)

    def policy_for(self, height: int) -> str:
        return self.policy if self.policy != "auto" else ("cifar10" if height <= 32 else "imagenet")

    def _transform_for(self, images: torch.Tensor) -> torch.Tensor:
        return self._by_policy[self.policy_for(images.shape[-2])](images)


@register_view("randaugment", needs=("normalization",), citation=citations.RANDAUGMENT)
class RandAugment(_PolicyView):
    """torchvision RandAugment (``num_ops`` operations at ``magnitude`` out of 31)."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, mean=DEFAULT_MEAN, std=DEFAULT_STD):
        from torchvision.transforms import v2

        super().__init__(v2.RandAugment(num_ops=num_ops, magnitude=magnitude), mean, std)


@register_view("cutmixpick", needs=("teacher_logits",), citation=citations.GOOD_DA_KD)
class CutMixPick(CutMix):
    """CutMix, then keep the ``n_pick`` samples of highest teacher entropy (reference n_pick = 64).

    Faithful quirk: the entropy is that of the teacher on the **clean** images. With ``n_pick >= batch`` every
    sample is kept (the reference's batch of 64 with n_pick 64 only reorders the batch).
    """

    def __init__(self, alpha: float = 1.0, n_pick: int = 64):
        super().__init__(alpha)
        self.n_pick = n_pick

    def __call__(self, x: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        if teacher_logits is None:
            raise ValueError("cutmixpick needs the teacher's logits on the clean batch.")
        mixed = super().__call__(x)
        probs = teacher_logits.float().softmax(1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        keep = entropy.argsort(descending=True)[: min(self.n_pick, x.shape[0])]
        return mixed[keep]


def build_second_view(name: str, mean=DEFAULT_MEAN, std=DEFAULT_STD, **kwargs) -> Callable | None:
    """Instantiate the second view ``name`` (``"none"`` gives ``None``); errors list the valid names/options."""
    if name in (None, "none"):
        return None
    entry = view_entry(name)
    if "normalization" in entry.needs:
        kwargs = {"mean": tuple(mean), "std": tuple(std), **kwargs}
    try:
        return entry.fn(**kwargs)
    except TypeError as error:
        valid = [p for p in inspect.signature(entry.fn.__init__).parameters if p != "self"]
        raise ValueError(f"Bad options {kwargs} for second view {name!r} ({error}). Valid options: {valid}.") from None
