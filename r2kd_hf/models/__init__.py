"""Model zoo: the paper's CIFAR/TinyImageNet architectures, registered with timm on import."""

from .cifar import ARCHITECTURES, CIFAR_MEAN, CIFAR_STD

__all__ = ["ARCHITECTURES", "CIFAR_MEAN", "CIFAR_STD"]
