"""One student format, whatever the student was built from: ``config.json`` + ``model.safetensors``.

* A timm network (a timm module, a ``TimmWrapperForImageClassification``, a ``cifar_*`` model) is written by timm's
  own ``save_for_hf``: ``config.json`` with ``architecture``, ``num_classes``, ``label_names`` and the
  ``pretrained_cfg`` it was trained with (input size, mean, std), weights with timm's key names. timm
  (``timm.create_model("hf-hub:<repo>", pretrained=True)``), transformers (``AutoModelForImageClassification``,
  through its timm wrapper) and :func:`r2kd_hf.load_student` all load it.
* A structurally pruned timm network adds only what timm cannot know: architecture ``r2kd_pruned`` with the base
  architecture and the resized layers as ``model_args`` (see :mod:`r2kd_hf.models.pruned`), and
  ``r2kd_pruning.json`` (the full pruning report). Loading it with timm or transformers needs ``import r2kd_hf``.
* Any other transformers model is written with its own ``save_pretrained``.

Nothing here is pickled.
"""

from __future__ import annotations

import copy
import json
import logging
import os

from typing import Any

import torch
from torch import nn

from .introspection import id2label_of, timm_module_of, unwrap
from .pruning.serialization import PRUNING_RECORD_NAME, record_of, write_record

logger = logging.getLogger(__name__)
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


def save_timm(inner: nn.Module, output_dir: str, label_names: list[str] | None, record: dict | None) -> None:
    """timm's ``save_for_hf`` (safetensors); a pruned network is saved as ``r2kd_pruned`` with its layer shapes."""
    from timm.models import save_for_hf

    from .models import PRUNED_ARCHITECTURE

    if label_names and len(label_names) != inner.num_classes:
        raise ValueError(f"{len(label_names)} label names for a model with {inner.num_classes} classes.")
    if any(not t.is_contiguous() for t in inner.state_dict().values()):  # channels-last weights: safetensors needs
        inner = copy.deepcopy(inner).to("cpu", memory_format=torch.contiguous_format)  # contiguous ones; copy, keep training's
    model_config, model_args = {"label_names": list(label_names)} if label_names else {}, None
    if record is not None:
        model_config["architecture"] = PRUNED_ARCHITECTURE
        model_args = {"base_architecture": record["base"]["architecture"], "pruned_layers": record["layers"]}
    save_for_hf(inner, output_dir, model_config=model_config, model_args=model_args, safe_serialization=True)
    # timm 1.0.31 (installed here) records num_classes in model_args too; transformers' TimmWrapper passes num_classes itself and
    # then fails with "got multiple values for keyword argument 'num_classes'". The root num_classes says it once.
    path = os.path.join(output_dir, CONFIG_NAME)
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    if (config.get("model_args") or {}).pop("num_classes", None) is not None:
        config["model_args"] = config["model_args"] or None
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({k: v for k, v in config.items() if v is not None}, handle, indent=2)


DATA_CONFIG_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def apply_data_config(model: nn.Module, data_config: dict[str, Any]) -> None:
    """Record the data config a timm model is trained with, so its saved ``config.json`` says how to feed it."""
    inner = timm_module_of(model)
    if inner is None:
        return
    recorded = {k: tuple(v) if isinstance(v, list) else v for k, v in data_config.items() if k in DATA_CONFIG_KEYS}
    inner.pretrained_cfg = {**dict(inner.pretrained_cfg or {}), **recorded}
    if hasattr(inner, "default_cfg"):
        inner.default_cfg = inner.pretrained_cfg


PROCESSOR_NAME = "preprocessor_config.json"


def save_image_processor(output_dir: str, data_config: dict) -> str:
    """An image processor that feeds a transformers-native model as the run evaluated it, so that
    ``pipeline("image-classification", model=folder)`` works: a plain resize to the input size for ``crop_pct`` 1
    (the cifar style), else timm's eval transform (resize the short side to size / crop_pct, centre crop)."""
    from transformers import BitImageProcessor, ViTImageProcessor
    from transformers.image_utils import PILImageResampling

    size = int(data_config["input_size"][-1])
    crop_pct = float(data_config.get("crop_pct") or 1.0)
    resample = PILImageResampling.BICUBIC if data_config.get("interpolation") == "bicubic" else PILImageResampling.BILINEAR
    common = dict(image_mean=list(data_config["mean"]), image_std=list(data_config["std"]), resample=resample)
    if crop_pct >= 1.0:
        processor = ViTImageProcessor(size={"height": size, "width": size}, **common)
    else:
        processor = BitImageProcessor(size={"shortest_edge": int(size / crop_pct)}, crop_size={"height": size, "width": size},
                                      do_center_crop=True, **common)
    processor.save_pretrained(output_dir)
    return PROCESSOR_NAME


def save_classifier(model: nn.Module, output_dir: str, label_names: list[str] | None = None,
                    data_config: dict | None = None) -> list[str]:
    """Write ``model`` in the one student format; returns the files written.

    A timm network records ``data_config`` (the one it was trained with) in its ``config.json``; a transformers-native
    model gets a ``preprocessor_config.json`` built from it instead (when given)."""
    os.makedirs(output_dir, exist_ok=True)
    extra: list[str] = []
    outer = unwrap(model)
    inner = timm_module_of(outer)
    record = record_of(outer) or (record_of(inner) if inner is not None else None)
    if label_names is None and (names := id2label_of(outer)):
        label_names = [names[i] for i in sorted(names)]
    if inner is not None:
        if data_config:
            apply_data_config(inner, data_config)
        save_timm(inner, output_dir, label_names, record)
    elif hasattr(outer, "save_pretrained"):
        outer.save_pretrained(output_dir)
        if data_config:
            extra.append(save_image_processor(output_dir, data_config))
    else:  # weights only: Trainer checkpoints still resume, but nothing can rebuild the network from the folder
        from safetensors.torch import save_file

        logger.warning(
            "%s is neither a timm nor a transformers model: saved model.safetensors without config.json, so timm, "
            "transformers and load_student cannot rebuild it. Build students with timm.create_model(...) or a "
            "transformers model class to get a loadable folder.", type(outer).__name__,
        )
        save_file({k: v.detach().contiguous().cpu() for k, v in outer.state_dict().items()}, os.path.join(output_dir, WEIGHTS_NAME))
        return [WEIGHTS_NAME]
    if record is not None:
        write_record(record, output_dir)
    return [CONFIG_NAME, WEIGHTS_NAME] + extra + ([PRUNING_RECORD_NAME] if record is not None else [])
