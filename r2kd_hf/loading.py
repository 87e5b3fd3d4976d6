"""Models in: the one way to load a student or a teacher.

One rule decides what a model string names (:func:`model_kind`: checkpoint file, folder, timm name or ``hf-hub:``
repo, Hub repo id), and every loader follows it: :func:`load_model` (any form), :func:`load_student` (folders and Hub
repos written by :mod:`r2kd_hf.saving` or ``save_pretrained``, with the data config they record) and
:func:`build_student` (a timm name, a copy of the teacher, or any saved model), then the student's pruning. The teacher
of a run is :class:`r2kd_hf.teacher.Teacher` (it loads through :func:`load_model`); agreement checks and the run's
data config are :mod:`r2kd_hf.checks`.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
from typing import Any

from torch import nn

from .introspection import REPO_ID_PATTERN, unwrap
from .messages import hub_unreachable
from .saving import CONFIG_NAME, WEIGHTS_NAME, apply_data_config

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------ loading
MODEL_SPEC_FORMS = (
    "an nn.Module",
    "a timm name ('resnet18', 'cifar_resnet56') or a timm name with a pretrained tag ('resnet18.a1_in1k')",
    "'hf-hub:org/name' (a timm-format Hub repo)",
    "'org/name' (a Hub repo in transformers or timm format, pruned or not)",
    "a local folder written by save_model/save_pretrained (pruned or not)",
    "a checkpoint file (.pth/.pt/.safetensors, e.g. a published CRD/mdistiller teacher) with arch=... (recipes: teacher_arch)",
)


def load_model(
    spec: str | nn.Module,
    *,
    role: str = "teacher",
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    pretrained: bool = True,
    revision: str | None = None,
    arch: str | None = None,
    data_config: dict[str, Any] | None = None,
) -> nn.Module:
    """Load a model from any of the forms in :data:`MODEL_SPEC_FORMS`.

    * a folder or Hub repo goes through :func:`load_student` (pruned students included; ``num_labels`` re-creates a
      student's head), with the data config its ``config.json`` records;
    * a checkpoint file is read weights-only into the timm architecture ``arch`` (strictly); it records no data
      config, so it takes ``data_config`` (the run's or the recipe's: input size, mean, std) when one is given, and
      its architecture's defaults otherwise;
    * ``hf-hub:`` specs and timm names go through ``timm.create_model``.

    Teachers are never loaded with a re-initialised head: a class-count mismatch is reported by the setup checks.
    """
    if isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"The {role} must be one of: {'; '.join(MODEL_SPEC_FORMS)}. Got {spec!r}.")
    from . import models as _models  # noqa: F401  (registers the paper's architectures with timm)

    kind = model_kind(spec)
    if kind == "checkpoint":
        from .reference_checkpoints import CHECKPOINT_SUFFIXES, load_checkpoint

        if not spec.lower().endswith(CHECKPOINT_SUFFIXES):
            raise ValueError(f"The {role} {spec!r} is a file but not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}).")
        model = load_checkpoint(os.path.expanduser(spec), arch, num_labels=num_labels)
        if data_config:
            apply_data_config(model, data_config)
        return model
    if kind == "timm":
        return _create_timm(spec, role=role, num_labels=num_labels, pretrained=pretrained)
    if kind in ("folder", "hub"):
        return load_student(spec, revision=revision, **_label_kwargs(role, num_labels, id2label))
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or os.sep in spec
    import timm

    close = difflib.get_close_matches(spec, timm.list_models(), n=3) if not looks_like_path else []
    problem = f"no file or folder {spec!r} exists" if looks_like_path else f"{spec!r} is not a known timm name, file, folder or Hub repo id"
    raise (FileNotFoundError if looks_like_path else ValueError)(
        f"Cannot load the {role}: {problem}." + (f" Close timm names: {', '.join(close)}." if close else "")
        + " A model can be given as: " + "; ".join(MODEL_SPEC_FORMS) + "."
    )


def model_kind(spec: str) -> str:
    """What a model string names: the one rule every loader follows (:func:`load_model`, :func:`build_student`,
    :func:`load_student`'s file lookup).

    ``"checkpoint"`` an existing file; ``"folder"`` an existing folder; ``"timm"`` ``hf-hub:<repo>`` or a timm name,
    with or without a pretrained tag (``resnet18.a1_in1k``); ``"hub"`` an ``org/name`` Hub repo id; ``"unknown"``.
    A local file or folder wins over a timm name or repo id of the same spelling.
    """
    path = os.path.expanduser(spec)
    if os.path.isfile(path):
        return "checkpoint"
    if os.path.isdir(path):
        return "folder"
    if spec.startswith("hf-hub:") or _is_timm_name(spec):
        return "timm"
    if REPO_ID_PATTERN.match(spec) and not spec.startswith((".", "~")):
        return "hub"
    return "unknown"


def _is_timm_name(name: str) -> bool:
    import timm

    return "/" not in name and timm.is_model(name.split(".")[0])


def _create_timm(name: str, *, role: str, num_labels: int | None, pretrained: bool) -> nn.Module:
    import timm

    kwargs = {"num_classes": num_labels} if (num_labels and role == "student") else {}
    if pretrained and not name.startswith("hf-hub:"):
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
        if cfg is None or not (cfg.url or cfg.hf_hub_id or cfg.file):
            raise ValueError(
                f"timm's {name!r} has no pretrained weights (r2kd_hf's cifar_* networks ship none). Give a trained {role}: "
                "a folder (scripts/train_teacher.py writes one), a Hub repo, or a reference checkpoint with its arch."
            )
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as error:  # network, missing weights
        raise hub_unreachable(f"the {role}", name, error) from error


def _label_kwargs(role: str, num_labels, id2label) -> dict:
    if role != "student" or not num_labels:
        return {}
    kwargs: dict[str, Any] = {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    if id2label:
        kwargs["id2label"] = id2label
        kwargs["label2id"] = {v: k for k, v in id2label.items()}
    return kwargs


def _resolve(path_or_repo_id: str, filename: str, revision: str | None) -> str | None:
    """Local path of ``filename`` in a folder or Hub repo; None when the repo or folder does not have it."""
    if model_kind(path_or_repo_id) != "hub":  # a folder (or a path that does not exist: nothing to find there)
        path = os.path.join(os.path.expanduser(path_or_repo_id), filename)
        return path if os.path.exists(path) else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(path_or_repo_id, filename, revision=revision)
    except (LocalEntryNotFoundError, RepositoryNotFoundError) as error:  # checked before their parent class
        raise hub_unreachable("the model", path_or_repo_id, error) from error
    except EntryNotFoundError:
        return None
    except OSError as error:
        raise hub_unreachable("the model", path_or_repo_id, error) from error


def load_student(path_or_repo_id: str, revision: str | None = None, **from_pretrained_kwargs: Any) -> nn.Module:
    """Load a model saved by r2kd_hf (pruned or not) or any transformers classifier, from a folder or a Hub repo.

    The result returns ``.logits``, carries ``config.id2label``, and remembers its pruning record so that saving it
    again writes the same format. A pruning record that does not match ``config.json`` or the weights fails loudly.
    ``from_pretrained_kwargs`` (e.g. a new head's ``num_labels``) apply to unpruned models.
    """
    from transformers import AutoModelForImageClassification

    from . import models as _models  # noqa: F401  (registers cifar_* and r2kd_pruned with timm)
    from .pruning.serialization import PRUNING_RECORD_NAME, RECORD_FORMAT, attach_record

    config_path = _resolve(path_or_repo_id, CONFIG_NAME, revision)
    if config_path is None:
        raise FileNotFoundError(
            f"{path_or_repo_id!r} has no {CONFIG_NAME}: it is not a saved model. Save models with trainer.save_model(), "
            "r2kd_hf.save_classifier() or save_pretrained()."
        )
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    record_path = _resolve(path_or_repo_id, PRUNING_RECORD_NAME, revision)
    record = None
    if record_path is not None:
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
        if record.get("format") != RECORD_FORMAT:
            raise ValueError(f"Unsupported pruning record format {record.get('format')!r}; expected {RECORD_FORMAT!r}.")
        if "model_type" in config:  # a pruned transformers-native model: rebuild it from the record
            return _load_pruned_transformers(path_or_repo_id, config_path, record, revision)
        if (config.get("model_args") or {}).get("pruned_layers") != record["layers"]:
            raise ValueError(
                f"The files in {path_or_repo_id!r} do not match its pruning record ({PRUNING_RECORD_NAME} and config.json "
                "describe different layer shapes). The folder was modified or mixes files from different runs; re-save it "
                "with trainer.save_model()."
            )
        from_pretrained_kwargs = {}
    source = os.path.expanduser(path_or_repo_id) if os.path.isdir(os.path.expanduser(path_or_repo_id)) else path_or_repo_id
    try:
        model = AutoModelForImageClassification.from_pretrained(source, revision=revision, **from_pretrained_kwargs)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"The weights in {path_or_repo_id!r} do not match its config.json ({str(error).splitlines()[0][:300]}). "
            "Re-save the model with trainer.save_model()."
        ) from error
    except OSError as error:
        raise hub_unreachable("the model", path_or_repo_id, error) from error
    if record is not None:
        attach_record(model, record)
    if config.get("pretrained_cfg"):
        # transformers' timm wrapper builds the network with its architecture's defaults (cifar_*: 32 px, CIFAR-100
        # statistics; r2kd_pruned: its base's): restore the data config it was trained with, as config.json records it
        apply_data_config(model, config["pretrained_cfg"])
    return model.eval()


def _load_pruned_transformers(path_or_repo_id: str, config_path: str, record: dict[str, Any], revision: str | None) -> nn.Module:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForImageClassification

    from .pruning.serialization import apply_record, attach_record

    model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(os.path.dirname(config_path)))
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


# ------------------------------------------------------------------------------------------------------ students
def create_timm_classifier(name: str, num_labels: int, id2label: dict[int, str], pretrained: bool = False) -> nn.Module:
    """A ``TimmWrapperForImageClassification`` (``.logits`` outputs, ``config.id2label``) with timm's init."""
    import timm
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    try:
        inner = timm.create_model(name, pretrained=pretrained, num_classes=num_labels)
    except Exception as error:
        if pretrained:
            raise OSError(
                f"Could not get pretrained weights for {name!r} ({type(error).__name__}). Set student_pretrained=false, "
                "or run where the Hub is reachable (HF_HUB_OFFLINE unset)."
            ) from error
        raise
    pretrained_cfg = json.loads(json.dumps(dict(inner.pretrained_cfg), default=lambda _: None))  # tuples -> lists
    pretrained_cfg["num_classes"] = num_labels
    config = TimmWrapperConfig(
        architecture=name, num_labels=num_labels, id2label=dict(id2label), label2id={v: k for k, v in id2label.items()},
        pretrained_cfg=pretrained_cfg,
    )
    model = TimmWrapperForImageClassification(config)
    model.timm_model.load_state_dict(inner.state_dict())  # keep timm's initialisation (or pretrained weights)
    model.timm_model.pretrained_cfg = dict(inner.pretrained_cfg, num_classes=num_labels)
    return model


def build_student(spec: str, num_labels: int, id2label: dict[int, str], pretrained: bool = False,
                  teacher: nn.Module | None = None, from_teacher: bool = False) -> nn.Module:
    """The student: a copy of the teacher (``from_teacher``), a timm name, or anything :func:`load_model` reads."""
    if from_teacher:
        if teacher is None:
            raise ValueError("student_from_teacher needs a teacher.")
        return copy.deepcopy(unwrap(teacher)).train().requires_grad_(True)
    if model_kind(spec) == "timm":
        return create_timm_classifier(spec, num_labels, id2label, pretrained=pretrained)
    return load_model(spec, role="student", num_labels=num_labels, id2label=id2label)


def prune_student_or_resume(student: nn.Module, amount: float | None, input_size, importance: str = "l1",
                            round_to: int | None = None, resume_dir: str | None = None) -> dict | None:
    """Prune before the trainer (and its optimizer) exist. On resume, re-apply the checkpoint's record instead."""
    from .pruning import prune_student
    from .pruning.serialization import PRUNING_RECORD_NAME, apply_record, attach_record

    if resume_dir and os.path.exists(os.path.join(resume_dir, PRUNING_RECORD_NAME)):
        with open(os.path.join(resume_dir, PRUNING_RECORD_NAME), encoding="utf-8") as handle:
            record = json.load(handle)
        apply_record(student, record)
        attach_record(student, record)
        return record["pruning"]
    if amount is None:
        return None
    report = prune_student(student, amount, tuple(input_size), importance=importance, round_to=round_to)
    logger.info("Pruned the student: params %s -> %s, MACs %s -> %s", f"{report['params_before']:,}",
                f"{report['params_after']:,}", report["macs_before"], report["macs_after"])
    return report
