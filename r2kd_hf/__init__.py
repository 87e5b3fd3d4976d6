"""r2kd_hf: robustness-reinforced knowledge distillation (R2KD) for image classification on the Hugging Face stack."""

from . import _torchvision_fix

_torchvision_fix.install_hook()  # before anything imports torchvision (a no-op where its ops load)

from . import models  # noqa: E402  (registers the CIFAR architectures with timm)
from .augment import build_second_view, register_view  # noqa: E402
from .callbacks import TeacherPruningCallback, TeacherValidationCallback  # noqa: E402
from .config import R2KDConfig  # noqa: E402
from .losses import (  # noqa: E402
    available_losses,
    cmkd_loss,
    dist_loss,
    dkd_loss,
    get_loss,
    kd_loss,
    r2kd_loss,
    register_loss,
)
from .pruning import prune_student, register_teacher_pruner  # noqa: E402
from .saving import load_student, save_classifier  # noqa: E402
from .setup import load_model  # noqa: E402
from .teachers import TeacherEnsemble  # noqa: E402
from .trainer import R2KDTrainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "R2KDConfig",
    "R2KDTrainer",
    "TeacherEnsemble",
    "TeacherPruningCallback",
    "TeacherValidationCallback",
    "__version__",
    "available_losses",
    "build_second_view",
    "cmkd_loss",
    "dist_loss",
    "dkd_loss",
    "get_loss",
    "kd_loss",
    "load_model",
    "load_student",
    "prune_student",
    "r2kd_loss",
    "register_loss",
    "register_teacher_pruner",
    "register_view",
    "save_classifier",
]
