"""Pruning: the R2KD pruned teacher, structured channel pruning, and pickle-free pruned students."""

from .serialization import PRUNING_RECORD_NAME
from .structured import SUPPORTED_FAMILIES, check_structured_support, prune_channels
from .student import prune_student
from .teacher import available_teacher_pruners, fingerprint, prune_teacher_copy, register_teacher_pruner
from .unstructured import l1_unstructured_global, l1_unstructured_layerwise, weight_sparsity

__all__ = [
    "PRUNING_RECORD_NAME",
    "SUPPORTED_FAMILIES",
    "available_teacher_pruners",
    "check_structured_support",
    "fingerprint",
    "l1_unstructured_global",
    "l1_unstructured_layerwise",
    "prune_channels",
    "prune_student",
    "prune_teacher_copy",
    "register_teacher_pruner",
    "weight_sparsity",
]
