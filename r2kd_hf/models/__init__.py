"""Model zoo: the paper's CIFAR/TinyImageNet architectures and ``r2kd_pruned``, registered with timm on import."""

from .cifar import ARCHITECTURES, CIFAR_MEAN, CIFAR_STD, REFERENCE_NAMES
from .pruned import PRUNED_ARCHITECTURE

__all__ = ["ARCHITECTURES", "CIFAR_MEAN", "CIFAR_STD", "PRUNED_ARCHITECTURE", "REFERENCE_NAMES"]
