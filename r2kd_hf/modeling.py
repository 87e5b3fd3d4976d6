"""Loading teachers and students, and the few facts the trainer needs about any image classifier.

A model may be a ``transformers`` image classifier (``TimmWrapperForImageClassification`` included), a plain timm
module, or any ``nn.Module`` mapping ``(B, 3, H, W)`` images to ``(B, C)`` logits.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any

import torch
from torch import nn

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor of a model output (tensor, ``ModelOutput``, dict or tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, dict):
        return output["logits"]
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"Cannot find logits in a model output of type {type(output).__name__}.")


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP/compile/teacher-adapter wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, NormalizedTeacher):
            model = model.model
        else:
            return model


def timm_module_of(model: nn.Module) -> nn.Module | None:
    """The timm model inside ``model`` (itself, or ``TimmWrapper*.timm_model``), if any."""
    model = unwrap(model)
    inner = getattr(model, "timm_model", model)
    return inner if hasattr(inner, "pretrained_cfg") else None


def num_labels_of(model: nn.Module) -> int | None:
    """Number of classes the model predicts, when it can be read without a forward pass."""
    model = unwrap(model)
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "num_labels", None):
        return int(config.num_labels)
    if isinstance(getattr(model, "num_classes", None), int):
        return model.num_classes
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Linear):
            return head.out_features
    return None


def id2label_of(model: nn.Module) -> dict[int, str] | None:
    """Class names of a transformers model, unless they are the placeholder ``LABEL_i`` names."""
    config = getattr(unwrap(model), "config", None)
    id2label = getattr(config, "id2label", None)
    if not id2label:
        return None
    id2label = {int(k): str(v) for k, v in id2label.items()}
    if all(v == f"LABEL_{k}" for k, v in id2label.items()):
        return None
    return id2label


def data_config_of(model: nn.Module) -> dict[str, Any] | None:
    """timm data config (``input_size``, ``mean``, ``std``, ``crop_pct``, ``interpolation``) when the model has one."""
    inner = timm_module_of(model)
    if inner is None:
        return None
    from timm.data import resolve_model_data_config

    return resolve_model_data_config(inner)


class NormalizedTeacher(nn.Module):
    """Feeds a teacher inputs normalised for it, from inputs normalised for the student (on device, one FMA).

    ``x_teacher = (x * std_s + mean_s - mean_t) / std_t = x * scale + shift``.
    """

    def __init__(self, model: nn.Module, student_mean, student_std, teacher_mean, teacher_std):
        super().__init__()
        self.model = model
        s_mean, s_std = torch.tensor(student_mean), torch.tensor(student_std)
        t_mean, t_std = torch.tensor(teacher_mean), torch.tensor(teacher_std)
        self.register_buffer("scale", (s_std / t_std).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", ((s_mean - t_mean) / t_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, pixel_values: torch.Tensor):
        scale, shift = self.scale.to(pixel_values.dtype), self.shift.to(pixel_values.dtype)
        return self.model(pixel_values * scale + shift)


def maybe_renormalize_teacher(teacher: nn.Module, student: nn.Module) -> nn.Module:
    """Wrap ``teacher`` in :class:`NormalizedTeacher` when both data configs are known and their mean/std differ."""
    t_cfg, s_cfg = data_config_of(teacher), data_config_of(student)
    if t_cfg is None or s_cfg is None:
        return teacher
    same = all(abs(a - b) < 1e-6 for key in ("mean", "std") for a, b in zip(t_cfg[key], s_cfg[key]))
    if same:
        return teacher
    return NormalizedTeacher(teacher, s_cfg["mean"], s_cfg["std"], t_cfg["mean"], t_cfg["std"])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in unwrap(model).parameters())


def count_macs(model: nn.Module, input_size=(3, 224, 224)) -> int | None:
    """Multiply-accumulates of one forward at ``input_size`` (Torch-Pruning's counter), or None if it fails."""
    try:
        import torch_pruning as tp

        module = unwrap(model)
        device = next(module.parameters()).device
        example = torch.zeros(1, *input_size, device=device)
        was_training = module.training
        module.eval()
        macs, _ = tp.utils.count_ops_and_params(_LogitsOnly(module), example)
        module.train(was_training)
        return int(macs)
    except Exception:  # a counter failure must never stop training or a report
        return None


class _LogitsOnly(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return logits_of(self.model(x))


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
) -> nn.Module:
    """Load a model from any of the forms in :data:`MODEL_SPEC_FORMS`.

    * ``hf-hub:`` specs and timm names go through ``timm.create_model`` (``num_labels`` re-creates a student's head);
    * a checkpoint file is read weights-only into the timm architecture ``arch`` (strictly);
    * a folder or Hub repo holding ``r2kd_pruning.json`` is a pruned student (:func:`r2kd_hf.load_student`);
    * other folders and Hub repos go through ``AutoModelForImageClassification`` (timm-format repos included).

    Teachers are never loaded with a re-initialised head: a class-count mismatch is reported by the setup checks.
    """
    if isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"The {role} must be one of: {'; '.join(MODEL_SPEC_FORMS)}. Got {spec!r}.")
    from . import models as _models  # noqa: F401  (registers the paper's architectures with timm)

    if spec.startswith("hf-hub:"):
        return _create_timm(spec, role=role, num_labels=num_labels, pretrained=pretrained)
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        return _load_from_folder(path, role=role, num_labels=num_labels, id2label=id2label)
    if os.path.isfile(path):
        from .checkpoints import CHECKPOINT_SUFFIXES, load_checkpoint

        if not spec.lower().endswith(CHECKPOINT_SUFFIXES):
            raise ValueError(f"The {role} {spec!r} is a file but not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}).")
        return load_checkpoint(path, arch, num_labels=num_labels)
    if _is_timm_name(spec):
        return _create_timm(spec, role=role, num_labels=num_labels, pretrained=pretrained)
    if REPO_ID_PATTERN.match(spec) and not spec.startswith((".", "~")):
        return _load_from_hub(spec, role=role, num_labels=num_labels, id2label=id2label, revision=revision)
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or os.sep in spec
    import timm

    close = difflib.get_close_matches(spec, timm.list_models(), n=3) if not looks_like_path else []
    problem = f"no file or folder {spec!r} exists" if looks_like_path else f"{spec!r} is not a known timm name, file, folder or Hub repo id"
    error_class = FileNotFoundError if looks_like_path else ValueError
    raise error_class(
        f"Cannot load the {role}: {problem}."
        + (f" Close timm names: {', '.join(close)}." if close else "")
        + " A model can be given as: " + "; ".join(MODEL_SPEC_FORMS) + "."
    )


def _is_timm_name(name: str) -> bool:
    import timm

    return "/" not in name and timm.is_model(name.split(".")[0])


def _create_timm(name: str, *, role: str, num_labels: int | None, pretrained: bool) -> nn.Module:
    import timm

    kwargs = {"num_classes": num_labels} if (num_labels and role == "student") else {}
    if pretrained and not name.startswith("hf-hub:") and not _has_pretrained_weights(name):
        raise ValueError(
            f"timm's {name!r} has no pretrained weights (r2kd_hf's cifar_* networks ship none). Give a trained {role}: "
            "a folder (scripts/train_teacher.py writes one), a Hub repo, or a reference checkpoint with its arch."
        )
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as error:  # network, missing weights
        raise _hub_error(name, role, error) from error


def _has_pretrained_weights(name: str) -> bool:
    import timm

    cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    return cfg is not None and bool(cfg.url or cfg.hf_hub_id or cfg.file)


def _load_from_folder(path: str, *, role: str, num_labels, id2label) -> nn.Module:
    from .pruning.serialization import PRUNING_RECORD_NAME
    from .saving import load_student

    if os.path.exists(os.path.join(path, PRUNING_RECORD_NAME)):
        return load_student(path)
    if not os.path.exists(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"The {role} folder {path!r} has no config.json. Save models with save_pretrained() (or trainer.save_model())."
        )
    from transformers import AutoModelForImageClassification

    kwargs = _label_kwargs(role, num_labels, id2label)
    return AutoModelForImageClassification.from_pretrained(path, **kwargs)


def _load_from_hub(repo_id: str, *, role: str, num_labels, id2label, revision) -> nn.Module:
    from huggingface_hub import hf_hub_download

    from .pruning.serialization import PRUNING_RECORD_NAME
    from .saving import load_student

    try:
        hf_hub_download(repo_id, PRUNING_RECORD_NAME, revision=revision)
        return load_student(repo_id, revision=revision)
    except Exception as error:
        if _is_connection_error(error):
            raise _hub_error(repo_id, role, error) from error
    from transformers import AutoModelForImageClassification

    try:
        return AutoModelForImageClassification.from_pretrained(repo_id, revision=revision, **_label_kwargs(role, num_labels, id2label))
    except OSError as error:
        raise _hub_error(repo_id, role, error) from error


def _label_kwargs(role: str, num_labels, id2label) -> dict:
    if role != "student" or not num_labels:
        return {}
    kwargs: dict[str, Any] = {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    if id2label:
        kwargs["id2label"] = id2label
        kwargs["label2id"] = {v: k for k, v in id2label.items()}
    return kwargs


def _is_connection_error(error: Exception) -> bool:
    text = f"{type(error).__name__}: {error}".lower()
    return any(s in text for s in ("offline", "connect", "timed out", "timeout", "resolve", "network", "unreachable"))


def _hub_error(name: str, role: str, error: Exception) -> OSError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached or has no such model"
    return OSError(
        f"Could not load the {role} {name!r}: no local folder has that name and {why} ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
        "Download it first where there is network (`hf download <repo_id> --local-dir <dir>`) and pass the local "
        "folder, or unset HF_HUB_OFFLINE."
    )
