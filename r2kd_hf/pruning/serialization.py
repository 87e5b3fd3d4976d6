"""Save and load structurally pruned students without pickle: ``model.safetensors`` + a JSON pruning record.

A pruned network differs from its base architecture only in the shapes of some layers. The record names the base
architecture (as in ``config.json``) and, for every layer whose shape changed, its new sizes. Loading builds the base
model (random init, no download), resizes those layers, then loads the safetensors weights strictly.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ..modeling import timm_module_of, unwrap

PRUNING_RECORD_NAME = "r2kd_pruning.json"
RECORD_FORMAT = "r2kd_hf.pruning_record/v1"
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def _layer_shape(module: nn.Module) -> dict[str, Any] | None:
    if isinstance(module, nn.Conv2d):
        return {"type": "Conv2d", "in_channels": module.in_channels, "out_channels": module.out_channels, "groups": module.groups}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features, "out_features": module.out_features}
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {"type": "BatchNorm", "num_features": module.num_features}
    if isinstance(module, nn.GroupNorm):
        return {"type": "GroupNorm", "num_channels": module.num_channels, "num_groups": module.num_groups}
    if isinstance(module, nn.LayerNorm):
        return {"type": "LayerNorm", "normalized_shape": list(module.normalized_shape)}
    return None


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    return {name: shape for name, module in model.named_modules() if (shape := _layer_shape(module)) is not None}


def pruning_target(model: nn.Module) -> nn.Module:
    return timm_module_of(model) or unwrap(model)


def make_record(base_shapes: dict[str, dict], model: nn.Module, report: dict[str, Any]) -> dict[str, Any]:
    """Record the layers of ``model`` whose shapes differ from ``base_shapes`` (taken before pruning)."""
    target = pruning_target(model)
    outer = unwrap(model)
    changed = {name: shape for name, shape in layer_shapes(target).items() if base_shapes.get(name) != shape}
    config = getattr(outer, "config", None)
    base = {
        "kind": "transformers" if config is not None else "timm",
        "architecture": getattr(config, "architecture", None) or getattr(target, "default_cfg", {}).get("architecture"),
        "num_classes": getattr(config, "num_labels", None) or getattr(target, "num_classes", None),
    }
    return {"format": RECORD_FORMAT, "base": base, "pruning": report, "layers": changed}


def _resize(module: nn.Module, shape: dict[str, Any]) -> None:
    def new(*size):
        return nn.Parameter(torch.empty(*size), requires_grad=True)

    kind = shape["type"]
    if kind == "Conv2d" and isinstance(module, nn.Conv2d):
        module.in_channels, module.out_channels, module.groups = shape["in_channels"], shape["out_channels"], shape["groups"]
        module.weight = new(module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        if module.bias is not None:
            module.bias = new(module.out_channels)
    elif kind == "Linear" and isinstance(module, nn.Linear):
        module.in_features, module.out_features = shape["in_features"], shape["out_features"]
        module.weight = new(module.out_features, module.in_features)
        if module.bias is not None:
            module.bias = new(module.out_features)
    elif kind == "BatchNorm" and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        n = module.num_features = shape["num_features"]
        if module.affine:
            module.weight, module.bias = new(n), new(n)
        if module.track_running_stats:
            module.running_mean, module.running_var = torch.zeros(n), torch.ones(n)
    elif kind == "GroupNorm" and isinstance(module, nn.GroupNorm):
        n = module.num_channels = shape["num_channels"]
        module.num_groups = shape["num_groups"]
        if module.affine:
            module.weight, module.bias = new(n), new(n)
    elif kind == "LayerNorm" and isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(shape["normalized_shape"])
        if module.elementwise_affine:
            module.weight, module.bias = new(*module.normalized_shape), new(*module.normalized_shape)
    else:
        raise ValueError(f"The pruning record says {kind} but the base model has {type(module).__name__}.")


def apply_record(model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """Resize the layers of a freshly built base model to the shapes in ``record`` (weights left uninitialised)."""
    target = pruning_target(model)
    modules = dict(target.named_modules())
    for name, shape in record["layers"].items():
        if name not in modules:
            raise ValueError(
                f"The pruning record names layer {name!r}, which the base architecture "
                f"{record['base'].get('architecture')!r} does not have: record and architecture do not match."
            )
        _resize(modules[name], shape)
    head = target.get_classifier() if hasattr(target, "get_classifier") else None
    if isinstance(head, nn.Linear) and hasattr(target, "num_features"):
        target.num_features = head.in_features
    return model


def attach_record(model: nn.Module, record: dict[str, Any]) -> None:
    """Remember the record on the model so that saving writes it next to the weights."""
    unwrap(model).r2kd_pruning_record = record


def record_of(model: nn.Module) -> dict[str, Any] | None:
    return getattr(unwrap(model), "r2kd_pruning_record", None)


def write_record(record: dict[str, Any], output_dir: str) -> str:
    path = os.path.join(output_dir, PRUNING_RECORD_NAME)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    return path


def save_pruned_student(model: nn.Module, output_dir: str) -> None:
    """``save_pretrained`` (config.json + model.safetensors) plus the pruning record."""
    record = record_of(model)
    if record is None:
        raise ValueError("This model carries no pruning record; it was not pruned by r2kd_hf.prune_student.")
    os.makedirs(output_dir, exist_ok=True)
    outer = unwrap(model)
    if hasattr(outer, "save_pretrained"):
        outer.save_pretrained(output_dir)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in outer.state_dict().items()}, os.path.join(output_dir, "model.safetensors"))
    write_record(record, output_dir)


def _resolve(path_or_repo_id: str, filename: str, revision: str | None, required: bool = True) -> str | None:
    local = os.path.join(os.path.expanduser(path_or_repo_id), filename)
    if os.path.isdir(os.path.expanduser(path_or_repo_id)):
        if os.path.exists(local):
            return local
        if required:
            raise FileNotFoundError(_missing(path_or_repo_id, filename))
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(path_or_repo_id, filename, revision=revision)
    except (LocalEntryNotFoundError, RepositoryNotFoundError) as error:  # checked before its parent class below
        raise _unreachable(path_or_repo_id, filename, error) from error
    except EntryNotFoundError:
        if required:
            raise FileNotFoundError(_missing(path_or_repo_id, filename)) from None
        return None
    except OSError as error:
        raise _unreachable(path_or_repo_id, filename, error) from error


def _unreachable(where: str, filename: str, error: Exception) -> OSError:
    return OSError(
        f"Could not fetch {filename!r} of {where!r}: no such local folder, and the Hub repo is not reachable "
        f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). Unset HF_HUB_OFFLINE, check HF_ENDPOINT and "
        "your token, or download the folder first and pass its path."
    )


def _missing(where: str, filename: str) -> str:
    if filename == PRUNING_RECORD_NAME:
        return (
            f"{where!r} has no {PRUNING_RECORD_NAME}: it is not a pruned r2kd_hf student. Unpruned students load with "
            "transformers.AutoModelForImageClassification.from_pretrained(...)."
        )
    return f"{where!r} has no {filename}; save students with trainer.save_model() or save_pruned_student()."


def load_student(path_or_repo_id: str, revision: str | None = None) -> nn.Module:
    """Rebuild a pruned student from a local folder or a Hub repo and load its weights (no pickle anywhere).

    Raises a clear error when the pruning record is missing or the weights do not match it.
    """
    from safetensors.torch import load_file

    with open(_resolve(path_or_repo_id, PRUNING_RECORD_NAME, revision), encoding="utf-8") as handle:
        record = json.load(handle)
    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"Unsupported pruning record format {record.get('format')!r}; expected {RECORD_FORMAT!r}.")
    weights = load_file(_resolve(path_or_repo_id, "model.safetensors", revision))
    base = record["base"]
    from .. import models as _models  # noqa: F401  (registers the paper's architectures with timm)

    if base["kind"] == "transformers":
        from transformers import AutoConfig, AutoModelForImageClassification

        config = AutoConfig.from_pretrained(os.path.dirname(_resolve(path_or_repo_id, "config.json", revision)))
        model = AutoModelForImageClassification.from_config(config)
    else:
        import timm

        model = timm.create_model(base["architecture"], pretrained=False, num_classes=base["num_classes"])
    apply_record(model, record)
    expected = model.state_dict()
    wrong = [
        f"{k}: file {tuple(weights[k].shape)} vs record {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and tuple(weights[k].shape) != tuple(v.shape)
    ]
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if wrong or missing or unexpected:
        details = "; ".join(wrong[:3] + [f"missing {m}" for m in missing[:3]] + [f"unexpected {u}" for u in unexpected[:3]])
        raise ValueError(
            f"The weights in {path_or_repo_id!r} do not match its pruning record ({details}). The folder was "
            "modified or mixes files from different runs; re-save it with trainer.save_model()."
        )
    model.load_state_dict(weights, strict=True)
    attach_record(model, record)
    return model.eval()
