#!/usr/bin/env python
"""Evaluate a saved student (or any model): top-1/top-5 on a dataset split, parameters, MACs, CPU latency.

    python scripts/evaluate_model.py --model outputs/quickstart --dataset digits
    python scripts/evaluate_model.py --model outputs/cifar10 --dataset ../shared/data/cifar10 --split test --latency

Pruned students (folders with r2kd_pruning.json) are rebuilt with r2kd_hf.load_student; nothing is unpickled.
"""

import argparse
import json
import os
import sys

import r2kd_hf  # noqa: F401
from r2kd_hf.data import build_transforms, prepare_dataset
from r2kd_hf.evaluation import cpu_latency_ms, evaluate_accuracy
from r2kd_hf.introspection import count_macs, count_parameters
from r2kd_hf.loading import load_model
from r2kd_hf.app.pipeline import load_data, resolved_data_config
from r2kd_hf.app.recipe import DataArguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Folder, Hub repo id or timm name of the model to evaluate.")
    parser.add_argument("--dataset", default="digits", help="Dataset (as in recipes); 'digits' is offline.")
    parser.add_argument("--split", default="auto", help="Split to evaluate ('auto': validation/val/test or a held-out part).")
    parser.add_argument("--image_size", type=int, default=None)
    parser.add_argument("--transform_style", default=None, choices=["timm", "cifar"], help="Default: cifar below 96 px, else timm.")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--latency", action="store_true", help="Also time CPU forwards at batch 1 and 64 (torch, and ONNX Runtime "
                        "when the onnx extra is installed).")
    parser.add_argument("--output", default=None, help="Write the metrics as JSON here.")
    parser.add_argument("--corruptions", nargs="*", default=None,
                        help="Also evaluate on common corruptions: 'all' or names (gaussian_noise ... jpeg_compression).")
    parser.add_argument("--severities", nargs="*", type=int, default=[1, 2, 3, 4, 5], help="Corruption severities (1-5).")
    parser.add_argument("--baseline", default=None, help="robustness.json of a baseline model: adds mCE and relative mCE.")
    parser.add_argument("--corruption_cache_dir", default=None, help="Cache of corrupted sets (default: $HF_HOME/r2kd_hf/corruptions).")
    parser.add_argument("--plot", default=None, help="Write the corruption bar chart (PNG) here.")
    args = parser.parse_args(argv)
    # every argument is checked before any model or data is loaded (argparse's usage error: exit 2)
    if args.batch_size < 1 or (args.max_samples is not None and args.max_samples < 1):
        parser.error("--batch_size and --max_samples must be >= 1.")
    if args.corruptions is not None:
        from r2kd_hf.corruptions import check_names

        try:
            check_names(args.corruptions, args.severities)
        except ValueError as error:
            parser.error(str(error))

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
        try:  # ONNX Runtime beside torch, when the onnx extra is installed
            import tempfile

            from r2kd_hf.export import export_onnx, onnx_latency_ms

            with tempfile.TemporaryDirectory() as folder:
                exported = export_onnx(model, os.path.join(folder, "model.onnx"), input_size=size)
                metrics["onnxruntime_latency_ms_batch1"] = round(onnx_latency_ms(exported["path"], size, 1), 3)
                metrics["onnxruntime_latency_ms_batch64"] = round(onnx_latency_ms(exported["path"], size, 64, repeats=10), 3)
                metrics["onnx_max_abs_diff"] = exported["max_abs_diff"]
        except ImportError as error:
            metrics["onnxruntime_latency"] = f"not measured: {error}"
    if args.corruptions is not None:
        from r2kd_hf.app.pipeline import cache_dir
        from r2kd_hf.plots import plot_corruption_accuracy
        from r2kd_hf.corruptions import clean_images, evaluate_corruptions

        baseline = json.load(open(args.baseline, encoding="utf-8")) if args.baseline else None
        images, labels = clean_images(data.splits["eval"], size[-1], args.max_samples)
        cache = args.corruption_cache_dir or cache_dir(data_args, "corruptions")
        report = evaluate_corruptions(model, images, labels, data_config["mean"], data_config["std"], args.corruptions,
                                      args.severities, cache_dir=cache, baseline=baseline)
        metrics["robustness"] = report
        if args.plot:
            plot_corruption_accuracy(report, args.plot)
    print(json.dumps(metrics, indent=2))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
