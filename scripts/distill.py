#!/usr/bin/env python
"""Distil a student from a teacher with R2KD (or another registered loss), from a recipe.

    python scripts/distill.py                                   # the embedded quickstart (offline, CPU, minutes)
    python scripts/distill.py --recipe recipes/cifar10.yaml --dataset ../shared/data/cifar10
    accelerate launch scripts/distill.py --recipe recipes/fgvr_cub.yaml
    python scripts/distill.py --recipe recipes/quickstart.yaml --print_recipe
    python scripts/distill.py --recipe recipes/quickstart.yaml --learning_rate 0.1 --second_view mixup

Any recipe field can be overridden with --<field> <value>. Outputs (model, card, summary.json,
training_curves.png, recipe.yaml) go to --output_dir (default: outputs/<recipe name>).
"""

import logging
import os
import sys

import r2kd_hf  # noqa: F401  (installs the torchvision CPU fix and registers models before anything else)
from r2kd_hf.pipeline import run
from r2kd_hf.recipe import parse_recipe

DEFAULT_RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "recipes", "quickstart.yaml")


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, training_args, info = parse_recipe(argv, default_recipe=os.path.normpath(DEFAULT_RECIPE))
    run(model_args, data_args, training_args, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
