#!/usr/bin/env python
"""224 px data rate on real photographs: JPEG decode + RandomResizedCrop + flip + normalise, per DataLoader worker.

    python benchmarks/benchmark_photos_224.py --photos ../shared/data/imagenette-224 --workers 1 2

Measures images/s of timm's 224 px training transform (r2kd_hf's ``transform_style: timm``) through the same
DataLoader and collator as training, on the photos' train split, and on the same number of upscaled CIFAR JPEGs
(400x300, quality 90; the stand-in earlier figures used) for comparison. Writes benchmarks/results/benchmark_photos_224px.{json,md}.
The number of workers a GPU needs is its step's images/s divided by one worker's rate on that machine.
"""

import argparse
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_speed import jpeg_dataset, loader_images_per_s  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="../shared/data/imagenette-224")
    parser.add_argument("--cifar", default="../shared/data/cifar10", help="For the upscaled-CIFAR comparison ('' to skip).")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--output_dir", default="benchmarks/results")
    args = parser.parse_args(argv)

    import r2kd_hf  # noqa: F401
    from r2kd_hf.data import build_transforms, load_image_dataset, prepare_dataset

    config = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
              "crop_pct": 0.875}
    train_tf, _ = build_transforms(config, style="timm")
    sets = {"real photos (" + os.path.basename(os.path.normpath(args.photos)) + ")":
            load_image_dataset(args.photos, max_train_samples=args.images).splits["train"]}
    if args.cifar:
        sets["upscaled CIFAR JPEGs (400x300)"] = jpeg_dataset(load_image_dataset(args.cifar, eval_split="test", max_train_samples=args.images),
                                                              args.images)
    batches = max(4, args.images // args.batch - 2)
    result = {"device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "batch": args.batch, "images": args.images, "rates": {}}
    for name, split in sets.items():
        dataset = prepare_dataset(split, train_tf)
        result["rates"][name] = {str(w): loader_images_per_s(dataset, args.batch, w, batches, "cpu") for w in args.workers}
        print(name, {w: round(v) for w, v in result["rates"][name].items()}, flush=True)
    lines = ["| 224 px training transform (decode + RandomResizedCrop + flip + normalise) | "
             + " | ".join(f"{w} worker(s), images/s" for w in args.workers) + " |", "|---" * (len(args.workers) + 1) + "|"]
    for name, rates in result["rates"].items():
        lines.append(f"| {name} | " + " | ".join(f"{rates[str(w)]:.0f}" for w in args.workers) + " |")
    lines.append(f"\n{result['device']}, torch {result['torch']}, batch {args.batch}, {args.images} images.")
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "benchmark_photos_224px.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    with open(os.path.join(args.output_dir, "benchmark_photos_224px.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
