#!/usr/bin/env python
"""Distil a student from a teacher with R2KD (or another registered loss), from a recipe.

    python scripts/distill.py                                   # the embedded quickstart (offline, CPU, minutes)
    python scripts/distill.py --recipe recipes/cifar10.yaml --dataset ../shared/data/cifar10
    accelerate launch scripts/distill.py --recipe recipes/fgvr_cub.yaml
    python scripts/distill.py --recipe recipes/quickstart.yaml --print_recipe
    python scripts/distill.py --recipe recipes/quickstart.yaml --learning_rate 0.1 --second_view mixup

The same command is installed as ``r2kd-distill``. Any recipe field can be overridden with --<field> <value>.
Outputs (model, card, summary.json, training_curves.png, recipe.yaml) go to --output_dir (default:
outputs/<recipe name>). Exit codes: 0 done, 2 a bad input (before any work), 1 a runtime error; --debug shows
tracebacks.
"""

import sys

from r2kd_hf.app.commands import distill_main

if __name__ == "__main__":
    sys.exit(distill_main())
