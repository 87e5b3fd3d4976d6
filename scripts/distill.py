#!/usr/bin/env python
"""Distil a student from a teacher with R2KD (or another registered loss), from a recipe.

    python scripts/distill.py                                   # the embedded quickstart (offline, CPU, minutes)
    python scripts/distill.py --recipe recipes/cifar10.yaml --dataset ../shared/data/cifar10
    accelerate launch scripts/distill.py --recipe recipes/fgvr_cub.yaml
    python scripts/distill.py --recipe recipes/quickstart.yaml --print_recipe
    python scripts/distill.py --recipe recipes/quickstart.yaml --learning_rate 0.1 --second_view mixup

Any recipe field can be overridden with --<field> <value>. Outputs (model, card, summary.json,
training_curves.png, recipe.yaml) go to --output_dir (default: outputs/<recipe name>).
Exit codes: 0 done, 2 a usage/recipe error (found in seconds), 1 a runtime error; --debug shows tracebacks.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too

from r2kd_hf.cli import main  # noqa: E402  (light: heavy libraries are imported once the arguments are valid)

DEFAULT_RECIPE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "recipes", "quickstart.yaml"))


def distill(model_args, data_args, training_args, info) -> None:
    from r2kd_hf.pipeline import run

    run(model_args, data_args, training_args, info)


if __name__ == "__main__":
    sys.exit(main(None, distill, default_recipe=DEFAULT_RECIPE))
