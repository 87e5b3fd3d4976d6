"""End-to-end runs shared by ``r2kd-distill`` and ``r2kd-train-teacher``.

lock the output folder -> load data -> build (and optionally prune) the student -> get or train the teacher ->
distil; the end of the run (evaluate, save, card, summary, plots, push) is :mod:`r2kd_hf.app.report`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from ..collate import ImageClassificationCollator
from ..config import R2KDConfig
from ..data import LoadedData, PerSampleSeeds, build_transforms, load_image_dataset, prepare_dataset, verify_images
from .recipe import DataArguments, ModelArguments
from ..faults import checkpoint_problem
from ..checks import check_one_batch, resolve_data_config
from ..loading import build_student, load_model, prune_student_or_resume
from ..saving import apply_data_config
from ..messages import UsageError
from ..trainer import R2KDTrainer

logger = logging.getLogger(__name__)


def load_data(data_args: DataArguments, seed: int) -> LoadedData:
    """The run's splits: streamed (``streaming``) or loaded whole, with a seeded subset and held-out split."""
    from ..data import load_streaming_dataset

    common = dict(config_name=data_args.dataset_config, train_split=data_args.train_split, eval_split=data_args.eval_split,
                  image_column=data_args.image_column, label_column=data_args.label_column, seed=seed,
                  max_eval_samples=data_args.max_eval_samples)
    if data_args.streaming:
        return load_streaming_dataset(data_args.dataset, shuffle_buffer_size=data_args.shuffle_buffer_size, **common)
    return load_image_dataset(data_args.dataset, validation_fraction=data_args.validation_fraction,
                              max_train_samples=data_args.max_train_samples, **common)


def check_streaming(data_args: DataArguments, training_args: R2KDConfig, model_args: ModelArguments) -> None:
    """A stream has no length: the run needs max_steps; each process reads its own part (no dispatch from rank 0)."""
    if not training_args.max_steps or training_args.max_steps < 1:
        raise UsageError("streaming=True: a streamed split has no length, so the run cannot count epochs. Set max_steps "
                         "(for example epochs x images / (per_device_train_batch_size x processes)).")
    if model_args.teacher is None and training_args.uses_teacher:
        raise UsageError("streaming=True: give a trained teacher (model.teacher); training one inside the run needs epochs.")
    if training_args.lr_decay_epochs:
        raise UsageError("streaming=True: lr_decay_epochs are in epochs; use lr_scheduler_type with max_steps instead.")
    training_args.accelerator_config.dispatch_batches = False  # accelerate then shards the stream per process


def resolved_data_config(student, data_args: DataArguments) -> dict:
    return resolve_data_config(student, data_args.image_size, data_args.mean, data_args.std)


def recipe_data_config(data_args: DataArguments) -> dict:
    """The data settings a recipe states (input size, mean, std): what a checkpoint file without a config takes."""
    stated = {"input_size": (3, data_args.image_size, data_args.image_size) if data_args.image_size else None,
              "mean": tuple(data_args.mean) if data_args.mean else None, "std": tuple(data_args.std) if data_args.std else None}
    return {k: v for k, v in stated.items() if v is not None}


def uses_small_image_path(data_args: DataArguments, data_config: dict) -> bool:
    """The in-memory, on-device training transform applies to the cifar style without PIL-only policies, up to 64 px."""
    from ..small_images import MAX_SIZE

    return (data_args.small_image_path and not data_args.streaming and data_args.transform_style == "cifar" and not data_args.auto_augment
            and not data_args.random_erasing and int(data_config["input_size"][-1]) <= MAX_SIZE)


def cache_dir(data_args: DataArguments, kind: str) -> str:
    if kind == "corruptions" and data_args.corruption_cache_dir:
        return data_args.corruption_cache_dir
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "r2kd_hf", kind)


def transformed_splits(data: LoadedData, data_config: dict, data_args: DataArguments, output_dir: str | None = None,
                       seed: int = 42):
    """``(train, eval, skipped)``: the transformed splits, and the unreadable images dropped from each."""
    train_tf, eval_tf = build_transforms(
        data_config, style=data_args.transform_style, auto_augment=data_args.auto_augment,
        random_erasing=data_args.random_erasing, crop_padding=data_args.crop_padding,
    )
    skip = data_args.skip_corrupt_images
    splits = {"train": data.splits["train"], "eval": data.splits["eval"]}
    in_memory = uses_small_image_path(data_args, data_config)
    removed = {"train": [], "eval": []}
    if in_memory:  # decoding every training image once is also its verification
        from ..small_images import in_memory_split

        size = int(data_config["input_size"][-1])
        padding = data_args.crop_padding if data_args.crop_padding is not None else max(size // 8, 1)
        train_set, removed["train"] = in_memory_split(splits.pop("train"), size, data_config["mean"], data_config["std"],
                                                      padding, cache_dir(data_args, "small_images"), skip, "train")
    if data_args.streaming:  # decoded on the fly: an unreadable streamed image stops the run (or is skipped) when met
        from ..data import prepare_streaming_dataset

        train_set = prepare_streaming_dataset(splits.pop("train"), train_tf, skip)
    if data_args.verify_images:
        for name in splits:
            splits[name], removed[name] = verify_images(splits[name], skip, data_args.verify_workers, name)
    if any(removed.values()):
        for name, bad in removed.items():
            for item in bad[:20]:
                logger.warning("Skipped %s image: %s", name, item["problem"])
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
            with open(os.path.join(output_dir, "skipped_images.json"), "w", encoding="utf-8") as handle:
                json.dump(removed, handle, indent=2)
        logger.warning("Skipped %d unreadable train and %d eval images (listed in skipped_images.json).",
                       len(removed["train"]), len(removed["eval"]))
    if not in_memory and not data_args.streaming:  # per-sample seeds: a resumed run draws the same augmentations
        train_set = PerSampleSeeds(prepare_dataset(splits["train"], train_tf, skip), seed)
    return train_set, prepare_dataset(splits["eval"], eval_tf, skip), removed


def resolve_resume(value, output_dir: str) -> str | None:
    """``--resume_from_checkpoint`` as in transformers' examples: a path, or ``true``/``last`` for the newest one.

    The checkpoint is checked first: a damaged one (a run killed while writing) is named, with the newest intact
    checkpoint to resume from instead.
    """
    from transformers.trainer_utils import get_last_checkpoint

    if value in (None, "", False, "false", "False", "no"):
        return None
    path = str(value)
    if value is True or path.lower() in ("true", "last", "yes"):
        path = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if path is None:
            raise FileNotFoundError(f"--resume_from_checkpoint {value}: there is no checkpoint-* folder in {output_dir!r} to resume from.")
    elif not os.path.isdir(path):
        raise FileNotFoundError(f"--resume_from_checkpoint {value!r} is not a folder; give a checkpoint-* folder, or true/last.")
    problem = checkpoint_problem(path)
    if problem:
        parent = os.path.dirname(os.path.abspath(path))
        intact = sorted((os.path.join(parent, d) for d in os.listdir(parent) if d.startswith("checkpoint-") and d[11:].isdigit()
                         and os.path.join(parent, d) != os.path.abspath(path) and not checkpoint_problem(os.path.join(parent, d))),
                        key=lambda c: int(c.rsplit("-", 1)[-1]))
        advice = (f"Resume from the newest intact one: --resume_from_checkpoint {intact[-1]}" if intact else
                  "No intact checkpoint is left in that folder: start the run again without --resume_from_checkpoint.")
        raise UsageError(f"The checkpoint {path!r} is damaged: {problem}. {advice} (and delete the damaged folder).")
    return path


TEACHER_SETTINGS = "teacher_settings.json"


def teacher_settings(model_args: ModelArguments, data_args: DataArguments, training_args: R2KDConfig) -> dict:
    """What a teacher trained by the run depends on; recorded beside it, compared before it is reused."""
    return {"teacher_arch": model_args.teacher_arch, "teacher_pretrained": model_args.teacher_pretrained,
            "train_teacher_epochs": model_args.train_teacher_epochs,
            "teacher_learning_rate": model_args.teacher_learning_rate or training_args.learning_rate,
            "dataset": data_args.dataset, "dataset_config": data_args.dataset_config, "train_split": data_args.train_split,
            "max_train_samples": data_args.max_train_samples, "image_size": data_args.image_size,
            "transform_style": data_args.transform_style, "seed": training_args.seed,
            "per_device_train_batch_size": training_args.per_device_train_batch_size}


def teacher_run_arguments(model_args: ModelArguments, training_args: R2KDConfig, **training_overrides):
    """``(model_args, training_args)`` of a cross-entropy run of ``model.teacher_arch``: how every teacher is trained
    (``r2kd-train-teacher`` and a run's own teacher); the benchmarks use the same trainer with ``loss_name="none"``."""
    model_args = dataclasses.replace(model_args, student=model_args.teacher_arch, student_pretrained=model_args.teacher_pretrained,
                                     prune_student=None, student_from_teacher=False)
    return model_args, dataclasses.replace(training_args, loss_name="none", prune_teacher=False, second_view="none", **training_overrides)


def train_teacher(model_args: ModelArguments, data_args: DataArguments, training_args: R2KDConfig, info: dict, output_dir: str) -> str:
    """Train the run's teacher with cross-entropy only (once); returns its folder.

    A teacher already in ``output_dir`` is reused only when the settings recorded with it match this run's; otherwise
    the run stops and says which setting differs (``retrain_teacher`` retrains it). ``max_steps`` is the student's: the
    teacher trains for ``train_teacher_epochs``. The corruptions are measured on the student only (they cost as much
    as the student's): ``r2kd-evaluate --model <output_dir>/teacher --corruptions all`` measures the teacher's.
    """
    wanted = teacher_settings(model_args, data_args, training_args)
    record = os.path.join(output_dir, TEACHER_SETTINGS)
    if os.path.exists(os.path.join(output_dir, "config.json")) and not model_args.retrain_teacher:
        recorded = json.load(open(record, encoding="utf-8")) if os.path.exists(record) else None
        if recorded is not None:
            recorded.setdefault("teacher_pretrained", False)  # records written before the field existed
        if recorded == wanted:
            logger.info("Reusing the teacher in %s (trained with the same settings)", output_dir)
            return output_dir
        differs = ("it has no record of its settings" if recorded is None else
                   "; ".join(f"{k}: {recorded.get(k)!r} there, {v!r} now" for k, v in wanted.items() if recorded.get(k) != v))
        raise UsageError(
            f"{output_dir} holds a teacher trained with other settings ({differs}). Retrain it with --retrain_teacher "
            f"true, use it as it is with --teacher {output_dir}, or give another --output_dir.")
    teacher_model_args, teacher_args = teacher_run_arguments(
        model_args, training_args, output_dir=output_dir, num_train_epochs=model_args.train_teacher_epochs or training_args.num_train_epochs,
        max_steps=-1, learning_rate=model_args.teacher_learning_rate or training_args.learning_rate, push_to_hub=False,
        save_strategy="no", load_best_model_at_end=False, resume_from_checkpoint=None)
    run(teacher_model_args, dataclasses.replace(data_args, corruptions=None), teacher_args, info, role="teacher")
    if teacher_args.should_save:
        with open(record, "w", encoding="utf-8") as handle:
            json.dump(wanted, handle, indent=2)
    return output_dir


def run(model_args: ModelArguments, data_args: DataArguments, training_args: R2KDConfig, info: dict, role: str = "student") -> dict:
    """Train (``role="teacher"``: CE only) or distil, then evaluate, save, summarise and plot. Returns the summary.

    The output folder is held for the run's lifetime: a second run into it stops before any work (exit 2)."""
    from ..faults import OutputDirLock

    with OutputDirLock(training_args.output_dir):
        return _run(model_args, data_args, training_args, info, role)


def _run(model_args: ModelArguments, data_args: DataArguments, training_args: R2KDConfig, info: dict, role: str) -> dict:
    from transformers import set_seed

    if data_args.streaming:
        check_streaming(data_args, training_args, model_args)
    if training_args.push_to_hub and training_args.should_save:  # before any work, the run's own teacher included
        from ..hub import check_hub_access

        check_hub_access(training_args)
    set_seed(training_args.seed)
    # data_seed (TrainingArguments) fixes the subset and held-out split independently of the training seed
    data = load_data(data_args, training_args.data_seed if training_args.data_seed is not None else training_args.seed)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    teacher, teacher_spec = None, model_args.teacher
    if training_args.uses_teacher:
        if teacher_spec is None:
            if not model_args.train_teacher_epochs:
                raise ValueError("No teacher: set model.teacher (folder, Hub id, timm name or checkpoint) or train_teacher_epochs > 0.")
            teacher_spec = train_teacher(model_args, data_args, training_args, info, os.path.join(training_args.output_dir, "teacher"))
            set_seed(training_args.seed)
        if model_args.student_from_teacher:  # the student starts as a copy: load it here, the trainer uses this module
            teacher = load_model(teacher_spec, role="teacher", revision=model_args.teacher_revision, arch=model_args.teacher_arch,
                                 data_config=recipe_data_config(data_args))
    student = build_student(model_args.student, data.num_labels, data.id2label, model_args.student_pretrained, teacher, model_args.student_from_teacher)
    data_config = resolved_data_config(student, data_args)
    apply_data_config(student, data_config)
    student_report = prune_student_or_resume(
        student, model_args.prune_student, data_config["input_size"], model_args.student_prune_importance,
        model_args.student_prune_round_to, resume,
    )
    train_set, eval_set, skipped = transformed_splits(data, data_config, data_args, training_args.output_dir, training_args.seed)
    trained_here = model_args.teacher is None and training_args.uses_teacher
    lineage = {"teacher": teacher_spec, "teacher_revision": model_args.teacher_revision, "dataset": data.source,
               "teacher_training": (f"{model_args.teacher_arch}, " + ("fine-tuned from its pretrained weights" if model_args.teacher_pretrained
                                    else "from scratch") + f", cross-entropy, {model_args.train_teacher_epochs:g} epochs")
               if trained_here else None,
               "train_split": data.train_split, "eval_split": data.eval_split, "recipe": info.get("recipe_text")}
    trainer = R2KDTrainer(model=student, args=training_args, teacher_model=teacher if teacher is not None else teacher_spec,
                          train_dataset=train_set, eval_dataset=eval_set, data_config=data_config, lineage=lineage,
                          teacher_revision=model_args.teacher_revision, teacher_arch=model_args.teacher_arch)
    check_one_batch(student, trainer.teacher,
                    ImageClassificationCollator()([eval_set[i] for i in range(min(2, len(eval_set)))]))
    trainer.train(resume_from_checkpoint=resume)
    from .report import finish

    summary = finish(trainer, model_args, data_args, info, data, data_config, student_report, role, skipped)
    trainer.accelerator.wait_for_everyone()  # other ranks may read this folder next (e.g. a teacher trained here)
    return summary
