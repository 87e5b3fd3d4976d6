#!/usr/bin/env python
"""Speed of the distillation step where users train: one command, JSON + a markdown table.

    python benchmarks/benchmark_speed.py --scale gpu --dataset <cifar10 parquet folder>   # one GPU, at most ~8 minutes
    python benchmarks/benchmark_speed.py --scale cpu --dataset ../shared/data/cifar10     # this CPU: the ratios

What it measures (every figure from this one run, side by side):
  32 px   images/s of the whole training step through R2KDTrainer (data loading included: the interval between two
          step ends) for CE, KD, R2KD and R2KD full (CutMix view + pruned teacher), with the fast path off (PIL
          pipeline in data-loader workers, fp32 eager NCHW teachers) and on (the small-image path in-process,
          channels-last, teacher_precision=auto, compiled teachers); the teachers' share; peak accelerator memory.
  data    the data loader alone at 32 px: PIL pipeline vs the small-image path (its device transform included), with
          0 and with N workers; and at 224 px: JPEG decode + RandomResizedCrop + flip, images/s for 1 and N workers,
          beside the 224 px step's images/s (resnet18 <- resnet34, KD and R2KD full), so that the workers one
          accelerator needs can be read off (workers = step images/s / one worker's images/s).
  parts   R2KD full step ÷ the sum of its parts (data, augmentation, teacher, pruned teacher, student forward and
          backward with the optimizer step, loss math), each timed alone on the same batch.
  timm    R2KDTrainer's plain KD step ÷ the same step through timm's own LogitDistillationTask driven by the loop of
          timm's train.py (same student, teacher, batch and DataLoader; loss.item() per step as train.py does).
  ddp     (cpu scale, --ddp) a 2-process CPU step (accelerate launch --multi_gpu, gloo) against 1 process at the same
          global batch.
Models: gpu scale cifar_resnet8x4 <- cifar_resnet32x4 (batch 64) and resnet18 <- resnet34 (batch 128); cpu scale
cifar_resnet8 <- cifar_resnet20 (batch 64) and resnet18 <- resnet34 at batch 8 with fewer steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SCALES = {
    "gpu": dict(student="cifar_resnet8x4", teacher="cifar_resnet32x4", batch=64, steps=60, warmup=20, train_images=20000,
                large_student="resnet18", large_teacher="resnet34", large_batch=128, large_steps=20, large_warmup=8,
                workers=8, jpeg_images=2048, parts_repeats=20),
    "cpu": dict(student="cifar_resnet8", teacher="cifar_resnet20", batch=64, steps=12, warmup=4, train_images=3000,
                large_student="resnet18", large_teacher="resnet34", large_batch=8, large_steps=3, large_warmup=2,
                workers=2, jpeg_images=192, parts_repeats=5),
    "smoke": dict(student="cifar_resnet8", teacher="cifar_resnet8", batch=16, steps=2, warmup=2, train_images=200,  # checks the
                  large_student="resnet18", large_teacher="resnet18", large_batch=2, large_steps=1, large_warmup=2,  # script,
                  workers=1, jpeg_images=16, parts_repeats=1),  # measures nothing
}
METHODS = {
    "CE": dict(loss_name="none"),
    "KD": dict(loss_name="kd", ce_weight=0.1, kd_weight=0.9),
    "R2KD": dict(loss_name="r2kd"),
    "R2KD full": dict(loss_name="r2kd", second_view="cutmix", prune_teacher=True),
}
FAST = dict(channels_last=True, teacher_precision="auto", compile_teachers=True)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_end_timer(device: str):
    from transformers import TrainerCallback

    class StepEnds(TrainerCallback):
        """Wall time of every step end; consecutive differences are whole steps, data loading included."""

        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            self.ends.append(time.perf_counter())

    return StepEnds()


def training_args(work_dir: str, device: str, batch: int, steps: int, workers: int, **overrides):
    from r2kd_hf import R2KDConfig

    return R2KDConfig(
        output_dir=work_dir, per_device_train_batch_size=batch, max_steps=steps, learning_rate=0.05, optim="sgd",
        optim_args="momentum=0.9", lr_scheduler_type="constant", use_cpu=device == "cpu", report_to="none",
        save_strategy="no", logging_steps=10_000, disable_tqdm=True, validate_teacher=False, seed=0,
        dataloader_num_workers=workers, dataloader_persistent_workers=workers > 0, dataloader_pin_memory=device != "cpu",
        dataloader_prefetch_factor=4 if workers > 0 else None, **overrides,
    )


def time_trainer(models, dataset, opts, scale, batch, steps, warmup, workers, **overrides) -> dict:
    """Median whole-step time (s) of R2KDTrainer, the teachers' time on one batch, peak memory."""
    import torch

    from r2kd_hf import R2KDTrainer

    student = copy.deepcopy(models["student"])
    uses_teacher = overrides.get("loss_name") != "none"
    teacher = copy.deepcopy(models["teacher"]) if uses_teacher else None
    timer = step_end_timer(opts.device)
    if opts.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as work_dir:
        args = training_args(work_dir, opts.device, batch, warmup + steps, workers, **overrides)
        trainer = R2KDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset, callbacks=[timer])
        trainer.train()
        intervals = [b - a for a, b in zip(timer.ends[warmup - 1 :], timer.ends[warmup:])]
        result = {"step_s": statistics.median(intervals), "steps_timed": len(intervals)}
        if opts.device.startswith("cuda"):
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if trainer.teacher is not None:  # the teachers alone on one batch of the run's own kind
            batch_inputs = next(iter(trainer.get_train_dataloader()))
            x = batch_inputs["pixel_values"].to(args.device)
            if x.dtype == torch.uint8:
                x = trainer._device_augment(x, train=True)
            if trainer.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            augmented = trainer.second_view(x) if trainer.second_view is not None else None
            result["teachers_s"] = timed(lambda: trainer.teacher.targets(x, augmented), scale["parts_repeats"], opts.device)
    return result


def timed(fn, repeats: int, device: str) -> float:
    fn()
    values = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        values.append(time.perf_counter() - start)
    return statistics.median(values)


# ------------------------------------------------------------------------------------------------------ datasets
def cifar_splits(dataset: str, images: int):
    from r2kd_hf.data import load_image_dataset

    data = load_image_dataset(dataset, eval_split="test", seed=0, max_train_samples=images)
    return data


def small_image_datasets(data, data_config: dict):
    from r2kd_hf.data import build_transforms, prepare_dataset
    from r2kd_hf.small_images import in_memory_split

    train_tf, _ = build_transforms(data_config, style="cifar", crop_padding=4)
    pil = prepare_dataset(data.splits["train"], train_tf)
    in_memory, _ = in_memory_split(data.splits["train"], 32, data_config["mean"], data_config["std"], 4)
    return pil, in_memory


def loader_images_per_s(dataset, batch: int, workers: int, batches: int, device: str, device_transform=None) -> float:
    from torch.utils.data import DataLoader

    from r2kd_hf.collate import ImageClassificationCollator

    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=ImageClassificationCollator(),
                        persistent_workers=False, pin_memory=device != "cpu", prefetch_factor=4 if workers else None, drop_last=True)
    iterator, seen = iter(loader), 0
    first = next(iterator)  # workers started; not timed
    del first
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        try:
            b = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            b = next(iterator)
        x = b["pixel_values"].to(device, non_blocking=True)
        if device_transform is not None:
            x = device_transform(x, train=True, generator=None)
        seen += x.shape[0]
    sync(device)
    return seen / (time.perf_counter() - start)


def jpeg_dataset(data, count: int):
    """``count`` CIFAR images upscaled to 400x300 and JPEG-encoded (quality 90): ImageNet-like decode work."""
    import io

    import datasets
    from PIL import Image

    from r2kd_hf.data import decode_image

    rows = []
    for value in data.splits["train"].select(range(count))["image"]:
        buffer = io.BytesIO()
        decode_image(value).resize((400, 300), Image.BICUBIC).save(buffer, format="JPEG", quality=90)
        rows.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(decode=False), "labels": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": rows, "labels": [0] * count}, features=features)


class ReadyTensors:
    """Random normalised images, already tensors: the 224 px step without its data loading."""

    def __init__(self, n: int, size: int, classes: int):
        import torch

        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, size, size, generator=generator)
        self.y = torch.randint(0, classes, (n,), generator=generator)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": int(self.y[i])}


# -------------------------------------------------------------------------------------------------- timm's loop
def timm_kd_step_s(models, dataset, opts, batch: int, steps: int, warmup: int, workers: int) -> float:
    """timm.task.LogitDistillationTask in the loop of timm's train.py (train_one_epoch), per-step median."""
    import torch
    from timm.task import DistillationTeacher, LogitDistillationTask
    from torch.utils.data import DataLoader

    from r2kd_hf.collate import ImageClassificationCollator

    device = torch.device(opts.device)
    student = copy.deepcopy(models["student"]).to(device)
    teacher = DistillationTeacher(copy.deepcopy(models["teacher"]).to(device), device=device)
    task = LogitDistillationTask(student, teacher, loss_type="kl", distill_loss_weight=0.9, task_loss_weight=0.1,
                                 temperature=4.0, device=device, verbose=False)
    optimizer = torch.optim.SGD(task.trainable_module.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=ImageClassificationCollator(),
                        pin_memory=opts.device != "cpu", persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    task.train()
    ends, step = [], 0
    while step < warmup + steps:
        for b in loader:
            x, y = b["pixel_values"].to(device, non_blocking=True), b["labels"].to(device, non_blocking=True)
            output = task(x, y)
            loss = output["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # train.py: losses_m.update(loss.item() * accum_steps, input.size(0)) on every step
            sync(opts.device)
            ends.append(time.perf_counter())
            step += 1
            if step >= warmup + steps:
                break
    intervals = [b - a for a, b in zip(ends[warmup - 1 :], ends[warmup:])]
    return statistics.median(intervals)


# -------------------------------------------------------------------------------------------- R2KD full, in parts
def parts_of_r2kd_full(models, dataset, opts, batch: int, repeats: int) -> dict:
    """Each part of an R2KD-full step alone, on the same batch (the trainer's own modules and options)."""
    import torch
    import torch.nn.functional as F

    from r2kd_hf import R2KDTrainer, r2kd_loss

    with tempfile.TemporaryDirectory() as work_dir:
        args = training_args(work_dir, opts.device, batch, 1, 0, **METHODS["R2KD full"])
        trainer = R2KDTrainer(model=copy.deepcopy(models["student"]), teacher_model=copy.deepcopy(models["teacher"]),
                              args=args, train_dataset=dataset)
        trainer.train()  # one step: the pruned copy exists, everything is placed
        loader = trainer.get_train_dataloader()
        student = trainer.model.train()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.0, momentum=0.9)
        b = next(iter(loader))
        raw = b["pixel_values"].to(args.device)
        y = b["labels"].to(args.device)
        x = trainer._device_augment(raw, True) if raw.dtype == torch.uint8 else raw
        x_aug = trainer.second_view(x)
        t_clean, t_aug, _ = trainer.teacher.targets(x, x_aug)
        with torch.no_grad():
            s_clean, s_aug = student(x), student(x_aug)
        s_clean, s_aug = getattr(s_clean, "logits", s_clean), getattr(s_aug, "logits", s_aug)
        teachers = trainer.teacher

        def data():
            next(iter(loader))["pixel_values"].to(args.device)

        def augmentation():
            (trainer._device_augment(raw, True) if raw.dtype == torch.uint8 else raw)
            trainer.second_view(x)

        def teacher():
            with torch.inference_mode():
                teachers._run_teacher(torch.cat([x, x_aug]))

        def pruned():
            with torch.inference_mode():
                teachers._run_pruned(x)
                teachers._run_pruned(x_aug)

        def student_forward_backward():
            out_clean, out_aug = student(x), student(x_aug)
            loss = getattr(out_clean, "logits", out_clean).sum() * 0 + getattr(out_aug, "logits", out_aug).sum() * 0
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def loss_math():
            a, c = s_clean.detach().requires_grad_(True), s_aug.detach().requires_grad_(True)
            (F.cross_entropy(a, y) + r2kd_loss(a, t_clean)["loss"] + r2kd_loss(c, t_aug)["loss"]).backward()

        parts = {"data (fetch + collate + copy)": data, "augmentation (device transform + CutMix)": augmentation,
                 "teacher forward (both views, fused)": teacher, "pruned-teacher forwards (2, batch stats)": pruned,
                 "student forward+backward (2 views) + SGD step": student_forward_backward,
                 "loss math (CE + 2x R2KD, forward+backward)": loss_math}
        return {name: timed(fn, repeats, opts.device) for name, fn in parts.items()}


# --------------------------------------------------------------------------------------------------- 2 processes
def ddp_step(opts) -> int:
    """Run under accelerate launch: time an R2KD-full step, print one JSON line from rank 0."""
    import r2kd_hf  # noqa: F401
    import timm
    import torch

    torch.manual_seed(0)
    scale = SCALES[opts.scale]
    models = {"student": timm.create_model(scale["student"], num_classes=10), "teacher": timm.create_model(scale["teacher"], num_classes=10)}
    dataset = ReadyTensors(scale["batch"] * 40, 32, 10)
    result = time_trainer(models, dataset, opts, scale, opts.ddp_batch, scale["steps"], scale["warmup"], 0, **METHODS["R2KD full"])
    if int(os.environ.get("RANK", "0")) == 0:
        print("DDP_RESULT " + json.dumps(result), flush=True)
    return 0


def ddp_comparison(opts, scale) -> dict:
    results = {}
    for processes in (1, 2):
        per_device = scale["batch"] // processes
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", f"--num_processes={processes}",
                   "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no"] if processes > 1 else [sys.executable]
        command += [os.path.abspath(__file__), "--mode", "ddp_step", "--scale", opts.scale, "--device", "cpu", "--ddp_batch", str(per_device)]
        env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // processes)))
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("DDP_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{processes}-process step failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        results[f"{processes}_process"] = {"per_device_batch": per_device, **json.loads(line.split(" ", 1)[1])}
    return results


# --------------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--dataset", default="../shared/data/cifar10", help="CIFAR-10 (any folder or Hub id); 'digits' works too.")
    parser.add_argument("--device", default=None, help="Default: cuda when available, else cpu.")
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument("--ddp", action="store_true", help="Also time 2 CPU processes against 1 (cpu scale).")
    parser.add_argument("--only", nargs="+", default=None, choices=("rows", "data", "large", "parts", "timm", "ddp"))
    parser.add_argument("--mode", default="benchmark", choices=("benchmark", "ddp_step"), help=argparse.SUPPRESS)
    parser.add_argument("--ddp_batch", type=int, default=64, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    import torch

    opts.device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if opts.mode == "ddp_step":
        return ddp_step(opts)
    import r2kd_hf  # noqa: F401
    import timm

    from r2kd_hf.checks import resolve_data_config

    scale, began = SCALES[opts.scale], time.time()
    sections = set(opts.only or ("rows", "data", "large", "parts", "timm") + (("ddp",) if opts.ddp else ()))
    data = cifar_splits(opts.dataset, scale["train_images"])
    classes = data.num_labels
    torch.manual_seed(0)
    models = {"student": timm.create_model(scale["student"], num_classes=classes), "teacher": timm.create_model(scale["teacher"], num_classes=classes)}
    data_config = resolve_data_config(models["student"], 32)
    pil, in_memory = small_image_datasets(data, data_config)
    workers = scale["workers"]
    result = {"scale": opts.scale, "device": torch.cuda.get_device_name() if opts.device.startswith("cuda") else f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
              "torch": torch.__version__, "config": {k: v for k, v in scale.items()}, "workers": workers}
    print(f"device {result['device']}; scale {opts.scale}", flush=True)

    if "rows" in sections:
        rows = []
        for method, settings in METHODS.items():
            for fast in (False, True):
                overrides = dict(settings, **(FAST if fast and settings["loss_name"] != "none" else {}))
                if fast and settings["loss_name"] == "none":
                    overrides["channels_last"] = True
                # off: the PIL pipeline with the scale's workers; on: the small-image path in-process (its recommended 0)
                measured = time_trainer(models, in_memory if fast else pil, opts, scale, scale["batch"], scale["steps"],
                                        scale["warmup"], 0 if fast else workers, **overrides)
                row = {"method": method, "fast_path": fast, "images_per_s": scale["batch"] / measured["step_s"], **measured}
                if "teachers_s" in measured:
                    row["teachers_share"] = measured["teachers_s"] / measured["step_s"]
                rows.append(row)
                print(f"32 px {method:<10} fast={fast!s:<5} {row['images_per_s']:8.1f} img/s  step {measured['step_s'] * 1000:7.1f} ms"
                      + (f"  teachers {row['teachers_share']:.0%}" if "teachers_share" in row else ""), flush=True)
        result["rows_32px"] = rows

    if "data" in sections:
        batches = max(10, scale["steps"])
        result["data_32px"] = []
        for count in sorted({0, workers}):
            pil_rate = loader_images_per_s(pil, scale["batch"], count, batches, opts.device)
            memory_rate = loader_images_per_s(in_memory, scale["batch"], count, batches, opts.device, in_memory.device_transform)
            result["data_32px"].append({"pil_images_per_s": pil_rate, "small_image_path_images_per_s": memory_rate,
                                        "ratio": memory_rate / pil_rate, "workers": count})
            print(f"32 px data loader, {count} workers: PIL {pil_rate:.0f} img/s, small-image path {memory_rate:.0f} img/s "
                  f"({memory_rate / pil_rate:.1f}x)", flush=True)

    if "large" in sections:
        from r2kd_hf.data import build_transforms, prepare_dataset

        torch.manual_seed(0)
        large = {"student": timm.create_model(scale["large_student"], num_classes=1000),
                 "teacher": timm.create_model(scale["large_teacher"], num_classes=1000)}
        large_config = resolve_data_config(large["student"], 224)
        train_tf, _ = build_transforms(large_config, style="timm")
        jpegs = prepare_dataset(jpeg_dataset(data, scale["jpeg_images"]), train_tf)
        worker_counts = sorted({1, workers})
        decode = {w: loader_images_per_s(jpegs, scale["large_batch"], w, max(4, scale["jpeg_images"] // scale["large_batch"] - 2), opts.device)
                  for w in worker_counts}
        ready = ReadyTensors(scale["large_batch"] * (scale["large_steps"] + scale["large_warmup"] + 2), 224, 1000)
        steps = {}
        for method in ("KD", "R2KD full"):
            for fast in (False, True):
                overrides = dict(METHODS[method], **(FAST if fast else {}))
                measured = time_trainer(large, ready, opts, scale, scale["large_batch"], scale["large_steps"], scale["large_warmup"], 0, **overrides)
                steps[f"{method}{' fast' if fast else ''}"] = {"images_per_s": scale["large_batch"] / measured["step_s"], **measured}
                print(f"224 px {method:<10} fast={fast!s:<5} {steps[list(steps)[-1]]['images_per_s']:8.1f} img/s", flush=True)
        per_worker = decode[1]
        result["large_224px"] = {
            "decode_rrc_flip_images_per_s": {str(w): v for w, v in decode.items()}, "steps": steps,
            "workers_needed": {name: math.ceil(s["images_per_s"] / per_worker) for name, s in steps.items()},
        }
        print(f"224 px decode+RRC+flip: {', '.join(f'{w} workers {v:.0f} img/s' for w, v in decode.items())}", flush=True)

    if "parts" in sections:
        parts = parts_of_r2kd_full(models, pil, opts, scale["batch"], scale["parts_repeats"])
        whole = time_trainer(models, pil, opts, scale, scale["batch"], scale["steps"], scale["warmup"], 0, **METHODS["R2KD full"])
        result["parts_r2kd_full"] = {"parts_ms": {k: v * 1000 for k, v in parts.items()}, "sum_ms": sum(parts.values()) * 1000,
                                     "step_ms": whole["step_s"] * 1000, "step_over_sum": whole["step_s"] / sum(parts.values())}
        print(f"R2KD full: step {whole['step_s'] * 1000:.1f} ms, parts {sum(parts.values()) * 1000:.1f} ms, "
              f"ratio {result['parts_r2kd_full']['step_over_sum']:.3f}", flush=True)

    if "timm" in sections:
        ratios = []
        for _ in range(3):  # interleaved rounds; the median ratio
            ours = time_trainer(models, pil, opts, scale, scale["batch"], scale["steps"], scale["warmup"], workers, **METHODS["KD"])["step_s"]
            theirs = timm_kd_step_s(models, pil, opts, scale["batch"], scale["steps"], scale["warmup"], workers)
            ratios.append({"r2kd_hf_ms": ours * 1000, "timm_task_ms": theirs * 1000, "ratio": ours / theirs})
            print(f"KD step: R2KDTrainer {ours * 1000:.1f} ms, timm LogitDistillationTask {theirs * 1000:.1f} ms, ratio {ours / theirs:.3f}", flush=True)
        result["timm_kd"] = {"rounds": ratios, "ratio": statistics.median(r["ratio"] for r in ratios)}

    if "ddp" in sections:
        result["ddp_cpu"] = ddp_comparison(opts, scale)
        one, two = result["ddp_cpu"]["1_process"]["step_s"], result["ddp_cpu"]["2_process"]["step_s"]
        result["ddp_cpu"]["two_over_one"] = two / one
        print(f"R2KD full, global batch {scale['batch']}: 1 process {one * 1000:.1f} ms, 2 processes {two * 1000:.1f} ms", flush=True)

    result["minutes"] = (time.time() - began) / 60
    os.makedirs(opts.output_dir, exist_ok=True)
    stem = os.path.join(opts.output_dir, f"benchmark_speed_{opts.scale}")
    with open(stem + ".json", "w") as handle:
        json.dump(result, handle, indent=2)
    with open(stem + ".md", "w") as handle:
        handle.write(markdown(result) + "\n")
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = [f"Device: {result['device']}, torch {result['torch']}, scale `{result['scale']}`, "
             f"{result['minutes']:.1f} min for the whole command.", ""]
    if "rows_32px" in result:
        lines += ["| 32 px | fast path | images/s | step ms | teachers' share | peak memory GiB |", "|---|---|---|---|---|---|"]
        for r in result["rows_32px"]:
            share = f"{r['teachers_share']:.0%}" if "teachers_share" in r else "-"
            memory = f"{r['peak_memory_gib']:.2f}" if "peak_memory_gib" in r else "-"
            lines.append(f"| {r['method']} | {'on' if r['fast_path'] else 'off'} | {r['images_per_s']:.0f} | "
                         f"{r['step_s'] * 1000:.1f} | {share} | {memory} |")
    if "data_32px" in result:
        lines += ["", "| 32 px data loader alone (batch of the step, device transform included) | workers | PIL pipeline images/s | small-image path images/s | ratio |",
                  "|---|---|---|---|---|"]
        for d in result["data_32px"]:
            lines.append(f"| | {d['workers']} | {d['pil_images_per_s']:.0f} | {d['small_image_path_images_per_s']:.0f} | **{d['ratio']:.1f}x** |")
    if "large_224px" in result:
        g = result["large_224px"]
        lines += ["", "| 224 px | images/s | workers needed at one worker's decode rate |", "|---|---|---|"]
        for name, s in g["steps"].items():
            lines.append(f"| step {name} | {s['images_per_s']:.1f} | {g['workers_needed'][name]} |")
        for w, v in g["decode_rrc_flip_images_per_s"].items():
            lines.append(f"| JPEG decode + RandomResizedCrop + flip, {w} worker(s) | {v:.0f} | - |")
    if "parts_r2kd_full" in result:
        p = result["parts_r2kd_full"]
        lines += ["", "| R2KD full, part | ms |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in p["parts_ms"].items()]
        lines += [f"| sum of parts | {p['sum_ms']:.1f} |", f"| whole step | {p['step_ms']:.1f} |",
                  f"| **step ÷ sum of parts** | **{p['step_over_sum']:.3f}** |"]
    if "timm_kd" in result:
        t = result["timm_kd"]
        lines += ["", f"KD step, R2KDTrainer ÷ timm LogitDistillationTask in timm's train loop: **{t['ratio']:.3f}** (median of "
                      + ", ".join(f"{r['ratio']:.3f}" for r in t["rounds"]) + ")."]
    if "ddp_cpu" in result:
        d = result["ddp_cpu"]
        lines += ["", f"R2KD full at the same global batch: 1 process {d['1_process']['step_s'] * 1000:.1f} ms/step, 2 CPU "
                      f"processes {d['2_process']['step_s'] * 1000:.1f} ms/step (ratio {d['two_over_one']:.2f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
