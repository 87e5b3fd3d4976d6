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


def save_classifier(model: nn.Module, output_dir: str, label_names: list[str] | None = None) -> list[str]:
    """Write ``model`` in the one student format; returns the files written."""
    os.makedirs(output_dir, exist_ok=True)
    outer = unwrap(model)
    inner = timm_module_of(outer)
    record = record_of(outer) or (record_of(inner) if inner is not None else None)
    if label_names is None and (names := id2label_of(outer)):
        label_names = [names[i] for i in sorted(names)]
    if inner is not None:
        save_timm(inner, output_dir, label_names, record)
    elif hasattr(outer, "save_pretrained"):
        outer.save_pretrained(output_dir)
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
    return [CONFIG_NAME, WEIGHTS_NAME] + ([PRUNING_RECORD_NAME] if record is not None else [])
