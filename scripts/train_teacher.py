#!/usr/bin/env python
"""Fine-tune a teacher with cross-entropy only, through the same data pipeline as distillation.

    python scripts/train_teacher.py --recipe recipes/cifar10.yaml --dataset ../shared/data/cifar10 \
        --teacher_arch cifar_resnet56 --output_dir outputs/teacher_r56

The recipe's `model.teacher_arch` is trained (and `training.*` applies, with loss_name forced to 'none').
The output folder is a regular transformers model folder: pass it as `--teacher` to scripts/distill.py.
"""

import dataclasses
import logging
import sys

import r2kd_hf  # noqa: F401
from r2kd_hf.pipeline import run
from r2kd_hf.recipe import parse_recipe


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, training_args, info = parse_recipe(argv)
    model_args = dataclasses.replace(model_args, student=model_args.teacher_arch, prune_student=None, student_from_teacher=False)
    training_args = dataclasses.replace(training_args, loss_name="none", prune_teacher=False, second_view="none")
    run(model_args, data_args, training_args, info, role="teacher")
    return 0


if __name__ == "__main__":
    sys.exit(main())
