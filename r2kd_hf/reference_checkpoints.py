"""Reference teacher checkpoints (CRD, mdistiller, R2KD, Good-DA-in-KD): ``.pth`` files read without unpickling.

Those checkpoints are ``torch.save`` dicts that hold the state dict under ``model`` (sometimes ``state_dict``, or
the state dict itself), with the key names of the reference networks, which the ``cifar_*`` architectures share.
They are read with ``torch.load(..., weights_only=True)``, which refuses arbitrary Python objects, and loaded
**strictly**: a checkpoint for another architecture fails with the first mismatched key and shape.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint file (``model`` / ``state_dict`` entry, ``module.`` prefixes removed)."""
    path = os.path.expanduser(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        content: Any = load_file(path)
    else:
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle.UnpicklingError and friends
            raise ValueError(
                f"Could not read {path!r} as a weights-only checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
                "r2kd_hf never unpickles arbitrary objects: re-save it as a plain state dict "
                "(torch.save({'model': model.state_dict()}, path)) or as safetensors."
            ) from None
    if isinstance(content, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ValueError(f"{path!r} holds no state dict (expected a dict of tensors, possibly under 'model').")
    return {k.removeprefix("module."): v for k, v in content.items()}


def classifier_classes(model_name: str, state_dict: dict[str, torch.Tensor]) -> int | None:
    """Number of classes in a checkpoint for ``model_name``: the rows of its classifier weight."""
    import timm

    classifier = timm.models.get_pretrained_cfg_value(model_name, "classifier") or "fc"
    weight = state_dict.get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None else None


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, arch: str) -> None:
    """Fail with the first mismatched key and shape (missing, unexpected or different)."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state_dict:
            raise ValueError(
                f"The checkpoint {source!r} does not fit {arch}: key {key!r} (shape {tuple(tensor.shape)}) is missing. "
                "Is it a checkpoint of another architecture? Pass the matching arch (e.g. cifar_resnet32x4)."
            )
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"The checkpoint {source!r} does not fit {arch}: {key!r} has shape {tuple(state_dict[key].shape)} in the "
                f"file but {tuple(tensor.shape)} in the model. Pass the matching arch."
            )
    unexpected = [k for k in state_dict if k not in expected]
    if unexpected:
        raise ValueError(
            f"The checkpoint {source!r} does not fit {arch}: unexpected key {unexpected[0]!r} "
            f"(shape {tuple(state_dict[unexpected[0]].shape)}). Pass the matching arch."
        )


def load_checkpoint(path: str, arch: str | None, num_labels: int | None = None) -> nn.Module:
    """Build the timm architecture ``arch`` and load the checkpoint at ``path`` into it, strictly."""
    import timm

    from . import models as _models  # noqa: F401  (registers the paper's architectures with timm)
    from .models import REFERENCE_NAMES

    if not arch:
        raise ValueError(
            f"{path!r} is a checkpoint file: say which network it holds with arch= (recipes: model.teacher_arch), "
            "e.g. cifar_resnet32x4. Reference names are accepted too: " + ", ".join(sorted(REFERENCE_NAMES)) + "."
        )
    arch = REFERENCE_NAMES.get(arch, arch)
    if not timm.is_model(arch):
        raise ValueError(f"Unknown architecture {arch!r} for checkpoint {path!r}; e.g. cifar_resnet32x4, cifar_wrn_40_2, resnet18.")
    state_dict = read_state_dict(path)
    classes = classifier_classes(arch, state_dict) or num_labels
    model = timm.create_model(arch, pretrained=False, **({"num_classes": classes} if classes else {}))
    check_state_dict(model, state_dict, path, arch)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
