"""The commands: ``r2kd-distill`` / ``scripts/distill.py`` and ``r2kd-train-teacher`` / ``scripts/train_teacher.py``."""

from __future__ import annotations

from .cli import main


def default_recipe() -> str:
    """The embedded default (the quickstart), shipped inside wheels and in the checkout's ``recipes/``."""
    from .recipe import find_recipe

    return find_recipe("quickstart")


def distill(model_args, data_args, training_args, info) -> None:
    from .pipeline import run

    run(model_args, data_args, training_args, info)


def train_teacher(model_args, data_args, training_args, info) -> None:
    """The recipe's ``model.teacher_arch`` trained with cross-entropy only (``training.*`` applies)."""
    from .pipeline import run, teacher_run_arguments

    model_args, training_args = teacher_run_arguments(model_args, training_args)
    run(model_args, data_args, training_args, info, role="teacher")


def distill_main(argv: list[str] | None = None) -> int:
    return main(argv, distill, default_recipe=default_recipe())


def train_teacher_main(argv: list[str] | None = None) -> int:
    """Like ``r2kd-distill``, the embedded quickstart's settings without ``--recipe`` (SGD, its learning rate and
    batch, digits), into ``outputs/quickstart_teacher`` unless ``--output_dir`` says otherwise."""
    return main(argv, train_teacher, default_recipe=default_recipe(), default_output_dir="outputs/quickstart_teacher")
