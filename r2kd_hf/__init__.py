"""r2kd_hf: robustness-reinforced knowledge distillation (R2KD) for image classification on the Hugging Face stack.

``import r2kd_hf`` registers the paper's ``cifar_*`` networks and the ``r2kd_pruned`` architecture with timm (so it
imports timm: about 3 s on a 2-core CPU) and changes nothing else: no import hooks, no patched packages. The other
public names are imported on first use.
"""

from __future__ import annotations

import importlib

from . import models  # noqa: F401  (registers the architectures with timm)

__version__ = "0.1.0"

_EXPORTS = {
    "R2KDConfig": "config",
    "R2KDTrainer": "trainer",
    "Teacher": "teacher",
    "TeacherEnsemble": "teacher",
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
    "load_model": "loading",
    "load_student": "loading",
    "prune_student": "pruning",
    "r2kd_loss": "losses",
    "register_loss": "losses",
    "register_teacher_pruner": "pruning",
    "register_view": "augment",
    "RunRecord": "run_record",
    "PerSampleSeeds": "data",
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
