#!/usr/bin/env python
"""Speed benchmark: R2KDTrainer against a minimal hand-written PyTorch loop doing the same math, plus a breakdown.

    python scripts/benchmark_speed.py                      # CPU: cifar_resnet56 -> cifar_resnet20, batch 64, 32 px
    python scripts/benchmark_speed.py --device cuda --teacher resnet50 --student resnet18 --image_size 224 --batch 128

Both sides use the same models (same initial weights), the same ready tensors through the same DataLoader and
collator, the same R2KD step (clean view: CE + R2KD; CutMix view: R2KD only; teacher once over both views; pruned
teacher in the reference BatchNorm mode, one forward per view), SGD with momentum, no gradient clipping.
Timing: per-step wall time from Trainer callbacks (step begin -> step end) and around the loop body, after warm-up;
the two are interleaved over several rounds and the median ratio is reported.

The breakdown times each part alone on the same batch: data fetch, augmentation, teacher forward (both views),
pruned-teacher forwards, student forward+backward (both views) with the optimizer step, and the loss math.
It also measures the trainer with its optimisations turned off (two teacher forwards instead of one) to show the
difference they make. Writes docs/benchmark_speed_<device>.json.
"""

import argparse
import copy
import json
import os
import statistics
import sys
import time

import r2kd_hf  # noqa: F401
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from transformers import TrainerCallback

from r2kd_hf import R2KDConfig, R2KDTrainer, r2kd_loss
from r2kd_hf.augment import CutMix
from r2kd_hf.collate import ImageClassificationCollator
from r2kd_hf.pruning import prune_teacher_copy


class ReadyTensors(Dataset):
    def __init__(self, n, size, classes, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, size, size, generator=generator)
        self.y = torch.randint(0, classes, (n,), generator=generator)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": int(self.y[i])}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StepTimer(TrainerCallback):
    def __init__(self, device):
        self.device, self.times, self._start = device, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        sync(self.device)
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        sync(self.device)
        self.times.append(time.perf_counter() - self._start)


def trainer_step_times(models, data, opts, steps, warmup, **overrides):
    student, teacher = copy.deepcopy(models["student"]), copy.deepcopy(models["teacher"])
    timer = StepTimer(opts.device)
    settings = dict(
        output_dir=os.path.join(opts.work_dir, "trainer"), per_device_train_batch_size=opts.batch, max_steps=warmup + steps,
        learning_rate=0.05, optim="sgd", optim_args="momentum=0.9", lr_scheduler_type="constant", max_grad_norm=0.0,
        use_cpu=opts.device == "cpu", report_to="none", save_strategy="no", logging_steps=50, disable_tqdm=True,
        validate_teacher=False, second_view="cutmix", prune_teacher=True, pruned_teacher_bn="batch_stats",
        dataloader_num_workers=0, dataloader_pin_memory=opts.device != "cpu", seed=0,
    )
    args = R2KDConfig(**{**settings, **overrides})
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data, callbacks=[timer])
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TeacherPruningCallback":
            callback.evaluate = False
    trainer.train()
    return timer.times[warmup:]


def loop_step_times(models, data, opts, steps, warmup):
    """The same R2KD step written by hand, as a user would without the trainer."""
    device = opts.device
    student = copy.deepcopy(models["student"]).to(device).train()
    teacher = copy.deepcopy(models["teacher"]).to(device).eval().requires_grad_(False)
    pruned, _ = prune_teacher_copy(teacher, "l1_unstructured", 0.1)
    pruned.train()  # reference: batch statistics
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(data, batch_size=opts.batch, shuffle=True, collate_fn=ImageClassificationCollator(), pin_memory=device != "cpu")
    cutmix, times, batches = CutMix(1.0), [], iter(loader)
    for step in range(warmup + steps):
        sync(device)
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        x, y = batch["pixel_values"].to(device, non_blocking=True), batch["labels"].to(device, non_blocking=True)
        x_aug = cutmix(x)
        with torch.no_grad():
            both = teacher(torch.cat([x, x_aug]))
            t_clean, t_aug = both[: len(x)], both[len(x):]
            t_clean = 0.7 * t_clean + 0.3 * pruned(x)
            t_aug = 0.7 * t_aug + 0.3 * pruned(x_aug)
        s_clean = student(x)
        loss = F.cross_entropy(s_clean, y) + r2kd_loss(s_clean, t_clean)["loss"]
        loss = loss + r2kd_loss(student(x_aug), t_aug)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def timed(fn, repeats, device):
    fn()
    values = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def breakdown(models, data, opts, repeats):
    device = opts.device
    student = copy.deepcopy(models["student"]).to(device).train()
    teacher = copy.deepcopy(models["teacher"]).to(device).eval().requires_grad_(False)
    pruned, _ = prune_teacher_copy(teacher, "l1_unstructured", 0.1)
    pruned.train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0, momentum=0.9)
    loader = DataLoader(data, batch_size=opts.batch, shuffle=True, collate_fn=ImageClassificationCollator())
    batch = next(iter(loader))
    x, y = batch["pixel_values"].to(device), batch["labels"].to(device)
    cutmix = CutMix(1.0)
    x_aug = cutmix(x)
    with torch.no_grad():
        t = teacher(torch.cat([x, x_aug]))
        s_c, s_a = student(x), student(x_aug)

    def data_fetch():
        iterator = iter(loader)
        b = next(iterator)
        b["pixel_values"].to(device)

    def teacher_forward():
        with torch.no_grad():
            teacher(torch.cat([x, x_aug]))

    def pruned_forwards():
        with torch.no_grad():
            pruned(x)
            pruned(x_aug)

    def student_forward_backward():
        loss = student(x).sum() * 0 + student(x_aug).sum() * 0
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def loss_math():
        a = s_c.detach().requires_grad_(True)
        b = s_a.detach().requires_grad_(True)
        loss = F.cross_entropy(a, y) + r2kd_loss(a, t[: len(x)])["loss"] + r2kd_loss(b, t[len(x):])["loss"]
        loss.backward()

    parts = {
        "data (fetch + collate + copy)": data_fetch,
        "augmentation (CutMix)": lambda: cutmix(x),
        "teacher forward (both views, fused)": teacher_forward,
        "pruned-teacher forwards (2, batch stats)": pruned_forwards,
        "student forward+backward (2 views) + SGD step": student_forward_backward,
        "loss math (CE + 2x R2KD, forward+backward)": loss_math,
    }
    return {name: timed(fn, repeats, device) for name, fn in parts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--teacher", default="cifar_resnet56")
    parser.add_argument("--student", default="cifar_resnet20")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work_dir", default=".bench_cache/speed")
    parser.add_argument("--output", default=None)
    opts = parser.parse_args(argv)
    torch.manual_seed(0)
    models = {"teacher": timm.create_model(opts.teacher, num_classes=opts.classes), "student": timm.create_model(opts.student, num_classes=opts.classes)}
    data = ReadyTensors(opts.batch * (opts.steps + opts.warmup + 2), opts.image_size, opts.classes)
    rounds = []
    for index in range(opts.rounds):
        loop = loop_step_times(models, data, opts, opts.steps, opts.warmup)
        trainer = trainer_step_times(models, data, opts, opts.steps, opts.warmup)
        rounds.append({"loop_s": statistics.median(loop), "trainer_s": statistics.median(trainer)})
        print(f"round {index}: loop {rounds[-1]['loop_s'] * 1000:.1f} ms/step, trainer {rounds[-1]['trainer_s'] * 1000:.1f} ms/step, "
              f"ratio {rounds[-1]['trainer_s'] / rounds[-1]['loop_s']:.3f}", flush=True)
    unfused = statistics.median(trainer_step_times(models, data, opts, opts.steps, opts.warmup, fuse_teacher_views=False))
    eval_mode_pruned = statistics.median(trainer_step_times(models, data, opts, opts.steps, opts.warmup, pruned_teacher_bn="running_stats"))
    parts = breakdown(models, data, opts, repeats=max(5, opts.steps // 2))
    loop_s = statistics.median(r["loop_s"] for r in rounds)
    trainer_s = statistics.median(r["trainer_s"] for r in rounds)
    result = {
        "device": torch.cuda.get_device_name() if opts.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)",
        "config": vars(opts),
        "loop_ms_per_step": loop_s * 1000,
        "trainer_ms_per_step": trainer_s * 1000,
        "trainer_steps_per_s": 1 / trainer_s,
        "trainer_images_per_s": opts.batch / trainer_s,
        "ratio_trainer_over_loop": statistics.median(r["trainer_s"] / r["loop_s"] for r in rounds),
        "rounds": rounds,
        "trainer_unfused_teacher_ms_per_step": unfused * 1000,
        "trainer_pruned_running_stats_fused_ms_per_step": eval_mode_pruned * 1000,
        "parts_ms": {k: v * 1000 for k, v in parts.items()},
        "sum_of_parts_ms": sum(parts.values()) * 1000,
        "trainer_over_sum_of_parts": trainer_s / sum(parts.values()),
    }
    print(json.dumps(result, indent=2))
    output = opts.output or os.path.join("docs", f"benchmark_speed_{'gpu' if opts.device.startswith('cuda') else 'cpu'}.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
