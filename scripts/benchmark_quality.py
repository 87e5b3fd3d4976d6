#!/usr/bin/env python
"""Quality benchmark: does R2KD help? Same teacher, same student, same budget, several seeds, on real CIFAR-10.

    python scripts/benchmark_quality.py --dataset ../shared/data/cifar10 --scale cpu     # ~1 h on 2 CPU cores
    python scripts/benchmark_quality.py --dataset ../shared/data/cifar10 --scale full    # GPU: whole set, paper schedule

Scales (exactly what runs):
  cpu : a seeded 4,000-image subset of the training split (the same subset for every run), 32 px, CIFAR-style
        pad-and-crop + flip; teacher cifar_resnet20 trained once with CE for 15 epochs (cached); student cifar_resnet8;
        5 epochs per student, SGD momentum 0.9, lr 0.05 cosine, batch 64, wd 5e-4; evaluation on the FULL test split
        (10,000 images) after every epoch.
  full: the whole training split, teacher cifar_resnet56 (240 epochs), student cifar_resnet20, 240 epochs, lr 0.05
        x0.1 at 150/180/210 (the reference schedule).
Methods: CE only, KD, DIST, DKD, CMKD, R2KD without second view, R2KD + CutMix view, full R2KD (CutMix + pruned teacher).
Reports final-epoch and best-epoch top-1 (the reference code reports best) as mean ± std over seeds; nothing is tuned
on the test split (every hyper-parameter is a paper default). Writes docs/benchmark_quality.{json,md,png}.
"""

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import time

import r2kd_hf  # noqa: F401
from r2kd_hf.config import R2KDConfig
from r2kd_hf.pipeline import run, train_teacher
from r2kd_hf.recipe import DataArguments, ModelArguments, parse_recipe

SCALES = {
    "cpu": dict(max_train_samples=4000, teacher_arch="cifar_resnet20", teacher_epochs=15, student="cifar_resnet8", epochs=5,
                lr=0.05, schedule=dict(lr_scheduler_type="cosine")),
    "full": dict(max_train_samples=None, teacher_arch="cifar_resnet56", teacher_epochs=240, student="cifar_resnet20", epochs=240,
                 lr=0.05, schedule=dict(lr_scheduler_type="constant", lr_decay_epochs=[150, 180, 210])),
}


def benchmark_training_args(work_dir: str, learning_rate: float, extra: list[str] = ()) -> R2KDConfig:
    """Settings shared by the quality and pruning benchmarks (SGD, batch 64, per-epoch eval on the test split, data_seed 0)."""
    _, _, base, _ = parse_recipe([
        "--output_dir", work_dir, "--per_device_train_batch_size", "64", "--per_device_eval_batch_size", "500",
        "--learning_rate", str(learning_rate), "--optim", "sgd", "--optim_args", "momentum=0.9", "--weight_decay", "5e-4",
        "--eval_strategy", "epoch", "--save_strategy", "no", "--logging_steps", "50", "--disable_tqdm", "true",
        "--report_to", "none", "--validate_teacher", "false", "--data_seed", "0", "--dataloader_num_workers", "1", *extra,
    ])
    return base


def methods(epochs: float) -> dict[str, dict]:
    return {
        "CE only": dict(loss_name="none"),
        "KD": dict(loss_name="kd", ce_weight=0.1, kd_weight=0.9),
        "DIST": dict(loss_name="dist"),
        "DKD": dict(loss_name="dkd", loss_kwargs={"beta": 8.0, "warmup_epochs": epochs * 20 / 240}),
        "CMKD": dict(loss_name="cmkd"),
        "R2KD (no view)": dict(loss_name="r2kd"),
        "R2KD + CutMix view": dict(loss_name="r2kd", second_view="cutmix"),
        "R2KD full (CutMix + pruned teacher)": dict(loss_name="r2kd", second_view="cutmix", prune_teacher=True),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=None, help="Subset of method names (default: all).")
    parser.add_argument("--work_dir", default=".bench_cache/quality")
    parser.add_argument("--report_dir", default="docs")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Override the scale's subset size.")
    parser.add_argument("--epochs", type=float, default=None, help="Override the scale's student epochs.")
    parser.add_argument("--use_cpu", action="store_true", help="Force CPU even where a GPU exists.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scale = dict(SCALES[args.scale])
    if args.max_train_samples:
        scale["max_train_samples"] = args.max_train_samples
    epochs = args.epochs or scale["epochs"]

    base = benchmark_training_args(args.work_dir, scale["lr"], ["--use_cpu", "true"] if args.use_cpu else [])
    base = dataclasses.replace(base, **scale["schedule"])
    data_args = DataArguments(dataset=args.dataset, eval_split="test", transform_style="cifar", crop_padding=4,
                              max_train_samples=scale["max_train_samples"])
    model_args = ModelArguments(student=scale["student"], teacher_arch=scale["teacher_arch"], train_teacher_epochs=scale["teacher_epochs"])
    info = {"recipe_text": f"benchmark_quality --scale {args.scale}"}

    teacher_dir = os.path.join(args.work_dir, f"teacher_{args.scale}_{scale['teacher_arch']}_{scale['max_train_samples']}")
    start = time.time()
    train_teacher(model_args, data_args, dataclasses.replace(base, seed=1234), info, teacher_dir)
    teacher_summary = json.load(open(os.path.join(teacher_dir, "summary.json"))) if os.path.exists(os.path.join(teacher_dir, "summary.json")) else {}
    print(f"teacher ready in {time.time() - start:.0f}s: {teacher_summary.get('metrics', {}).get('eval_accuracy')}", flush=True)
    model_args = dataclasses.replace(model_args, teacher=teacher_dir)

    results_path = os.path.join(args.work_dir, f"results_{args.scale}.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    selected = {k: v for k, v in methods(epochs).items() if not args.methods or k in args.methods}
    for name, overrides in selected.items():
        for seed in args.seeds:
            key = f"{name}|{seed}"
            if key in results:
                continue
            run_args = dataclasses.replace(base, output_dir=os.path.join(args.work_dir, "runs", f"{abs(hash(name)) % 10**6}_{seed}"),
                                           num_train_epochs=epochs, seed=seed, **overrides)
            began = time.time()
            summary = run(model_args, data_args, run_args, info, role="student")
            results[key] = {"final": summary["final_eval_accuracy"], "best": summary["best_eval_accuracy"], "seconds": time.time() - began}
            print(f"{name:<38} seed {seed}: final {results[key]['final']:.4f} best {results[key]['best']:.4f} ({results[key]['seconds']:.0f}s)", flush=True)
            json.dump(results, open(results_path, "w"), indent=2)
    report(results, selected, args, scale, epochs, teacher_summary)
    return 0


def report(results, selected, args, scale, epochs, teacher_summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name in selected:
        runs = [results[f"{name}|{s}"] for s in args.seeds if f"{name}|{s}" in results]
        if not runs:
            continue
        final, best = [r["final"] for r in runs], [r["best"] for r in runs]
        std = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
        rows.append({"method": name, "final_mean": statistics.mean(final), "final_std": std(final), "best_mean": statistics.mean(best),
                     "best_std": std(best), "seeds": len(runs), "minutes_per_run": statistics.mean(r["seconds"] for r in runs) / 60})
    os.makedirs(args.report_dir, exist_ok=True)
    teacher_accuracy = teacher_summary.get("metrics", {}).get("eval_accuracy")
    header = (f"Scale `{args.scale}`: {scale['max_train_samples'] or 'all'} training images, student {scale['student']}, "
              f"teacher {scale['teacher_arch']} (test top-1 {teacher_accuracy:.4f}), {epochs:g} epochs, seeds {args.seeds}; "
              "top-1 on the full test split.\n\n" if teacher_accuracy is not None else "")
    lines = [header + "| method | final top-1 (mean ± std) | best-epoch top-1 (mean ± std) | seeds | min/run |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['final_mean']:.4f} ± {r['final_std']:.4f} | {r['best_mean']:.4f} ± {r['best_std']:.4f} | {r['seeds']} | {r['minutes_per_run']:.1f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.report_dir, f"benchmark_quality_{args.scale}.md"), "w") as handle:
        handle.write(table + "\n")
    with open(os.path.join(args.report_dir, f"benchmark_quality_{args.scale}.json"), "w") as handle:
        json.dump({"rows": rows, "raw": results, "scale": scale, "epochs": epochs, "teacher_accuracy": teacher_accuracy}, handle, indent=2)
    figure, axis = plt.subplots(figsize=(9, 4))
    names = [r["method"] for r in rows]
    positions = range(len(rows))
    axis.barh([p + 0.2 for p in positions], [r["final_mean"] for r in rows], 0.4, xerr=[r["final_std"] for r in rows], label="final epoch")
    axis.barh([p - 0.2 for p in positions], [r["best_mean"] for r in rows], 0.4, xerr=[r["best_std"] for r in rows], label="best epoch")
    axis.set_yticks(list(positions), names, fontsize=8)
    low = min(r["final_mean"] - r["final_std"] for r in rows)
    axis.set_xlim(max(0.0, low - 0.03), min(1.0, max(r["best_mean"] + r["best_std"] for r in rows) + 0.02))
    axis.set_xlabel("CIFAR-10 test top-1")
    axis.set_title(f"Distillation methods, scale={args.scale} (mean ± std over {len(args.seeds)} seeds)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(os.path.join(args.report_dir, f"benchmark_quality_{args.scale}.png"), dpi=110)


if __name__ == "__main__":
    sys.exit(main())
