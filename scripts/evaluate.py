#!/usr/bin/env python
"""Evaluate a saved student (or any model): top-1/top-5 on a dataset split, parameters, MACs, CPU latency.

    python scripts/evaluate.py --model outputs/quickstart --dataset digits
    python scripts/evaluate.py --model outputs/cifar10 --dataset ../shared/data/cifar10 --split test --latency

Pruned students (folders with r2kd_pruning.json) are rebuilt with r2kd_hf.load_student; nothing is unpickled.
"""

import argparse
import json
import sys

import r2kd_hf  # noqa: F401
from r2kd_hf.data import build_transforms, prepare_dataset
from r2kd_hf.evaluation import cpu_latency_ms, evaluate_accuracy
from r2kd_hf.modeling import count_macs, count_parameters
from r2kd_hf.setup import load_model
from r2kd_hf.pipeline import load_data, resolved_data_config
from r2kd_hf.recipe import DataArguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Folder, Hub repo id or timm name of the model to evaluate.")
    parser.add_argument("--dataset", default="digits", help="Dataset (as in recipes); 'digits' is offline.")
    parser.add_argument("--split", default="auto", help="Split to evaluate ('auto': validation/val/test or a held-out part).")
    parser.add_argument("--image_size", type=int, default=None)
    parser.add_argument("--transform_style", default=None, choices=["timm", "cifar"], help="Default: cifar below 96 px, else timm.")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--latency", action="store_true", help="Also time CPU forwards at batch 1 and 64.")
    parser.add_argument("--output", default=None, help="Write the metrics as JSON here.")
    args = parser.parse_args(argv)

    model = load_model(args.model, role="model")
    data_args = DataArguments(dataset=args.dataset, eval_split=args.split, image_size=args.image_size, max_eval_samples=args.max_samples)
    data_config = resolved_data_config(model, data_args)
    style = args.transform_style or ("cifar" if data_config["input_size"][-1] < 96 else "timm")
    data = load_data(data_args, seed=42)
    _, eval_transform = build_transforms(data_config, style=style)
    metrics = evaluate_accuracy(model, prepare_dataset(data.splits["eval"], eval_transform), batch_size=args.batch_size)
    size = tuple(data_config["input_size"])
    metrics.update(params=count_parameters(model), macs=count_macs(model, size), input_size=list(size), split=data.eval_split)
    if args.latency:
        metrics["cpu_latency_ms_batch1"] = round(cpu_latency_ms(model, size, 1), 3)
        metrics["cpu_latency_ms_batch64"] = round(cpu_latency_ms(model, size, 64, repeats=10), 3)
    print(json.dumps(metrics, indent=2))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
