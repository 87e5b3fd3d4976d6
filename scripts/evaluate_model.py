#!/usr/bin/env python
"""Evaluate any saved model as it was trained: the ``r2kd-evaluate`` command (see ``r2kd_hf/app/evaluate.py``).

    python scripts/evaluate_model.py --model outputs/quickstart
    python scripts/evaluate_model.py --model F.pth --arch cifar_resnet20 --recipe tinyimagenet/r2kd-resnet20_from_resnet56 \
        --dataset ../shared/data/tiny-imagenet-200 --output out.json
"""

import sys

from r2kd_hf.app.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
