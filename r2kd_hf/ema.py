"""An exponential moving average (EMA) of the student's weights, kept by timm's own ``ModelEmaV3``.

``ema ← d·ema + (1 − d)·w`` after every optimiser step, for every floating-point parameter and buffer (BatchNorm
running statistics included); integer buffers (``num_batches_tracked``) are copied: ``ModelEmaV3.update`` without a
step (a constant decay, no warm-up), as timm's training loop uses it. This module adds what a ``Trainer`` run needs
around it: the average is evaluated beside the live weights (``eval_ema_*`` metrics), saved in every checkpoint
(``student_ema.safetensors``) so a resumed run continues the same average, and can be saved as the student at the
end (``save_ema_student``).
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn
from transformers import TrainerCallback

EMA_FILE = "student_ema.safetensors"


class StudentEMA:
    """timm's ``ModelEmaV3`` of the student, with ``save``/``load`` for checkpoints and ``applied_to`` (a context that
    swaps the average into the live model)."""

    def __init__(self, model: nn.Module, decay: float):
        from timm.utils import ModelEmaV3

        if not 0.0 < decay < 1.0:
            raise ValueError(f"student_ema_decay must be in (0, 1), got {decay}.")
        self.decay = decay
        self.ema = ModelEmaV3(model, decay=decay)  # a copy on the student's device, in its dtype

    @property
    def shadow(self) -> dict[str, torch.Tensor]:
        """The averaged state dict."""
        return self.ema.module.state_dict()

    def update(self, model: nn.Module) -> None:
        self.ema.update(model)  # no step: the constant decay

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
        self.ema.module.load_state_dict(load_file(path, device=str(next(self.ema.module.parameters()).device)))
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
