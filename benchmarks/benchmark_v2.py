#!/usr/bin/env python
"""Benchmark v2: does the augmented view help R2KD and hurt KD, does the pruned teacher add anything, is R2KD more
robust under common corruptions, and what should a user pick? Real CIFAR-10, resumable, cached per configuration.

    nohup python benchmarks/benchmark_v2.py --dataset ../shared/data/cifar10 --scale cpu > bench_v2.log 2>&1 &   # hours
    python benchmarks/benchmark_v2.py --dataset ../shared/data/cifar10 --report_only                             # tables
    python benchmarks/benchmark_v2.py --dataset <cifar100 or cifar10> --scale full                               # a GPU

Protocol (exactly what runs):
  cpu : a seeded 5,000-image subset of the training split, of which 500 (stratified, seeded) are a validation split
        carved from it; 4,500 train. 32 px, pad-and-crop + flip. Teacher cifar_resnet20 trained once with CE for 30
        epochs (x0.1 at 18, 24) and cached. Student cifar_resnet8, 20 epochs, SGD momentum 0.9, lr 0.05, x0.1 at 12 and
        16 (the papers' step schedule, shortened), batch 64, weight decay 5e-4 on all parameters, no clipping (the
        reference's settings). Validation top-1 after every epoch (final and best); the test split is read once per
        run, at the end: clean top-1 on all 10,000 images, and mCA over 10 corruptions x 5 severities (CIFAR-10-C
        constants) on a fixed 2,000-image test subset whose corrupted copies are built once and cached.
  full: the whole training split (5,000 carved for validation), teacher cifar_resnet56 (240 epochs), student
        cifar_resnet20 (240 epochs, x0.1 at 150/180/210), whole test split for the corruptions.
Rows: CE; KD; KD + CutMix; DIST; DIST + CutMix; R2KD; R2KD + CutMix; R2KD full (CutMix + pruned teacher); and the
library's options on top of R2KD full: Pearson value term, differentiable (soft) rank term, running-statistics pruned
teacher. Seeds 0, 1, 2; the seed also fixes the data order, so every row sees the same batches for a given seed.
Runs go seed by seed (all rows of seed 0 first), so an interrupted benchmark still has complete, comparable seeds.
Keep the work dir's teacher with its results: a teacher retrained elsewhere is not bit-identical, so the script
refuses to distil new rows into a cache whose teacher is gone (use a new --work_dir and rerun the baselines there).
Writes benchmarks/results/benchmark_v2.{md,json} and benchmarks/results/benchmark_v2_{clean_vs_mca,augmentation_gain}.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SCALES = {
    "cpu": dict(subset=5000, validation=500, teacher="cifar_resnet20", teacher_epochs=30, teacher_decay=[18, 24],
                student="cifar_resnet8", epochs=20, decay=[12, 16], corruption_images=2000),
    "smoke": dict(subset=600, validation=100, teacher="cifar_resnet8", teacher_epochs=1, teacher_decay=[1],
                  student="cifar_resnet8", epochs=1, decay=[1], corruption_images=40),  # checks the script, measures nothing
    "full": dict(subset=None, validation=5000, teacher="cifar_resnet56", teacher_epochs=240, teacher_decay=[150, 180, 210],
                 student="cifar_resnet20", epochs=240, decay=[150, 180, 210], corruption_images=None),
}
R2KD_FULL = dict(loss_name="r2kd", second_view="cutmix", prune_teacher=True)
ROWS = {
    "CE": dict(loss_name="none"),
    "KD": dict(loss_name="kd", ce_weight=0.1, kd_weight=0.9, aug_kd_weight=0.9),
    "KD + CutMix": dict(loss_name="kd", ce_weight=0.1, kd_weight=0.9, aug_kd_weight=0.9, second_view="cutmix"),
    "DIST": dict(loss_name="dist"),
    "DIST + CutMix": dict(loss_name="dist", second_view="cutmix"),
    "R2KD": dict(loss_name="r2kd"),
    "R2KD + CutMix": dict(loss_name="r2kd", second_view="cutmix"),
    "R2KD full": R2KD_FULL,
    "R2KD full, Pearson value (option)": dict(R2KD_FULL, loss_kwargs={"value_similarity": "pearson"}),
    "R2KD full, soft rank (option)": dict(R2KD_FULL, loss_kwargs={"rank_mode": "soft"}),
    "R2KD full, running-stats pruned teacher (option)": dict(R2KD_FULL, pruned_teacher_bn="running_stats"),
}


def training_args(output_dir: str, epochs: float, decay: list, seed: int, use_cpu: bool, **overrides):
    from r2kd_hf import R2KDConfig

    return R2KDConfig(
        output_dir=output_dir, num_train_epochs=epochs, lr_scheduler_type="constant", lr_decay_epochs=decay, learning_rate=0.05,
        optim="sgd", optim_args="momentum=0.9", weight_decay=5e-4, per_device_train_batch_size=64, per_device_eval_batch_size=500,
        eval_strategy="epoch", save_strategy="no", logging_steps=50, disable_tqdm=True, report_to="none", seed=seed, data_seed=seed,
        use_cpu=use_cpu, validate_teacher=False, **{"dataloader_num_workers": 1, **overrides},
    )


def load_splits(dataset: str, scale: dict):
    from r2kd_hf.data import load_image_dataset

    data = load_image_dataset(dataset, eval_split="test", seed=0, max_train_samples=scale["subset"])
    parts = data.splits["train"].train_test_split(test_size=scale["validation"], seed=0, stratify_by_column="labels")
    return data, parts["train"], parts["test"], data.splits["eval"]


def config_key(name: str, seed: int, scale_name: str) -> str:
    blob = json.dumps({"row": ROWS[name], "scale": SCALES[scale_name], "seed": seed, "version": 2}, sort_keys=True)
    return f"{name}|{seed}|{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def one_run(name, seed, scale, scale_name, splits, teacher_dir, args, corrupted_inputs, row=None, out=None,
            small_images: bool = False) -> dict:
    """One row and seed: distil (or train with CE), then validation, test and mCA. ``row``/``out``/``small_images``:
    benchmark v3's (the small-image path: the same pad-crop-flip pixels, drawn batch-wise on the device, no workers)."""
    from r2kd_hf import R2KDTrainer, load_model
    from r2kd_hf.data import build_transforms, prepare_dataset
    from r2kd_hf.evaluation import evaluate_accuracy
    from r2kd_hf.metrics import final_and_best
    from r2kd_hf.corruptions import evaluate_corruptions
    from r2kd_hf.checks import resolve_data_config
    from r2kd_hf.loading import create_timm_classifier
    from r2kd_hf.saving import apply_data_config

    data, train, validation, test = splits
    student = create_timm_classifier(scale["student"], data.num_labels, data.id2label)
    data_config = resolve_data_config(student, 32)
    apply_data_config(student, data_config)
    train_tf, eval_tf = build_transforms(data_config, style="cifar", crop_padding=4)
    row = dict(ROWS[name] if row is None else row)
    teacher = None if row.get("loss_name") == "none" else load_model(teacher_dir)
    out = out or os.path.join(args.work_dir, "runs", config_key(name, seed, scale_name).replace("|", "_").replace(" ", "").replace(",", "").replace("(", "").replace(")", ""))
    if small_images:
        from r2kd_hf.small_images import in_memory_split

        train_set, _ = in_memory_split(train, 32, data_config["mean"], data_config["std"], 4, os.path.join(args.work_dir, "small_images"))
        row.setdefault("dataloader_num_workers", 0)
    else:
        train_set = prepare_dataset(train, train_tf)
    trainer = R2KDTrainer(model=student, teacher_model=teacher, train_dataset=train_set,
                          eval_dataset=prepare_dataset(validation, eval_tf), data_config=data_config,
                          args=training_args(out, scale["epochs"], scale["decay"], seed, args.use_cpu, **row))
    began = time.time()
    trainer.train()
    train_seconds = time.time() - began
    final, best = final_and_best(trainer.state.log_history)
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    test_accuracy = evaluate_accuracy(model, prepare_dataset(test, eval_tf), batch_size=500, device=str(trainer.args.device))["top1"]
    images, labels = corrupted_inputs
    from r2kd_hf.corruptions import FIRST_TEN  # v2's protocol: the ten corruptions it was measured with

    robustness = evaluate_corruptions(model, images, labels, data_config["mean"], data_config["std"], list(FIRST_TEN), None, seed=0,
                                      cache_dir=os.path.join(args.work_dir, "corruptions"))
    return {"row": name, "seed": seed, "val_final": final, "val_best": best, "test": test_accuracy, "mca": robustness["mca"],
            "corrupted_clean": robustness["clean_accuracy"],
            "per_corruption": {k: v["mean"] for k, v in robustness["per_corruption"].items()},
            "train_seconds": train_seconds, "seconds": time.time() - began}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=None, help="Subset of row names (default: all).")
    parser.add_argument("--work_dir", default=".bench_cache/v2")
    parser.add_argument("--report_dir", default="benchmarks/results")
    parser.add_argument("--use_cpu", action="store_true")
    parser.add_argument("--report_only", action="store_true", help="Only rebuild the report from cached results.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scale = SCALES[args.scale]
    results_path = os.path.join(args.work_dir, f"results_{args.scale}.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    unknown = [name for name in args.rows or [] if name not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; valid: {list(ROWS)}")
    selected = list(args.rows) if args.rows else list(ROWS)  # in the order given: the most telling rows first
    teacher_info_path = os.path.join(args.work_dir, f"teacher_{args.scale}.json")
    if not args.report_only:
        import torch

        from r2kd_hf.corruptions import clean_images

        teacher_dir = os.path.join(args.work_dir, f"teacher_{args.scale}_{scale['teacher']}")
        teacher_ready = os.path.exists(os.path.join(teacher_dir, "config.json"))
        if not teacher_ready:
            finished = [key for key in results if results[key].get("row") != "CE"]
            if finished:  # a retrained teacher is not bit-identical across machines: new rows would not be paired
                parser.error(
                    f"{results_path} holds {len(finished)} finished distillation runs, but their teacher is gone from "
                    f"{teacher_dir}. A teacher retrained on another machine differs (seen here: test top-1 0.6664 vs "
                    f"0.6702 with the same seed), so new rows would not be comparable with the cached ones. Restore "
                    f"{teacher_dir}, or start a separate comparison with a new --work_dir (and rerun the baseline rows "
                    f"there).")
        splits = load_splits(args.dataset, scale)
        if not teacher_ready:
            train_teacher(splits, scale, teacher_dir, args, teacher_info_path)
        test = splits[3]
        subset = test if scale["corruption_images"] is None else test.shuffle(seed=0).select(range(scale["corruption_images"]))
        corrupted_inputs = clean_images(subset, 32)
        torch.set_num_threads(max(1, torch.get_num_threads()))
        for seed in args.seeds:  # seed-major: an interrupted benchmark keeps complete seeds
            for name in selected:
                key = config_key(name, seed, args.scale)
                if key in results:
                    continue
                result = one_run(name, seed, scale, args.scale, splits, teacher_dir, args, corrupted_inputs)
                results[key] = result
                os.makedirs(args.work_dir, exist_ok=True)
                with open(results_path + ".tmp", "w") as handle:
                    json.dump(results, handle, indent=2)
                os.replace(results_path + ".tmp", results_path)
                print(f"{name:<50} seed {seed}: val best {result['val_best']:.4f} final {result['val_final']:.4f} "
                      f"test {result['test']:.4f} mCA {result['mca']:.4f} ({result['seconds'] / 60:.1f} min)", flush=True)
    teacher_info = json.load(open(teacher_info_path)) if os.path.exists(teacher_info_path) else {}
    report(results, selected, args, teacher_info)
    return 0


def train_teacher(splits, scale, teacher_dir, args, info_path) -> None:
    from r2kd_hf import R2KDTrainer
    from r2kd_hf.data import build_transforms, prepare_dataset
    from r2kd_hf.evaluation import evaluate_accuracy
    from r2kd_hf.checks import resolve_data_config
    from r2kd_hf.loading import create_timm_classifier
    from r2kd_hf.saving import apply_data_config

    data, train, validation, test = splits
    teacher = create_timm_classifier(scale["teacher"], data.num_labels, data.id2label)
    data_config = resolve_data_config(teacher, 32)
    apply_data_config(teacher, data_config)
    train_tf, eval_tf = build_transforms(data_config, style="cifar", crop_padding=4)
    began = time.time()
    trainer = R2KDTrainer(model=teacher, train_dataset=prepare_dataset(train, train_tf), eval_dataset=prepare_dataset(validation, eval_tf),
                          args=training_args(teacher_dir, scale["teacher_epochs"], scale["teacher_decay"], 1234, args.use_cpu,
                                             loss_name="none"))
    trainer.train()
    trainer.save_model()
    test_accuracy = evaluate_accuracy(trainer.model, prepare_dataset(test, eval_tf), batch_size=500)["top1"]
    info = {"architecture": scale["teacher"], "test": test_accuracy, "minutes": (time.time() - began) / 60,
            "val_best": max(e["eval_accuracy"] for e in trainer.state.log_history if "eval_accuracy" in e)}
    json.dump(info, open(info_path, "w"), indent=2)
    print(f"teacher {scale['teacher']}: test {test_accuracy:.4f} ({info['minutes']:.1f} min)", flush=True)


def _mean_std(values):
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0) if values else (float("nan"), 0.0)


V2_QUESTIONS = [
    ("(a) CutMix view, KD", "KD + CutMix", "KD"), ("(a) CutMix view, DIST", "DIST + CutMix", "DIST"),
    ("(a) CutMix view, R2KD", "R2KD + CutMix", "R2KD"),
    ("(b) pruned teacher", "R2KD full", "R2KD + CutMix"),
    ("(c) R2KD vs KD (no view)", "R2KD", "KD"), ("(c) R2KD vs DIST (no view)", "R2KD", "DIST"),
    ("(c) R2KD full vs KD + CutMix", "R2KD full", "KD + CutMix"), ("(c) R2KD full vs DIST + CutMix", "R2KD full", "DIST + CutMix"),
    ("(d) R2KD full vs CE", "R2KD full", "CE"), ("(d) R2KD vs CE", "R2KD", "CE"),
    ("option: Pearson value term", "R2KD full, Pearson value (option)", "R2KD full"),
    ("option: soft rank term", "R2KD full, soft rank (option)", "R2KD full"),
    ("option: running-stats pruned teacher", "R2KD full, running-stats pruned teacher (option)", "R2KD full"),
]


def report(results: dict, selected: list[str], args, teacher_info: dict, stem: str = "benchmark_v2",
           questions: list | None = None, views: tuple[str, ...] = ("CutMix",), protocol: dict | None = None) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocol = SCALES[args.scale] if protocol is None else protocol
    by_row = {name: {r["seed"]: r for r in results.values() if r["row"] == name and r["seed"] in args.seeds} for name in selected}
    complete_seeds = [s for s in args.seeds if all(s in by_row[n] for n in selected)]
    lines = [
        f"Scale `{args.scale}` ({protocol}). Teacher {teacher_info.get('architecture')}: test top-1 "
        f"{teacher_info.get('test', float('nan')):.4f}. Seeds with every row finished: {complete_seeds or 'none yet'}"
        + (" (**partial**: not every planned seed has run)" if len(complete_seeds) < len(args.seeds) else "") + ".",
        "",
        "| row | seeds | val best | val final | test top-1 (read once) | mCA (corrupted test) | min/run |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for name in selected:
        runs = list(by_row[name].values())
        if not runs:
            continue
        stats = {k: _mean_std([r[k] for r in runs]) for k in ("val_best", "val_final", "test", "mca")}
        minutes = statistics.mean(r["seconds"] for r in runs) / 60
        rows.append({"row": name, "seeds": sorted(by_row[name]), **{k: v[0] for k, v in stats.items()},
                     **{f"{k}_std": v[1] for k, v in stats.items()}, "minutes": minutes})
        cell = lambda k: f"{stats[k][0]:.4f} ± {stats[k][1]:.4f}" if len(runs) > 1 else f"{stats[k][0]:.4f} (1 seed)"  # noqa: E731
        lines.append(f"| {name} | {len(runs)} | {cell('val_best')} | {cell('val_final')} | {cell('test')} | {cell('mca')} | {minutes:.1f} |")

    def paired(a: str, b: str, key: str) -> tuple[list[float], list[int]]:
        """The per-seed differences ``a - b`` over the seeds both rows have, and those seeds."""
        seeds = [s for s in args.seeds if s in by_row.get(a, {}) and s in by_row.get(b, {})]
        return [by_row[a][s][key] - by_row[b][s][key] for s in seeds], seeds

    questions = V2_QUESTIONS if questions is None else questions
    lines += ["", "Paired per-seed differences (same seed, same data order); `> 0` counts the seeds where A beat B:", "",
              "| question | A − B | test top-1: mean ± std | > 0 | mCA: mean ± std | > 0 | seeds |",
              "|---|---|---|---|---|---|---|"]
    differences = []
    for title, a, b in questions:
        cells, seeds = [], []
        for key in ("test", "mca"):
            diffs, seeds = paired(a, b, key)
            if not seeds:
                break
            mean, std = _mean_std(diffs)
            differences.append({"question": title, "a": a, "b": b, "metric": key, "mean": mean, "std": std, "seeds": seeds,
                                "positive": sum(d > 0 for d in diffs)})
            spread = f" ± {std:.4f}" if len(seeds) > 1 else " (1 seed)"
            cells += [f"{mean:+.4f}{spread}", f"{sum(d > 0 for d in diffs)}/{len(seeds)}"]
        if seeds:
            lines.append(f"| {title} | {a} − {b} | {' | '.join(cells)} | {seeds} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.report_dir, exist_ok=True)
    with open(os.path.join(args.report_dir, f"{stem}.md"), "w") as handle:
        handle.write(table + "\n")
    summary = {"scale": args.scale, "protocol": protocol, "teacher": teacher_info, "rows": rows,
               "paired_differences": differences, "raw": results}
    with open(os.path.join(args.report_dir, f"{stem}.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    if not rows:
        return summary
    figure, axis = plt.subplots(figsize=(9, 5))
    markers = "osD^vP*Xhp<>"
    for index, r in enumerate(rows):  # a legend, not labels by the points: the R2KD rows sit within a point of each other
        label = f"{r['row'].replace(' (option)', '*')} ({len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''})"
        axis.errorbar(r["test"], r["mca"], xerr=r["test_std"], yerr=r["mca_std"], fmt=markers[index % len(markers)],
                      capsize=3, color=f"C{index % 10}", label=label)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axis.set_xlabel("clean test top-1")
    axis.set_ylabel("mean corruption accuracy (mCA)")
    axis.set_title("Clean accuracy vs robustness (mean ± std over seeds; * = library option)", fontsize=9)
    figure.tight_layout()
    figure.savefig(os.path.join(args.report_dir, f"{stem}_clean_vs_mca.png"), dpi=110)
    plt.close(figure)
    gains = {(loss, view): {key: paired(f"{loss} + {view}", loss, key)[0] for key in ("test", "mca")}
             for view in views for loss in ("KD", "DIST", "R2KD")}
    pairs = [pair for pair, diffs in gains.items() if diffs["test"]]
    if pairs:
        import numpy as np

        figure, axis = plt.subplots(figsize=(max(5.5, 1.1 * len(pairs) + 2), 3.5))
        positions = np.arange(len(pairs))
        for offset, (key, label, colour) in zip((-0.18, 0.18), (("test", "clean test top-1", "#4c72b0"), ("mca", "mCA", "#dd8452"))):
            values = [_mean_std(gains[pair][key]) for pair in pairs]
            axis.bar(positions + offset, [v[0] for v in values], width=0.36, yerr=[v[1] for v in values], capsize=4,
                     color=colour, label=label)
            for position, pair in zip(positions, pairs):  # the individual seeds, so the spread is visible
                diffs = gains[pair][key]
                axis.scatter([position + offset] * len(diffs), diffs, color="black", s=10, zorder=3)
        counts = [len(gains[pair]["test"]) for pair in pairs]
        axis.set_xticks(positions, [f"{loss} + {view}\n({n} seed{'s' if n != 1 else ''})" for (loss, view), n in zip(pairs, counts)],
                        fontsize=7)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_ylabel("with the view − without")
        axis.set_title("Augmentation gain per loss and view\n(paired by seed, mean ± std, dots: seeds)", fontsize=9)
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(os.path.join(args.report_dir, f"{stem}_augmentation_gain.png"), dpi=110)
        plt.close(figure)
    return summary

if __name__ == "__main__":
    sys.exit(main())
