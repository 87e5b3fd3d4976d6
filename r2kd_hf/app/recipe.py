"""Recipes: YAML files mapped onto typed dataclasses, with command-line overrides.

A recipe has three sections, ``model`` (:class:`ModelArguments`), ``data`` (:class:`DataArguments`) and
``training`` (:class:`~r2kd_hf.R2KDConfig`, i.e. every ``TrainingArguments`` field plus the distillation ones).
Any field can be overridden on the command line with ``--<field> <value>``; unknown keys in the YAML or on the
command line are rejected with the list of valid ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from ..fields import FieldError, check_range, option
from ..messages import UsageError, unknown_key_message

if TYPE_CHECKING:
    from ..config import R2KDConfig


@dataclass
class ModelArguments:
    """Which teacher and student to use, and how to build them."""

    teacher: str | None = option(None, "Teacher: a local folder, a Hub repo id, 'hf-hub:<repo>', a timm name (with "
        "pretrained weights) or a checkpoint file (.pth/.pt/.safetensors; its network in teacher_arch).")
    teacher_revision: str | None = option(None, "Hub revision (branch, tag or commit) of the teacher.")
    student: str = option("cifar_resnet8", "Student: a timm name (e.g. resnet18, cifar_resnet8x4), a local folder or a Hub "
        "repo id.")
    student_pretrained: bool = option(False, "Initialise a timm-name student from its pretrained weights (needs the Hub).")
    student_from_teacher: bool = option(False, "Start the student as a copy of the teacher (use with prune_student).")
    prune_student: float | None = option(None, "Fraction of the student's channels to remove before training, in (0, 1).")
    student_prune_importance: str = option("l1", "Channel importance: l1 or l2 magnitude.")
    student_prune_round_to: int | None = option(None, "Round pruned channel counts to a multiple of this (e.g. 8 for tensor "
        "cores).")
    train_teacher_epochs: float = option(0.0, "When no teacher is given, first train one with cross-entropy for this many "
        "epochs (quickstart).")
    teacher_arch: str = option("cifar_resnet20", "Network of a teacher given as a checkpoint file (e.g. cifar_resnet32x4), "
        "or of a teacher trained by this run (a timm name; with teacher_pretrained, one with pretrained weights such as "
        "resnet50.a1_in1k).")
    teacher_pretrained: bool = option(False, "Start the run's own teacher from teacher_arch's pretrained weights, i.e. "
        "fine-tune it on this dataset (needs the Hub, or timm's cache).")
    teacher_learning_rate: float | None = option(None, "Learning rate of that teacher training (default: the student's).")
    export_onnx: bool = option(False, "At the end, also write model.onnx next to the model (dynamic batch, opset 17), "
        "checked with ONNX Runtime against torch; the card says so. Needs the onnx extra (pip install 'r2kd_hf[onnx]').")
    retrain_teacher: bool = option(False, "Retrain the run's own teacher (<output_dir>/teacher) even when one trained with "
        "other settings is there. Without it, a teacher is reused only when its recorded settings match.")

    def __post_init__(self) -> None:
        check_range(self, "prune_student", 0, 1, low_open=True, high_open=True, optional=True,
                    hint="It is the fraction of channels removed.")
        if self.student_prune_importance not in ("l1", "l2"):
            raise FieldError("student_prune_importance", self.student_prune_importance, "valid: l1, l2")
        check_range(self, "train_teacher_epochs", 0)
        check_range(self, "teacher_learning_rate", 0, low_open=True, optional=True)
        check_range(self, "student_prune_round_to", 1, optional=True)


@dataclass
class DataArguments:
    """Where the images come from and how they are transformed."""

    dataset: str = option("digits", "Hub dataset id, local folder (imagefolder, parquet, save_to_disk) or 'digits' "
        "(scikit-learn, offline).")
    dataset_config: str | None = option(None, "Dataset configuration name, if any.")
    train_split: str = option("train", "Training split name.")
    eval_split: str = option("auto", "Eval split: a name, or 'auto' (validation/val/test, else a held-out part of train).")
    image_column: str | None = option(None, "Image column (default: image, img, ...).")
    label_column: str | None = option(None, "Label column (default: labels, label, fine_label, ...).")
    validation_fraction: float = option(0.1, "Held-out fraction when the dataset has no eval split.")
    max_train_samples: int | None = option(None, "Use a seeded random subset of this many training images.")
    max_eval_samples: int | None = option(None, "Evaluate on the first this many eval images.")
    image_size: int | None = option(None, "Input size; default: the student's timm data config.")
    transform_style: str = option("timm", "'timm' (random resized crop, create_transform) or 'cifar' (pad-and-crop, flip).")
    auto_augment: str | None = option(None, "Per-image augmentation policy, e.g. 'rand-m9-mstd0.5-inc1' (timm) or "
        "'autoaugment'.")
    random_erasing: float = option(0.0, "Random-erasing probability.")
    crop_padding: int | None = option(None, "Padding of the cifar-style random crop (default size/8).")
    mean: list[float] | None = option(None, "Normalisation mean (default: the student's data config).")
    std: list[float] | None = option(None, "Normalisation std (default: the student's data config).")
    skip_corrupt_images: bool = option(False, "Skip (and list) unreadable images instead of stopping with an error.")
    verify_images: bool = option(False, "Decode every image once before training (parallel, progress bar): stop at the first "
        "corrupt one, or drop and list them with skip_corrupt_images.")
    verify_workers: int | None = option(None, "Processes for verify_images (default: CPU count, at most 8).")
    corruptions: list[str] | None = option(None, "After training, evaluate on common corruptions of the eval split: 'all' "
        "(the 15 of Hendrycks & Dietterich) or names (gaussian_noise shot_noise impulse_noise defocus_blur glass_blur "
        "motion_blur zoom_blur snow frost fog brightness contrast elastic_transform pixelate jpeg_compression). Results go "
        "to summary.json, robustness.json, a PNG and the model card.")
    corruption_severities: list[int] = option(help="Severities (1-5).", factory=lambda: [1, 2, 3, 4, 5])
    corruption_max_images: int | None = option(None, "Corrupt at most this many eval images.")
    corruption_cache_dir: str | None = option(None, "Where corrupted sets are cached (default: $HF_HOME/r2kd_hf/corruptions).")
    streaming: bool = option(False, "Stream the training split (Hub datasets, parquet or image folders) instead of "
        "downloading it whole: shuffled through a buffer, each process reading its own shards where there are enough, the "
        "eval split read once (max_eval_samples, default 10,000). Needs max_steps.")
    shuffle_buffer_size: int = option(10_000, "Images in the shuffle buffer of a streamed split.")
    small_image_path: bool = option(True, "cifar transform style, images up to 64 px, no auto_augment/random_erasing: decode "
        "the training images once into memory (cached under $HF_HOME/r2kd_hf/small_images) and pad-crop-flip-normalise whole "
        "batches on the training device. False: the per-image PIL pipeline (same pixels).")

    def __post_init__(self) -> None:
        if self.corruptions:
            from ..corruptions import check_names

            check_names(self.corruptions, self.corruption_severities)
        if self.transform_style not in ("timm", "cifar"):
            raise FieldError("transform_style", self.transform_style, "valid: timm, cifar")
        for name in ("max_train_samples", "max_eval_samples", "corruption_max_images", "verify_workers"):
            check_range(self, name, 1, optional=True)
        check_range(self, "image_size", 8, 4096, optional=True)
        check_range(self, "shuffle_buffer_size", 1)
        check_range(self, "crop_padding", 0, optional=True)
        check_range(self, "validation_fraction", 0, 1, low_open=True, high_open=True)
        check_range(self, "random_erasing", 0, 1)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and (len(value) != 3 or (name == "std" and min(value) <= 0)):
                raise FieldError(name, value, "three numbers (one per RGB channel)" + (", all > 0" if name == "std" else ""))


def sections() -> dict[str, type]:
    """The recipe's sections and their dataclasses (the training one imports transformers, hence a function)."""
    from ..config import R2KDConfig

    return {"model": ModelArguments, "data": DataArguments, "training": R2KDConfig}


SECTION_NAMES = ("model", "data", "training")


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def recipes_dir() -> str:
    """The recipes shipped with r2kd_hf: inside the installed package (wheels), or the checkout's ``recipes/``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "..", "recipes"), os.path.join(here, "..", "..", "recipes")):
        if os.path.isfile(os.path.join(candidate, "quickstart.yaml")):
            return os.path.normpath(candidate)
    return "recipes"


def shipped_recipes() -> list[str]:
    """Names of the shipped recipes (``quickstart``, ``tinyimagenet/r2kd-resnet20_from_resnet56``, ...)."""
    root = recipes_dir()
    return sorted(os.path.relpath(os.path.join(folder, name), root)[: -len(".yaml")].replace(os.sep, "/")
                  for folder, _, files in os.walk(root) for name in files if name.endswith(".yaml"))


def find_recipe(name_or_path: str) -> str:
    """A recipe file: a path as given, else a shipped recipe by name (``tinyimagenet/r2kd-resnet20_from_resnet56``,
    with or without ``.yaml`` and a leading ``recipes/``), so names work from any folder after ``pip install``."""
    if os.path.isfile(name_or_path):
        return name_or_path
    name = name_or_path.removeprefix("recipes/").removesuffix(".yaml")
    shipped = os.path.join(recipes_dir(), *name.split("/")) + ".yaml"
    if os.path.isfile(shipped):
        return shipped
    close = difflib.get_close_matches(name, shipped_recipes(), n=3, cutoff=0.5)
    raise FileNotFoundError(f"Recipe {name_or_path!r} does not exist: it is neither a file nor a shipped recipe."
                            + (f" Close names: {', '.join(close)}." if close else "")
                            + f" Shipped recipes (in {recipes_dir()}{os.sep}): " + ", ".join(shipped_recipes()) + ".")


def load_recipe_file(path: str) -> dict[str, dict[str, Any]]:
    """Read a recipe and check its sections and keys against the dataclasses; returns ``{section: {field: value}}``."""
    path = find_recipe(path)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UsageError(f"Recipe {path!r} is not valid YAML{where}: {problem}. Indent with spaces (no tabs) and close "
                         "every [ and {.") from None
    if content is None:
        raise UsageError(f"Recipe {path!r} is empty. A recipe has the sections {', '.join(SECTION_NAMES)}; start from "
                         "recipes/quickstart.yaml, or leave --recipe out to run the embedded default.")
    if not isinstance(content, dict):
        raise ValueError(f"Recipe {path!r} must be a mapping with sections {', '.join(SECTION_NAMES)}.")
    unknown_sections = sorted(set(content) - set(SECTION_NAMES))
    if unknown_sections:
        raise ValueError(f"Recipe {path!r} has unknown section(s) {unknown_sections}; valid sections: {', '.join(SECTION_NAMES)}.")
    for section, values in content.items():
        values = values or {}
        if not isinstance(values, dict):
            raise ValueError(f"Section {section!r} of {path!r} must be a mapping of field: value.")
        valid = _field_names(sections()[section])
        for key in values:
            if key not in valid:
                raise UsageError(unknown_key_message(key, valid, f"in section {section!r} of {path!r}", section))
        content[section] = values
    return content


def parse_recipe(
    argv: list[str] | None = None, default_recipe: str | None = None, default_output_dir: str | None = None
) -> tuple[ModelArguments, DataArguments, R2KDConfig, dict[str, Any]]:
    """Parse ``--recipe FILE`` plus command-line overrides into the three dataclasses.

    Without ``--recipe``, ``default_recipe`` is read, and its output folder is ``default_output_dir`` when one is given
    (``r2kd-train-teacher`` keeps its teacher apart from ``r2kd-distill``'s student).

    ``--print_recipe`` prints the fully resolved recipe (every field) as YAML and exits.

    Returns:
        ``(model_args, data_args, training_args, info)`` where ``info`` holds ``recipe_path`` and ``recipe_text``
        (the resolved YAML, saved next to the model and quoted in its card).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--recipe", default=None)
    pre.add_argument("--print_recipe", action="store_true")
    known, rest = pre.parse_known_args(argv)
    recipe_given = known.recipe is not None
    known.recipe = known.recipe or default_recipe
    if known.recipe:
        known.recipe = find_recipe(known.recipe)
    recipe = load_recipe_file(known.recipe) if known.recipe else {}

    from transformers import HfArgumentParser

    from ..config import R2KDConfig

    classes = sections()
    parser = HfArgumentParser(tuple(classes.values()), allow_abbrev=False)  # no silent prefixes
    parser.add_argument("--recipe", default=known.recipe, help="YAML recipe (sections: model, data, training).")
    parser.add_argument("--print_recipe", action="store_true", help="Print the fully resolved recipe and exit.")
    cleared, rest = _cleared_fields(rest, classes.values())
    parser.set_defaults(**_parser_defaults(recipe, known.recipe, None if recipe_given else default_output_dir))
    namespace, extra = parser.parse_known_args(args=rest)
    for name, empty in cleared.items():
        setattr(namespace, name, empty)
    if extra:
        flags = [a for a in extra if a.startswith("--")]
        valid = [name for cls in classes.values() for name in _field_names(cls)]
        if flags:
            raise UsageError(unknown_key_message(flags[0][2:].split("=")[0], valid, "on the command line", None, flag=True))
        raise UsageError(f"Unexpected argument(s) {' '.join(extra)}: every option is --<field> <value>; see --help.")
    try:  # every field validated once, by its dataclass; the message says where the value came from
        values = {cls: {name: getattr(namespace, name) for name in _field_names(cls)} for cls in classes.values()}
        model_args, data_args = ModelArguments(**values[ModelArguments]), DataArguments(**values[DataArguments])
        training_args = R2KDConfig(**values[R2KDConfig])
    except FieldError as error:
        raise UsageError(f"{error} {_source(error.field, rest, recipe, known.recipe)}") from None
    training = {k: v for k, v in training_args.to_dict().items() if k in values[R2KDConfig] and "token" not in k}
    text = yaml.safe_dump({"model": dataclasses.asdict(model_args), "data": dataclasses.asdict(data_args), "training": training},
                          sort_keys=False, default_flow_style=False)
    if known.print_recipe:
        from ..reference import annotate_recipe_text

        print(annotate_recipe_text(text, {**dataclasses.asdict(data_args), **training}))
        raise SystemExit(0)
    return model_args, data_args, training_args, {"recipe_path": known.recipe, "recipe_text": text}


def _parser_defaults(recipe: dict[str, dict[str, Any]], recipe_path: str | None, output_dir: str | None) -> dict[str, Any]:
    """The recipe's values as the parser's defaults, with an output folder always named.

    A recipe that names no ``output_dir`` writes to ``outputs/<recipe name>``; ``output_dir`` (a command's own
    folder for its built-in recipe) wins over both, so two commands sharing a recipe never share a folder.
    """
    defaults = {key: value for values in recipe.values() for key, value in values.items()}
    if "output_dir" not in defaults and recipe_path:
        defaults["output_dir"] = os.path.join("outputs", os.path.splitext(os.path.basename(recipe_path))[0])
    if output_dir:
        defaults["output_dir"] = output_dir
    return defaults


CLEAR_WORDS = ("none", "null", "[]")


def _cleared_fields(argv: list[str], classes) -> tuple[dict[str, Any], list[str]]:
    """``--<field> none`` (or ``null``; ``[]`` for lists) clears what a recipe sets, for every list field and every
    field that may be ``None`` of r2kd_hf's own (e.g. ``--lr_decay_epochs none``, ``--dataset_config null``): the field
    becomes ``None`` where it may be, else ``[]``. ``TrainingArguments``' fields keep transformers' own parsing
    (``--report_to none`` means no integration). Returns those fields and the remaining arguments."""
    from transformers import TrainingArguments

    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}  # their own words: --report_to none means none
    clearable: dict[str, bool] = {}  # field -> may it be None (else: a list, cleared to [])
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in inherited:
                continue
            hint = hints[f.name]
            members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
            optional = type(None) in members
            if f.init and (optional or typing.get_origin(members[0]) is list):
                clearable[f.name] = optional
    cleared: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        flag = argv[i][2:] if argv[i].startswith("--") else None
        if flag in clearable and i + 1 < len(argv) and argv[i + 1].lower() in CLEAR_WORDS:
            cleared[flag] = None if clearable[flag] else []
            i += 2
            continue
        rest.append(argv[i])
        i += 1
    return cleared, rest


def _source(name: str, argv: list[str], recipe: dict[str, dict[str, Any]], path: str | None) -> str:
    """Where a field's value came from: the command line, the recipe file, or the default."""
    if any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv):
        return f"(set on the command line: --{name})"
    for section, values in recipe.items():
        if name in values:
            return f"(set in {path!r}, section {section!r})"
    return "(the default value)"
