#!/usr/bin/env python
"""Data-pipeline benchmark: is training stalled by JPEG decoding and augmentation?

    python benchmarks/benchmark_data.py --dataset ../shared/data/cifar10 --workers 0 1 2

Runs the same R2KD training step (teacher cifar_resnet56 -> student cifar_resnet20 at 32 px, CutMix view, pruned
teacher, batch 64) once on ready tensors and once on real CIFAR-10 images decoded with PIL and augmented
(pad-and-crop + flip) through datasets' lazy transform, for each number of DataLoader workers, and reports the ratio
of step times (1.0 = no data stall). ``--image_size 224`` repeats it with timm's 224 px training transform.
Writes benchmarks/results/benchmark_data_<size>px.json.
"""

import argparse
import json
import os
import statistics
import sys

import r2kd_hf  # noqa: F401
import timm
import torch

from r2kd_hf.data import build_transforms, load_image_dataset, prepare_dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_speed import ReadyTensors, trainer_step_times  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--teacher", default="cifar_resnet56")
    parser.add_argument("--student", default="cifar_resnet20")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work_dir", default=".bench_cache/data")
    opts = parser.parse_args(argv)
    opts.classes = 10
    torch.manual_seed(0)
    models = {"teacher": timm.create_model(opts.teacher, num_classes=10), "student": timm.create_model(opts.student, num_classes=10)}
    count = opts.batch * (opts.steps + opts.warmup + 2)
    data = load_image_dataset(opts.dataset, eval_split="test", max_train_samples=count)
    config = {**models["student"].pretrained_cfg, "input_size": (3, opts.image_size, opts.image_size)}
    style = "cifar" if opts.image_size <= 64 else "timm"
    train_tf, _ = build_transforms(config, style=style)
    real = prepare_dataset(data.splits["train"], train_tf)
    ready = ReadyTensors(count, opts.image_size, 10)
    ready_s = statistics.median(trainer_step_times(models, ready, opts, opts.steps, opts.warmup, dataloader_num_workers=0))
    result = {"device": opts.device, "image_size": opts.image_size, "transform_style": style, "ready_tensors_ms_per_step": ready_s * 1000, "real": {}}
    print(f"ready tensors: {ready_s * 1000:.1f} ms/step", flush=True)
    for workers in opts.workers:
        real_s = statistics.median(trainer_step_times(models, real, opts, opts.steps, opts.warmup, dataloader_num_workers=workers))
        result["real"][workers] = {"ms_per_step": real_s * 1000, "ratio_to_ready": real_s / ready_s}
        print(f"decoded + augmented, {workers} workers: {real_s * 1000:.1f} ms/step, ratio {real_s / ready_s:.3f}", flush=True)
    os.makedirs("benchmarks/results", exist_ok=True)
    with open(os.path.join("benchmarks/results", f"benchmark_data_{opts.image_size}px.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
