#!/usr/bin/env python
"""Fine-tune a teacher with cross-entropy only, through the same data pipeline as distillation.

    python scripts/train_teacher.py --recipe recipes/cifar10.yaml --dataset ../shared/data/cifar10 \\
        --teacher_arch cifar_resnet56 --output_dir outputs/teacher_r56

The recipe's `model.teacher_arch` is trained (and `training.*` applies, with loss_name forced to 'none').
The output folder (config.json + model.safetensors, timm format) is what `--teacher` of scripts/distill.py takes.
"""

import dataclasses
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too

from r2kd_hf.cli import main  # noqa: E402


def train_teacher(model_args, data_args, training_args, info) -> None:
    from r2kd_hf.pipeline import run

    model_args = dataclasses.replace(model_args, student=model_args.teacher_arch, prune_student=None, student_from_teacher=False)
    training_args = dataclasses.replace(training_args, loss_name="none", prune_teacher=False, second_view="none")
    run(model_args, data_args, training_args, info, role="teacher")


if __name__ == "__main__":
    sys.exit(main(None, train_teacher))
