#!/usr/bin/env python
"""Why DIST + CutMix is unstable (benchmark v2: -4.34 ± 2.61 points, CE 4.9-5.7 at epoch 0.7): the gradient of each view.

    python benchmarks/diagnose_dist_cutmix.py --dataset ../shared/data/cifar10 --steps 140

Benchmark v3's protocol (5,000-image subset, committed cifar_resnet20 teacher, cifar_resnet8 student, SGD lr 0.05,
batch 64, seed 0), for DIST + CutMix and, as the control, KD + CutMix. Every ``--every`` steps the gradient of the
student's parameters is taken separately for the clean view's terms (CE + distillation) and for the second view's
(distillation only), before the optimizer step: their norms, the loss terms and the CE are written to
benchmarks/results/diagnose_dist_cutmix.json and a PNG. Nothing is clipped (the reference does not clip).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark_v2 as v2  # noqa: E402
import benchmark_v3 as v3  # noqa: E402


def instrumented_trainer(every: int):
    import torch

    from r2kd_hf import R2KDTrainer
    from r2kd_hf.introspection import logits_of

    class ViewGradients(R2KDTrainer):
        """R2KDTrainer recording, every ``every`` steps, the gradient norm of each view's part of the loss."""

        records: list = []

        def distillation_step(self, model, pixel_values, labels, student_logits):
            if self.state.global_step % every or self.teacher is None or self.second_view is None:
                return super().distillation_step(model, pixel_values, labels, student_logits)
            args = self.args
            augmented = self.second_view(pixel_values)
            target, target_aug, _ = self.teacher.targets(pixel_values, augmented)
            ce = torch.nn.functional.cross_entropy(student_logits.float(), labels)
            kd = self.distillation_loss(student_logits, target, labels=labels, epoch=self.current_epoch_number)
            s_aug = logits_of(model(augmented))
            aug = self.distillation_loss(s_aug, target_aug, labels=target_aug.argmax(1), epoch=self.current_epoch_number)
            clean_part = args.ce_weight * ce + args.kd_weight * kd["loss"]
            aug_part = args.aug_kd_weight * aug["loss"]
            params = [p for p in model.parameters() if p.requires_grad]
            norms = {}
            for name, part in (("clean", clean_part), ("aug", aug_part), ("ce", args.ce_weight * ce)):
                grads = torch.autograd.grad(part, params, retain_graph=True, allow_unused=True)
                norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
            self.records.append({"step": self.state.global_step, "epoch": self.state.epoch, "ce": float(ce.detach()),
                                 **{f"clean_{k}": float(v.detach()) for k, v in kd.items()}, **{f"aug_{k}": float(v.detach()) for k, v in aug.items()},
                                 **{f"grad_norm_{k}": v for k, v in norms.items()},
                                 "student_prob_std_clean": float(torch.softmax(student_logits.float() / 4, 1).std(1).mean()),
                                 "student_prob_std_aug": float(torch.softmax(s_aug.float() / 4, 1).std(1).mean())})
            terms = {"ce": ce, **{k: v for k, v in kd.items() if k != "loss"}, **{f"aug_{k}": v for k, v in aug.items() if k != "loss"}}
            return clean_part + aug_part, terms

    return ViewGradients


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--steps", type=int, default=140)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument("--teacher", default=v3.COMMITTED_TEACHER, help="Teacher folder (default: benchmark v3's).")
    args = parser.parse_args(argv)
    import tempfile

    from r2kd_hf import load_model
    from r2kd_hf.data import build_transforms, prepare_dataset
    from r2kd_hf.checks import resolve_data_config
    from r2kd_hf.loading import create_timm_classifier
    from r2kd_hf.saving import apply_data_config

    scale = v2.SCALES["cpu"]
    data, train, validation, _ = v2.load_splits(args.dataset, scale)
    report = {"teacher": args.teacher}
    for name in ("DIST + CutMix", "KD + CutMix", "DIST"):
        student = create_timm_classifier(scale["student"], data.num_labels, data.id2label)
        data_config = resolve_data_config(student, 32)
        apply_data_config(student, data_config)
        train_tf, eval_tf = build_transforms(data_config, style="cifar", crop_padding=4)
        cls = instrumented_trainer(args.every)
        cls.records = []
        with tempfile.TemporaryDirectory() as out:
            training = v2.training_args(out, scale["epochs"], scale["decay"], args.seed, True, **v3.ROWS[name])
            training = dataclasses.replace(training, max_steps=args.steps, lr_decay_epochs=None, eval_strategy="no",
                                           logging_steps=args.every)
            trainer = cls(model=student, teacher_model=load_model(args.teacher), args=training, data_config=data_config,
                          train_dataset=prepare_dataset(train, train_tf))
            trainer.train()
        # without a second view, only the logged terms (the trainer's own logging, every --every steps)
        report[name] = cls.records or [{"step": e["step"], "ce": e["ce"], "grad_norm_total": e.get("grad_norm")}
                                       for e in trainer.state.log_history if "ce" in e]
        last = report[name][-1]
        print(f"{name}: step {last['step']} CE {last['ce']:.3f}" + (f", grad norm clean {last['grad_norm_clean']:.2f} "
              f"aug {last['grad_norm_aug']:.2f}" if "grad_norm_clean" in last else ""), flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "diagnose_dist_cutmix.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    plot(report, os.path.join(args.output_dir, "diagnose_dist_cutmix.png"))
    return 0


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for index, (name, records) in enumerate((k, v) for k, v in report.items() if k != "teacher"):
        steps = [r["step"] for r in records]
        if "grad_norm_clean" in records[0]:
            left.plot(steps, [r["grad_norm_clean"] for r in records], color=f"C{index}", label=f"{name}: clean view")
            left.plot(steps, [r["grad_norm_aug"] for r in records], color=f"C{index}", linestyle="--", label=f"{name}: CutMix view")
        right.plot(steps, [r["ce"] for r in records], color=f"C{index}", label=name)
    left.set(xlabel="step", ylabel="gradient norm (student)", yscale="log", title="gradient of each view's terms")
    right.set(xlabel="step", ylabel="CE on the clean view", title="cross-entropy")
    for axis in (left, right):
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
