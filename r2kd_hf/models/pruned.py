"""``r2kd_pruned``: a timm architecture for structurally pruned networks, so timm and transformers load them.

A pruned network is its base architecture with some layers resized. Its ``config.json`` names the architecture
``r2kd_pruned`` and carries, as timm ``model_args``, the base architecture and the new shape of every resized
layer. After ``import r2kd_hf``, ``timm.create_model("hf-hub:<repo>", pretrained=True)`` and
``AutoModelForImageClassification.from_pretrained(<repo>)`` rebuild the base model, resize those layers and load
the safetensors weights. Nothing is unpickled.
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

PRUNED_ARCHITECTURE = "r2kd_pruned"


def _build_pruned(base_architecture: str, pruned_layers: dict[str, dict[str, Any]], base_model_args: dict | None = None, **kwargs) -> nn.Module:
    import timm

    from ..pruning.serialization import RECORD_FORMAT, apply_layer_shapes, attach_record

    kwargs = {k: v for k, v in kwargs.items() if k not in ("pretrained_cfg", "pretrained_cfg_overlay")}
    model = timm.create_model(base_architecture, pretrained=False, **(base_model_args or {}), **kwargs)
    apply_layer_shapes(model, pruned_layers, base_architecture)
    # remembered so that saving this model again writes the same format
    record = {"format": RECORD_FORMAT, "base": {"kind": "timm", "architecture": base_architecture}, "pruning": None, "layers": pruned_layers}
    attach_record(model, record)
    return model


default_cfgs = generate_default_cfgs({PRUNED_ARCHITECTURE: {"url": "", "num_classes": 1000, "license": "apache-2.0"}})


@register_model
def r2kd_pruned(pretrained: bool = False, **kwargs) -> nn.Module:
    """A structurally pruned network: ``base_architecture`` with the layer shapes of ``pruned_layers``."""
    if "base_architecture" not in kwargs or "pruned_layers" not in kwargs:
        raise ValueError("r2kd_pruned needs model_args base_architecture and pruned_layers (written by r2kd_hf when saving).")
    return build_model_with_cfg(_build_pruned, PRUNED_ARCHITECTURE, pretrained, pretrained_strict=True, **kwargs)
