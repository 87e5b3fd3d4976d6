#!/usr/bin/env python
"""Train a teacher with cross-entropy only, through the same data pipeline as distillation.

    python scripts/train_teacher.py --recipe recipes/quickstart.yaml --output_dir outputs/teacher_r20
    python scripts/train_teacher.py --recipe recipes/cifar10.yaml --dataset ../shared/data/cifar10 \\
        --teacher_arch cifar_resnet56 --output_dir outputs/teacher_r56

The recipe's `model.teacher_arch` is trained (and `training.*` applies, with loss_name forced to 'none'). The output
folder (config.json + model.safetensors, timm format) is what `--teacher` of scripts/distill.py takes. Installed as
``r2kd-train-teacher`` too.
"""

import sys

from r2kd_hf.app.commands import train_teacher_main

if __name__ == "__main__":
    sys.exit(train_teacher_main())
