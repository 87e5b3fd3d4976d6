"""r2kd_hf: robustness-reinforced knowledge distillation (R2KD) for image classification on the Hugging Face stack.

Public names are imported on first use, so ``import r2kd_hf`` (and the command line's argument checks) stay fast;
the paper's architectures are registered with timm as soon as timm is imported.
"""

from __future__ import annotations

import importlib

from . import _timm_registration, _torchvision_fix

_torchvision_fix.install_hook()  # before anything imports torchvision (a no-op where its ops load)
_timm_registration.install()

__version__ = "0.1.0"

_EXPORTS = {
    "R2KDConfig": "config",
    "R2KDTrainer": "trainer",
    "TeacherEnsemble": "teachers",
    "TeacherPruningCallback": "callbacks",
    "TeacherValidationCallback": "callbacks",
    "available_losses": "losses",
    "bind_loss": "losses",
    "build_second_view": "augment",
    "cmkd_loss": "losses",
    "dist_loss": "losses",
    "dkd_loss": "losses",
    "get_loss": "losses",
    "kd_loss": "losses",
    "load_model": "setup",
    "load_student": "saving",
    "prune_student": "pruning",
    "r2kd_loss": "losses",
    "register_loss": "losses",
    "register_teacher_pruner": "pruning",
    "register_view": "augment",
    "save_classifier": "saving",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'r2kd_hf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
