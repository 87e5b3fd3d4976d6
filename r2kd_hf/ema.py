"""An exponential moving average (EMA) of the student's weights, as timm's training loop and distillation task keep.

``ema ← d·ema + (1 − d)·w`` after every optimiser step, for every floating-point parameter and buffer (BatchNorm
running statistics included, as timm's ``ModelEmaV3``); integer buffers (``num_batches_tracked``) are copied. The
average lives on the student's device, is evaluated beside the live weights (``eval_ema_*`` metrics), is saved in
every checkpoint (``student_ema.safetensors``) so a resumed run continues the same average, and can be saved as the
student at the end (``save_ema_student``).
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn
from transformers import TrainerCallback

EMA_FILE = "student_ema.safetensors"


class StudentEMA:
    """The average itself: ``update``, ``save``/``load`` and ``applied_to`` (a context that swaps it into a model)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"student_ema_decay must be in (0, 1), got {decay}.")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            shadow = self.shadow[key]
            if shadow.is_floating_point():
                shadow.lerp_(value.detach().to(shadow.dtype), 1.0 - self.decay)
            else:
                shadow.copy_(value)

    def save(self, folder: str) -> str:
        from safetensors.torch import save_file

        path = os.path.join(folder, EMA_FILE)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.shadow.items()}, path, metadata={"decay": str(self.decay)})
        return path

    def load(self, folder: str) -> bool:
        from safetensors.torch import load_file

        path = os.path.join(folder, EMA_FILE)
        if not os.path.exists(path):
            return False
        for key, value in load_file(path).items():
            self.shadow[key].copy_(value)
        return True

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module):
        """Within the block, ``model`` holds the average; its own weights are restored afterwards."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(live)


class StudentEMACallback(TrainerCallback):
    """Updates the average after every optimiser step and writes it into every checkpoint."""

    def __init__(self, ema: StudentEMA, unwrap):
        self.ema, self.unwrap = ema, unwrap

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(self.unwrap(model))

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if args.should_save and os.path.isdir(folder):
            self.ema.save(folder)
