#!/usr/bin/env python
"""Pruned students: params, MACs, CPU latency (batch 1 and 64) and accuracy after distillation.

    python benchmarks/benchmark_pruning.py --dataset ../shared/data/cifar10 --ratios 0 0.3 0.5 0.7

Prune-then-distill at the quality benchmark's CPU scale: the student starts as a copy of the (cached) CE-trained
teacher, cifar_resnet20, with 0/30/50/70 % of its channels removed (Torch-Pruning, L1 magnitude), then is distilled
from that teacher with full R2KD (CutMix view + pruned teacher) for 5 epochs on the same 4,000-image subset and
evaluated on the full CIFAR-10 test split. Latency: median of 30 forwards on this machine's CPU. Writes
benchmarks/results/benchmark_pruning.{json,md}.
"""

import argparse
import dataclasses
import json
import os
import sys

import r2kd_hf  # noqa: F401
from r2kd_hf.evaluation import cpu_latency_ms
from r2kd_hf.introspection import count_macs, count_parameters
from r2kd_hf.loading import load_model
from r2kd_hf.app.pipeline import run, train_teacher
from r2kd_hf.app.recipe import DataArguments, ModelArguments, parse_recipe

# The scale of the (superseded, removed) quality benchmark v1 that these figures were measured at.
SCALES = {"cpu": dict(max_train_samples=4000, teacher_arch="cifar_resnet20", teacher_epochs=15, student="cifar_resnet8",
                      epochs=5, lr=0.05, schedule=dict(lr_scheduler_type="cosine"))}


def benchmark_training_args(work_dir: str, learning_rate: float, extra: list[str] = ()):
    """SGD, batch 64, per-epoch eval on the test split, data_seed 0 (through the command line's own parser)."""
    _, _, base, _ = parse_recipe([
        "--output_dir", work_dir, "--per_device_train_batch_size", "64", "--per_device_eval_batch_size", "500",
        "--learning_rate", str(learning_rate), "--optim", "sgd", "--optim_args", "momentum=0.9", "--weight_decay", "5e-4",
        "--eval_strategy", "epoch", "--save_strategy", "no", "--logging_steps", "50", "--disable_tqdm", "true",
        "--report_to", "none", "--validate_teacher", "false", "--data_seed", "0", "--dataloader_num_workers", "1", *extra,
    ])
    return base


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7])
    parser.add_argument("--work_dir", default=".bench_cache/quality")
    parser.add_argument("--epochs", type=float, default=None)
    args = parser.parse_args(argv)
    scale = SCALES["cpu"]
    epochs = args.epochs or scale["epochs"]
    base = benchmark_training_args(args.work_dir, 0.02, [
        "--lr_scheduler_type", "cosine", "--use_cpu", "true", "--loss_name", "r2kd", "--second_view", "cutmix",
        "--prune_teacher", "true", "--num_train_epochs", str(epochs), "--seed", "0",
    ])
    data_args = DataArguments(dataset=args.dataset, eval_split="test", transform_style="cifar", crop_padding=4,
                              max_train_samples=scale["max_train_samples"])
    model_args = ModelArguments(teacher_arch=scale["teacher_arch"], train_teacher_epochs=scale["teacher_epochs"])
    info = {"recipe_text": "benchmark_pruning"}
    teacher_dir = os.path.join(args.work_dir, f"teacher_cpu_{scale['teacher_arch']}_{scale['max_train_samples']}")
    train_teacher(model_args, data_args, dataclasses.replace(base, seed=1234, learning_rate=0.05), info, teacher_dir)
    rows = []
    for ratio in args.ratios:
        out = os.path.join(args.work_dir, "pruned_students", f"ratio_{ratio:g}")
        student_args = dataclasses.replace(model_args, teacher=teacher_dir, student_from_teacher=True, prune_student=ratio or None)
        summary = run(student_args, data_args, dataclasses.replace(base, output_dir=out), info)
        model = load_model(out, role="student")
        size = (3, 32, 32)
        rows.append({
            "channels_removed": ratio, "params": count_parameters(model), "macs": count_macs(model, size),
            "latency_ms_batch1": cpu_latency_ms(model, size, 1), "latency_ms_batch64": cpu_latency_ms(model, size, 64, repeats=15),
            "final_top1": summary["final_eval_accuracy"], "best_top1": summary["best_eval_accuracy"],
        })
        print(rows[-1], flush=True)
    lines = ["| channels removed | params | MACs | CPU ms, batch 1 | CPU ms, batch 64 | top-1 final | top-1 best |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['channels_removed']:.0%} | {r['params']:,} | {r['macs']:,} | {r['latency_ms_batch1']:.2f} | {r['latency_ms_batch64']:.1f} | "
              f"{r['final_top1']:.4f} | {r['best_top1']:.4f} |" for r in rows]
    print("\n".join(lines))
    os.makedirs("benchmarks/results", exist_ok=True)
    with open("benchmarks/results/benchmark_pruning.md", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open("benchmarks/results/benchmark_pruning.json", "w") as handle:
        json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
