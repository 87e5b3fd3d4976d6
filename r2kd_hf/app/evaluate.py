"""``r2kd-evaluate`` (and ``scripts/evaluate_model.py``): any saved model, evaluated as it was trained.

    r2kd-evaluate --model outputs/quickstart
    r2kd-evaluate --model cutmix_res56_res20_student_best.pth --arch cifar_resnet20 \\
        --recipe tinyimagenet/r2kd-resnet20_from_resnet56 --dataset ../shared/data/tiny-imagenet-200 --output out.json

The model is any form :func:`r2kd_hf.load_model` reads (folder, Hub repo, timm name, checkpoint file with ``--arch``).
Its data config (input size, mean, std, interpolation, crop) is the one its ``config.json`` records; a checkpoint
file records none and takes the recipe's data settings. The data (dataset, eval split, transform style) come from the
recipe's ``data`` section; every flag given overrides both. The result (printed, and written with ``--output``) holds
``top1``, ``top5``, ``samples``, ``params``, ``macs``, the data config used, the class order, and the corruption
report with ``--corruptions``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

# flags that override a field of the recipe's data section (flag name -> DataArguments field)
DATA_FLAGS = {"dataset": "dataset", "dataset_config": "dataset_config", "split": "eval_split", "image_column": "image_column",
              "label_column": "label_column", "image_size": "image_size", "mean": "mean", "std": "std",
              "transform_style": "transform_style", "max_samples": "max_eval_samples",
              "corruption_max_images": "corruption_max_images", "corruption_cache_dir": "corruption_cache_dir"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2kd-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model", required=True, help="Folder, Hub repo id, 'hf-hub:' repo, timm name, or checkpoint file "
                        "(.pth/.pt/.safetensors, with --arch).")
    parser.add_argument("--arch", default=None, help="Architecture of a checkpoint file, e.g. cifar_resnet20 (reference names "
                        "such as resnet20 or wrn_16_2 are accepted).")
    parser.add_argument("--revision", default=None, help="Hub revision of the model.")
    parser.add_argument("--recipe", default=None, help="Recipe (a name such as tinyimagenet/r2kd-resnet20_from_resnet56, or a "
                        "YAML path) whose data section gives the dataset, eval split, image size, mean/std and transform style.")
    parser.add_argument("--dataset", default=None, help="Dataset (as in recipes; default: the recipe's, else 'digits').")
    parser.add_argument("--dataset_config", default=None)
    parser.add_argument("--split", "--eval_split", dest="split", default=None,
                        help="Split to evaluate (default: the recipe's eval_split, else 'auto': validation/valid/val/test or a held-out part).")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--image_size", type=int, default=None, help="Input size (overrides the model's and the recipe's).")
    parser.add_argument("--mean", type=float, nargs=3, default=None, help="Normalisation mean (overrides the model's and the recipe's).")
    parser.add_argument("--std", type=float, nargs=3, default=None, help="Normalisation std (overrides the model's and the recipe's).")
    parser.add_argument("--transform_style", default=None, choices=["timm", "cifar"],
                        help="Eval transform: 'cifar' (plain resize) or 'timm' (resize + centre crop). Default: the recipe's, "
                        "else cifar below 96 px and timm above.")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_samples", type=int, default=None, help="Evaluate the first this many images of the split.")
    parser.add_argument("--latency", action="store_true", help="Also time CPU forwards at batch 1 and 64 (torch, and ONNX Runtime "
                        "when the onnx extra is installed).")
    parser.add_argument("--output", default=None, help="Write the result as JSON here.")
    parser.add_argument("--predictions", default=None, help="Also write each image's top-1 class and label (JSON, split order) here.")
    parser.add_argument("--corruptions", nargs="*", default=None,
                        help="Also evaluate on common corruptions: 'all' or names (gaussian_noise ... jpeg_compression).")
    parser.add_argument("--severities", nargs="*", type=int, default=[1, 2, 3, 4, 5], help="Corruption severities (1-5).")
    parser.add_argument("--corruption_max_images", type=int, default=None, help="Corrupt at most this many images (the first ones "
                        "of the split; default: all evaluated).")
    parser.add_argument("--baseline", default=None, help="robustness.json of a baseline model: adds mCE and relative mCE.")
    parser.add_argument("--corruption_cache_dir", default=None, help="Cache of corrupted sets (default: $HF_HOME/r2kd_hf/corruptions).")
    parser.add_argument("--plot", default=None, help="Write the corruption bar chart (PNG) here.")
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every argument checked before any model or data is loaded (argparse's usage error: exit 2)."""
    for name in ("batch_size", "max_samples", "corruption_max_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}.")
    if args.std is not None and min(args.std) <= 0:
        parser.error(f"--std must be three numbers > 0, got {args.std}.")
    if args.corruptions is not None:
        from ..corruptions import check_names

        try:
            check_names(args.corruptions, args.severities)
        except ValueError as error:
            parser.error(str(error))
    if args.baseline and not os.path.isfile(args.baseline):
        parser.error(f"--baseline {args.baseline!r} does not exist (give the robustness.json of a baseline model).")


def data_arguments(args: argparse.Namespace):
    """The recipe's data section with the flags given on top (``DataArguments`` validates the result once)."""
    from .recipe import DataArguments, find_recipe, load_recipe_file

    values: dict[str, Any] = {}
    if args.recipe:
        values.update(load_recipe_file(find_recipe(args.recipe)).get("data") or {})
    for flag, field in DATA_FLAGS.items():
        if getattr(args, flag, None) is not None:
            values[field] = getattr(args, flag)
    values["streaming"] = False  # evaluation reads the eval split only
    return DataArguments(**values)


def class_order(model, label_names: list[str] | None) -> str:
    """How the model's outputs map to the dataset's labels; an error when they cannot be the same classes."""
    from ..introspection import id2label_of, num_labels_of

    classes = num_labels_of(model)
    if label_names and classes and classes != len(label_names):
        raise ValueError(f"The model predicts {classes} classes but the dataset has {len(label_names)}: it was not trained "
                         "on this dataset's label set.")
    names = id2label_of(model)
    if not names:
        return "dataset order (the model carries no label names)"
    if not label_names:
        return "model order (the dataset carries no label names)"
    model_order = [names.get(i) for i in range(len(label_names))]
    if model_order != list(label_names):
        first = next(i for i, (a, b) in enumerate(zip(model_order, label_names)) if a != b)
        same_set = sorted(map(str, model_order)) == sorted(label_names)
        raise ValueError(
            f"The model's class order differs from the dataset's ({'the same names, in another order' if same_set else 'other names'}); "
            f"first difference at label {first}. Model: {_preview(model_order)}. Dataset: {_preview(label_names)}. Re-map the "
            "dataset's labels to the model's id2label, or evaluate on the dataset the model was trained with.")
    return "matched by name"


def _preview(names: list, count: int = 6) -> str:
    return "[" + ", ".join(map(repr, names[:count])) + (f", ... ({len(names)} in all)" if len(names) > count else "") + "]"


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and the data, evaluate; the result as a dict (see the module docstring)."""
    from ..data import build_transforms, prepare_dataset
    from ..evaluation import evaluate_accuracy
    from ..introspection import count_macs, count_parameters, data_config_of
    from ..checks import dataset_label_names, resolve_data_config
    from ..loading import load_model
    from .pipeline import load_data, recipe_data_config

    data_args = data_arguments(args)
    model = load_model(args.model, role="model", arch=args.arch, revision=args.revision, data_config=recipe_data_config(data_args))
    recorded = data_config_of(model) or {}
    if args.recipe and not _is_file(args.model):  # a saved model's own record wins over the recipe's; flags win over both
        for key, stated in recipe_data_config(data_args).items():
            if key in recorded and tuple(recorded[key]) != tuple(stated) and getattr(args, _FLAG_OF.get(key, ""), None) is None:
                logger.warning("The model records %s=%s; the recipe's %s is not used (pass --%s to force it).", key,
                               tuple(recorded[key]), tuple(stated), _FLAG_OF[key])
    data_config = resolve_data_config(model, args.image_size, args.mean, args.std)
    size = int(data_config["input_size"][-1])
    style = args.transform_style or (data_args.transform_style if args.recipe else ("cifar" if size < 96 else "timm"))
    data = load_data(data_args, seed=42)
    order = class_order(model, dataset_label_names(data.splits["eval"]) or [data.id2label[i] for i in sorted(data.id2label)])
    _, eval_transform = build_transforms(data_config, style=style)
    metrics: dict[str, Any] = {"model": args.model, "arch": args.arch}
    metrics.update(evaluate_accuracy(model, prepare_dataset(data.splits["eval"], eval_transform), batch_size=args.batch_size,
                                     return_predictions=bool(args.predictions)))
    if args.predictions:
        labels = data.splits["eval"].select_columns(["labels"])[: metrics["samples"]]["labels"]
        _write_json(args.predictions, {"predictions": metrics.pop("predictions"), "labels": list(labels)})
    input_size = tuple(data_config["input_size"])
    metrics.update(params=count_parameters(model), macs=count_macs(model, input_size), dataset=data.source, split=data.eval_split,
                   input_size=list(input_size), mean=list(data_config["mean"]), std=list(data_config["std"]),
                   interpolation=data_config.get("interpolation"), crop_pct=data_config.get("crop_pct"), transform_style=style,
                   class_order=order)
    if args.latency:
        metrics.update(latency(model, input_size))
    if args.corruptions is not None:
        metrics["robustness"] = robustness(model, data, data_config, data_args, args)
    return metrics


_FLAG_OF = {"input_size": "image_size", "mean": "mean", "std": "std"}


def _is_file(spec: str) -> bool:
    return os.path.isfile(os.path.expanduser(spec))


def latency(model, input_size: tuple[int, int, int]) -> dict[str, Any]:
    """CPU forward times at batch 1 and 64: torch, and ONNX Runtime when the onnx extra is installed."""
    from ..evaluation import cpu_latency_ms

    result: dict[str, Any] = {"cpu_latency_ms_batch1": round(cpu_latency_ms(model, input_size, 1), 3),
                              "cpu_latency_ms_batch64": round(cpu_latency_ms(model, input_size, 64, repeats=10), 3)}
    try:
        import tempfile

        from ..export import export_onnx, onnx_latency_ms

        with tempfile.TemporaryDirectory() as folder:
            exported = export_onnx(model, os.path.join(folder, "model.onnx"), input_size=input_size)
            result["onnxruntime_latency_ms_batch1"] = round(onnx_latency_ms(exported["path"], input_size, 1), 3)
            result["onnxruntime_latency_ms_batch64"] = round(onnx_latency_ms(exported["path"], input_size, 64, repeats=10), 3)
            result["onnx_max_abs_diff"] = exported["max_abs_diff"]
    except ImportError as error:
        result["onnxruntime_latency"] = f"not measured: {error}"
    return result


def robustness(model, data, data_config: dict, data_args, args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy under the common corruptions (the benchmark's constants for the input size), cached per set."""
    from ..corruptions import clean_images, evaluate_corruptions
    from ..plots import plot_corruption_accuracy
    from .pipeline import cache_dir

    baseline = None
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as handle:
            baseline = json.load(handle)
    limit = data_args.corruption_max_images or data_args.max_eval_samples
    images, labels = clean_images(data.splits["eval"], int(data_config["input_size"][-1]), limit)
    report = evaluate_corruptions(model, images, labels, data_config["mean"], data_config["std"], args.corruptions,
                                  args.severities, cache_dir=cache_dir(data_args, "corruptions"), baseline=baseline)
    if args.plot:
        plot_corruption_accuracy(report, args.plot)
    return report


def main(argv: list[str] | None = None) -> int:
    """Exit codes as the other commands: 0 done, 2 a usage or input error (nothing evaluated), 1 a runtime error."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = parser.parse_args([a for a in argv if a != "--debug"])
    check_arguments(parser, args)
    from .cli import USAGE_ERRORS, reported

    results: list[dict] = []
    # the model, recipe, dataset or class order does not fit: a usage error (2)
    code = reported(lambda: results.append(evaluate(args)), debug=debug, usage_errors=USAGE_ERRORS)
    if code:
        return code
    print(json.dumps(results[0], indent=2, default=str))
    if args.output:
        _write_json(args.output, results[0])
    return 0


def _write_json(path: str, content: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2, default=str)


if __name__ == "__main__":
    sys.exit(main())
