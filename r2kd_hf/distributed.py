"""Cross-process helpers for batch-wise loss terms (per-class correlation over the *global* batch)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward all-reduces (sums) the gradient and returns the local slice.

    When every rank computes the same loss ``L`` on the gathered tensor, the local slice then receives
    ``world_size * dL/dx_local``; DDP's gradient *averaging* over ranks divides that back, so the parameter update
    equals the single-process update on the same global batch.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        rank = dist.get_rank()
        ctx.start, ctx.stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
        largest = max(sizes)
        padded = tensor.new_zeros((largest, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        chunks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(chunks, padded.contiguous())
        return torch.cat([chunk[:size] for chunk, size in zip(chunks, sizes)])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.start : ctx.stop], None


def _sizes(tensor: torch.Tensor) -> list[int]:
    local = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


def gather_batch(*tensors: torch.Tensor | None, equal_sizes: bool = False) -> tuple[torch.Tensor | None, ...]:
    """Concatenate each tensor's rows from every rank (rank order) with one all-gather; gradients flow back to the
    local rows. With one process this returns the inputs.

    The tensors (same number of rows) are packed side by side into one fp32 tensor (labels are exact in fp32 below
    2^24 classes), gathered once and unpacked. ``equal_sizes=True`` (accelerate's ``even_batches``: every rank holds
    the same batch size) skips the exchange of batch sizes, so the step has no host synchronisation; otherwise ranks
    may hold different batch sizes (padding is handled).
    """
    if world_size() == 1:
        return tensors
    present = [t for t in tensors if t is not None]
    rows = present[0].shape[0]
    flat = [t.reshape(rows, -1) for t in present]
    packed = torch.cat([f.to(torch.float32) for f in flat], dim=1)
    sizes = [rows] * world_size() if equal_sizes else _sizes(packed)
    if packed.requires_grad:
        gathered = _GatherWithGrad.apply(packed, sizes)
    else:
        with torch.no_grad():
            gathered = _GatherWithGrad.apply(packed, sizes)
    parts = iter(gathered.split([f.shape[1] for f in flat], dim=1))
    return tuple(None if t is None else next(parts).reshape(-1, *t.shape[1:]).to(t.dtype) for t in tensors)


def prepare_deepspeed_inference(model: torch.nn.Module, accelerator) -> torch.nn.Module:
    """Wrap a frozen model for DeepSpeed inference: ZeRO-3 shards it like the student; other stages use stage 0."""
    import copy

    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    if config.get("zero_optimization", {}).get("stage", 0) != 3:
        config["zero_optimization"] = {"stage": 0}
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine
