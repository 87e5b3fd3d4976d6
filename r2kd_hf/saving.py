"""One student format, whatever the student was built from: ``config.json`` + ``model.safetensors``.

* A timm network (a timm module, a ``TimmWrapperForImageClassification``, a ``cifar_*`` model) is written in
  **timm's format**: ``config.json`` with ``architecture``, ``num_classes``, ``label_names`` and the
  ``pretrained_cfg`` it was trained with (input size, mean, std), weights with timm's key names. timm
  (``timm.create_model("hf-hub:<repo>", pretrained=True)``), transformers (``AutoModelForImageClassification``,
  through its timm wrapper) and :func:`load_student` all load it.
* A structurally pruned timm network is the same, with architecture ``r2kd_pruned`` and the resized layers in
  ``model_args`` (see :mod:`r2kd_hf.models.pruned`), plus ``r2kd_pruning.json`` (the full pruning report).
  Loading it with timm or transformers needs ``import r2kd_hf`` first (it registers the architecture).
* Any other transformers model is written with its own ``save_pretrained``.

Nothing here is pickled, and nothing read here is unpickled.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from torch import nn

from .introspection import timm_module_of, unwrap
from .pruning.serialization import PRUNING_RECORD_NAME, RECORD_FORMAT, apply_record, attach_record, record_of, write_record

logger = logging.getLogger(__name__)
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
_LOCATION_KEYS = ("architecture", "url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "tag")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    try:
        json.dumps(value)
        return value
    except TypeError:
        return None


def num_classes_of(inner: nn.Module) -> int:
    head = inner.get_classifier() if hasattr(inner, "get_classifier") else None
    if isinstance(head, nn.Linear):
        return head.out_features
    return int(getattr(inner, "num_classes"))


def timm_config(inner: nn.Module, label_names: list[str] | None, record: dict[str, Any] | None) -> dict[str, Any]:
    """timm's ``config.json`` for ``inner`` (a timm module); pruned networks become ``r2kd_pruned``."""
    from .models import PRUNED_ARCHITECTURE

    source = dict(getattr(inner, "pretrained_cfg", None) or {})
    num_classes = num_classes_of(inner)
    pretrained_cfg = {k: _jsonable(v) for k, v in source.items() if k not in _LOCATION_KEYS and _jsonable(v) is not None}
    pretrained_cfg["num_classes"] = num_classes
    config: dict[str, Any] = {"architecture": source.get("architecture"), "num_classes": num_classes}
    if getattr(inner, "num_features", None):
        config["num_features"] = int(inner.num_features)
    if record is not None:
        config["architecture"] = PRUNED_ARCHITECTURE
        config["model_args"] = {"base_architecture": record["base"]["architecture"], "pruned_layers": record["layers"]}
    if not config["architecture"]:
        raise ValueError(f"{type(inner).__name__} has no timm architecture name (pretrained_cfg['architecture']); build it with timm.create_model.")
    if label_names:
        if len(label_names) != num_classes:
            raise ValueError(f"{len(label_names)} label names for a model with {num_classes} classes.")
        config["label_names"] = list(label_names)
    config["pretrained_cfg"] = pretrained_cfg
    return config


def label_names_of(model: nn.Module) -> list[str] | None:
    config = getattr(unwrap(model), "config", None)
    id2label = getattr(config, "id2label", None)
    if not id2label:
        return None
    names = [str(id2label[i]) for i in sorted(int(k) for k in id2label)]
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(names)) else names


def save_classifier(model: nn.Module, output_dir: str, label_names: list[str] | None = None) -> list[str]:
    """Write ``model`` in the one student format; returns the files written."""
    from safetensors.torch import save_file

    os.makedirs(output_dir, exist_ok=True)
    outer = unwrap(model)
    inner = timm_module_of(outer)
    record = record_of(outer) or (record_of(inner) if inner is not None else None)
    label_names = label_names or label_names_of(outer)
    written = []
    if inner is not None:
        config = timm_config(inner, label_names, record)
        state = {k: v.detach().contiguous().cpu() for k, v in inner.state_dict().items()}
        save_file(state, os.path.join(output_dir, WEIGHTS_NAME), metadata={"format": "pt"})
        with open(os.path.join(output_dir, CONFIG_NAME), "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
        written += [CONFIG_NAME, WEIGHTS_NAME]
    elif hasattr(outer, "save_pretrained"):
        outer.save_pretrained(output_dir)
        written += [CONFIG_NAME, WEIGHTS_NAME]
    else:  # weights only: Trainer checkpoints still resume, but nothing can rebuild the network from the folder
        logger.warning(
            "%s is neither a timm nor a transformers model: saved model.safetensors without config.json, so timm, "
            "transformers and load_student cannot rebuild it. Build students with timm.create_model(...) or a "
            "transformers model class to get a loadable folder.", type(outer).__name__,
        )
        save_file({k: v.detach().contiguous().cpu() for k, v in outer.state_dict().items()}, os.path.join(output_dir, WEIGHTS_NAME))
        written.append(WEIGHTS_NAME)
    if record is not None:
        write_record(record, output_dir)
        written.append(PRUNING_RECORD_NAME)
    return written


def _resolve(path_or_repo_id: str, filename: str, revision: str | None) -> str | None:
    """Local path of ``filename`` in a folder or Hub repo; None when the repo or folder does not have it."""
    folder = os.path.expanduser(path_or_repo_id)
    if os.path.isdir(folder) or _looks_local(path_or_repo_id):
        path = os.path.join(folder, filename)
        return path if os.path.exists(path) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(path_or_repo_id, filename, revision=revision)
    except (LocalEntryNotFoundError, RepositoryNotFoundError) as error:  # checked before their parent class
        raise _unreachable(path_or_repo_id, filename, error) from error
    except EntryNotFoundError:
        return None
    except OSError as error:
        raise _unreachable(path_or_repo_id, filename, error) from error


def _looks_local(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".")) or spec.count("/") != 1


def _unreachable(where: str, filename: str, error: Exception) -> OSError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    fix = "HF_HUB_OFFLINE is set: unset it, or download the repo first and pass its folder" if offline else (
        "check the repo id, HF_ENDPOINT, your token (`hf auth login`) and the network, or pass a local folder"
    )
    return OSError(
        f"Could not fetch {filename!r} of {where!r}: it is not a local folder and the Hub did not serve it "
        f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). {fix}."
    )


def load_student(path_or_repo_id: str, revision: str | None = None) -> nn.Module:
    """Load a student saved by r2kd_hf (pruned or not) from a folder or a Hub repo, as a transformers classifier.

    The result returns ``.logits``, carries ``config.id2label``, and remembers its pruning record so that saving it
    again writes the same format. A pruning record that does not match ``config.json`` or the weights fails loudly.
    """
    from transformers import AutoModelForImageClassification

    from . import models as _models  # noqa: F401  (registers cifar_* and r2kd_pruned with timm)

    config_path = _resolve(path_or_repo_id, CONFIG_NAME, revision)
    if config_path is None:
        raise FileNotFoundError(
            f"{path_or_repo_id!r} has no {CONFIG_NAME}: it is not a saved model. Save students with trainer.save_model() "
            "or r2kd_hf.save_classifier()."
        )
    record = None
    record_path = _resolve(path_or_repo_id, PRUNING_RECORD_NAME, revision)
    if record_path is not None:
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
        if record.get("format") != RECORD_FORMAT:
            raise ValueError(f"Unsupported pruning record format {record.get('format')!r}; expected {RECORD_FORMAT!r}.")
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    if record is not None and "model_type" in config:  # a pruned transformers-native model: rebuild from the record
        return _load_pruned_transformers(path_or_repo_id, record, revision)
    if record is not None and (config.get("model_args") or {}).get("pruned_layers") != record["layers"]:
        raise ValueError(
            f"The files in {path_or_repo_id!r} do not match its pruning record ({PRUNING_RECORD_NAME} and config.json "
            "describe different layer shapes). The folder was modified or mixes files from different runs; re-save it "
            "with trainer.save_model()."
        )
    source = os.path.expanduser(path_or_repo_id) if os.path.isdir(os.path.expanduser(path_or_repo_id)) else path_or_repo_id
    try:
        model = AutoModelForImageClassification.from_pretrained(source, revision=revision)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"The weights in {path_or_repo_id!r} do not match its config.json ({str(error).splitlines()[0][:300]}). "
            "Re-save the model with trainer.save_model()."
        ) from error
    if record is not None:
        attach_record(model, record)
        inner = timm_module_of(model)
        if inner is not None and config.get("pretrained_cfg"):  # the r2kd_pruned factory starts from its base's defaults:
            # restore the data config the student was trained with (input size, mean, std), as config.json records it
            inner.pretrained_cfg = {**dict(inner.pretrained_cfg or {}), **config["pretrained_cfg"]}
            if hasattr(inner, "default_cfg"):
                inner.default_cfg = inner.pretrained_cfg
    return model.eval()


def _load_pruned_transformers(path_or_repo_id: str, record: dict[str, Any], revision: str | None) -> nn.Module:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(os.path.dirname(_resolve(path_or_repo_id, CONFIG_NAME, revision))))
    apply_record(model, record)
    weights = load_file(_resolve(path_or_repo_id, WEIGHTS_NAME, revision))
    expected = model.state_dict()
    wrong = [k for k, v in expected.items() if k not in weights or tuple(weights[k].shape) != tuple(v.shape)]
    if wrong or set(weights) - set(expected):
        raise ValueError(
            f"The weights in {path_or_repo_id!r} do not match its pruning record (first: {(wrong or sorted(set(weights) - set(expected)))[0]!r}). "
            "Re-save it with trainer.save_model()."
        )
    model.load_state_dict(weights, strict=True)
    attach_record(model, record)
    return model.eval()
