#!/usr/bin/env python
"""Benchmark v3: benchmark v2's questions again, distilled from a strong teacher.

    nohup python scripts/benchmark_v3.py --dataset ../shared/data/cifar10 --stage teacher > bench_v3_teacher.log 2>&1 &
    nohup python scripts/benchmark_v3.py --dataset ../shared/data/cifar10 > bench_v3.log 2>&1 &        # the rows (hours)
    python scripts/benchmark_v3.py --dataset ../shared/data/cifar10 --report_only                    # tables and plots

Protocol: exactly benchmark v2's `cpu` scale (same 5,000-image subset, same 500-image validation carve-out, same
student cifar_resnet8, 20 epochs, x0.1 at 12 and 16, same seeds and data order, test split read once per run, mCA on
the same cached 2,000-image corrupted test subset); v2's rows and run function are imported, not copied, so the two
cannot drift apart. What differs is the teacher:

  teacher: cifar_resnet20 (v2's architecture) trained with cross-entropy on the whole CIFAR-10 training split except
           v2's 500 validation images (49,500 images), with the reference's optimiser (SGD momentum 0.9, lr 0.05, batch
           64, weight decay 5e-4 on every parameter, no clipping) and the reference's step schedule shortened from
           240 epochs to 30 (x0.1 at 18 and 24, as v2's teacher). It is trained once (resumable: a checkpoint per
           epoch) and committed under docs/benchmark_v3/teacher/ (safetensors + config.json, recipe, training log),
           so that every later machine distils from the same weights instead of retraining.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # v2's protocol lives next to this file

import benchmark_v2 as v2  # noqa: E402

TEACHER = dict(architecture="cifar_resnet20", epochs=30, decay=[18, 24], learning_rate=0.05, batch_size=64,
               weight_decay=5e-4, seed=1234, channels_last=True)
COMMITTED_TEACHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmark_v3", "teacher")


def teacher_splits(dataset: str):
    """Whole training split minus v2's validation carve-out (train), v2's validation images (eval), the test split."""
    data, _, validation, test = v2.load_splits(dataset, v2.SCALES["cpu"])
    from r2kd_hf.data import INDEX_COLUMN, load_image_dataset

    full = load_image_dataset(dataset, eval_split="test", seed=0)
    held_out = set(validation[INDEX_COLUMN])
    train = full.splits["train"].filter(lambda index: index not in held_out, input_columns=INDEX_COLUMN)
    assert len(train) == len(full.splits["train"]) - len(validation), "the carve-out must come from the training split"
    return data, train, validation, test


def train_strong_teacher(dataset: str, work_dir: str, use_cpu: bool) -> dict:
    import torch

    from r2kd_hf import R2KDTrainer
    from r2kd_hf.data import build_transforms, prepare_dataset
    from r2kd_hf.evaluation import evaluate_accuracy
    from r2kd_hf.setup import apply_data_config, create_timm_classifier, resolve_data_config

    data, train, validation, test = teacher_splits(dataset)
    teacher = create_timm_classifier(TEACHER["architecture"], data.num_labels, data.id2label)
    data_config = resolve_data_config(teacher, 32)
    apply_data_config(teacher, data_config)
    if TEACHER["channels_last"]:  # about 1.3x faster on CPU here; the weights are saved contiguous
        teacher = teacher.to(memory_format=torch.channels_last)
    train_tf, eval_tf = build_transforms(data_config, style="cifar", crop_padding=4)
    out = os.path.join(work_dir, "teacher_run")
    args = dataclasses.replace(  # v2's settings, plus a checkpoint per epoch so that the long run can resume
        v2.training_args(out, TEACHER["epochs"], TEACHER["decay"], TEACHER["seed"], use_cpu, loss_name="none"),
        save_strategy="epoch", save_total_limit=1, dataloader_num_workers=0)
    trainer = R2KDTrainer(model=teacher, train_dataset=prepare_dataset(train, train_tf),
                          eval_dataset=prepare_dataset(validation, eval_tf), args=args)
    checkpoints = sorted(glob.glob(os.path.join(out, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[-1]))
    began = time.time()
    trainer.train(resume_from_checkpoint=checkpoints[-1] if checkpoints else None)
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    test_top1 = evaluate_accuracy(model, prepare_dataset(test, eval_tf), batch_size=500)["top1"]
    os.makedirs(COMMITTED_TEACHER, exist_ok=True)
    trainer.save_model(COMMITTED_TEACHER)
    log = [e for e in trainer.state.log_history]
    info = {"architecture": TEACHER["architecture"], "test": test_top1, "train_images": len(train),
            "val_best": max(e["eval_accuracy"] for e in log if "eval_accuracy" in e),
            "val_final": [e["eval_accuracy"] for e in log if "eval_accuracy" in e][-1],
            "minutes_this_part": (time.time() - began) / 60, "recipe": TEACHER, "torch_threads": torch.get_num_threads()}
    with open(os.path.join(COMMITTED_TEACHER, "teacher_info.json"), "w") as handle:
        json.dump(info, handle, indent=2)
    with open(os.path.join(COMMITTED_TEACHER, "training_log.json"), "w") as handle:
        json.dump(log, handle, indent=1)
    print(f"teacher {TEACHER['architecture']}: test top-1 {test_top1:.4f}", flush=True)
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--stage", choices=("teacher", "rows"), default="rows")
    parser.add_argument("--work_dir", default=".bench_cache/v3")
    parser.add_argument("--use_cpu", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.stage == "teacher":
        if os.path.exists(os.path.join(COMMITTED_TEACHER, "teacher_info.json")):
            parser.error(f"{COMMITTED_TEACHER} already holds the committed teacher; every v3 row distils from it. "
                         "Delete that folder only to start a new benchmark version.")
        train_strong_teacher(args.dataset, args.work_dir, args.use_cpu)
        return 0
    parser.error("the rows stage is not written yet")
    return 2


if __name__ == "__main__":
    sys.exit(main())
