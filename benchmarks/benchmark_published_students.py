#!/usr/bin/env python
"""The R2KD authors' 15 published TinyImageNet students, evaluated through r2kd_hf on the real validation set.

    python benchmarks/benchmark_published_students.py --weights ../shared/weights/r2kd-tinyimagenet-students \\
        --dataset ../shared/data/tiny-imagenet-200

For each student (3 teacher->student pairs x 5 second views) it runs ``r2kd-evaluate`` with the pair's TinyImageNet
recipe (top-1/top-5 on all 10,000 validation images; the 15 corruptions with the Tiny-ImageNet-C constants on the
first ``--corruption_images`` of them), and checks faithfulness: the reference evaluation
(``mdistiller/dataset/tiny_imagenet.py``: ``ToTensor`` + ImageNet mean/std, no resize, batch 64), written here with
plain torchvision and no r2kd_hf data code, must give the same class for every image. Each student's result is kept
in ``--output_dir`` as it completes (a killed run continues where it stopped); the report is regenerated from them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

VIEWS = ("cutmix", "cutmixpick", "cutout", "autoaug", "mixup")
PAIRS = {  # file infix -> (r2kd_hf architecture, recipe, paper's teacher)
    "res56_res20": ("cifar_resnet20", "tinyimagenet/r2kd-resnet20_from_resnet56", "resnet56"),
    "wrn402_wrn162": ("cifar_wrn_16_2", "tinyimagenet/r2kd-wrn_16_2_from_wrn_40_2", "wrn_40_2"),
    "vgg13_mv2": ("cifar_mobilenetv2", "tinyimagenet/r2kd-mobilenetv2_from_vgg13", "vgg13"),
}
REFERENCE_MEAN, REFERENCE_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def reference_predictions(path: str, arch: str, dataset: str, split: str) -> list[int]:
    """The reference's test-time pipeline: PIL image -> ToTensor -> Normalize(ImageNet) -> network, batch 64."""
    import datasets
    import torch
    from torchvision import transforms as T

    from r2kd_hf.reference_checkpoints import load_checkpoint

    model = load_checkpoint(path, arch)
    transform = T.Compose([T.ToTensor(), T.Normalize(REFERENCE_MEAN, REFERENCE_STD)])
    images = datasets.load_dataset(dataset, split=split)["image"]
    predictions: list[int] = []
    with torch.no_grad():
        for start in range(0, len(images), 64):
            batch = torch.stack([transform(image.convert("RGB")) for image in images[start : start + 64]])
            predictions += model(batch).argmax(1).tolist()
    return predictions


def evaluate_one(weights: str, view: str, pair: str, args: argparse.Namespace) -> dict:
    from r2kd_hf.app.evaluate import build_parser, evaluate

    arch, recipe, teacher = PAIRS[pair]
    path = os.path.join(weights, f"{view}_{pair}_student_best.pth")
    predictions = os.path.join(tempfile.mkdtemp(), f"{view}_{pair}.json")
    argv = ["--model", path, "--arch", arch, "--recipe", recipe, "--dataset", args.dataset, "--predictions", predictions]
    start = time.time()
    result = evaluate(build_parser().parse_args(argv))
    result["seconds"] = round(time.time() - start, 1)
    with open(predictions, encoding="utf-8") as handle:
        ours = json.load(handle)["predictions"]
    reference = reference_predictions(path, arch, args.dataset, result["split"])
    differ = sum(a != b for a, b in zip(ours, reference)) + abs(len(ours) - len(reference))
    result.update(view=view, pair=pair, teacher=teacher, recipe=recipe, model=os.path.basename(path),
                  reference_top1=None, predictions_differing_from_reference=differ)
    labels = json.load(open(predictions, encoding="utf-8"))["labels"]
    result["reference_top1"] = sum(int(p == y) for p, y in zip(reference, labels)) / len(labels)
    os.remove(predictions)  # 10,000 integers per student: the count of differences is what the report keeps
    return result


def robustness_one(weights: str, view: str, pair: str, args: argparse.Namespace) -> dict:
    """The 15 corruptions x 5 severities on the first ``corruption_images`` validation images (sets cached once)."""
    from r2kd_hf.app.evaluate import build_parser, evaluate

    arch, recipe, _ = PAIRS[pair]
    argv = ["--model", os.path.join(weights, f"{view}_{pair}_student_best.pth"), "--arch", arch, "--recipe", recipe,
            "--dataset", args.dataset, "--max_samples", str(args.corruption_images), "--corruptions", "all"]
    start = time.time()
    result = evaluate(build_parser().parse_args(argv))["robustness"]
    result["seconds"] = round(time.time() - start, 1)
    return result


def _done(path: str, work, *work_args) -> dict:
    """``work``'s result, computed once: kept in ``path`` (written atomically) and read back on the next run."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    result = work(*work_args)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    os.replace(path + ".tmp", path)
    return result


def load_results(output_dir: str) -> dict[str, dict]:
    """Every student measured so far, ``"<view>_<pair>"`` -> its evaluation, with ``"robustness"`` once measured."""
    results = {}
    for name in sorted(os.listdir(output_dir)):
        if name.endswith(".json"):
            with open(os.path.join(output_dir, name), encoding="utf-8") as handle:
                results[name[:-5]] = json.load(handle)
            robustness = os.path.join(output_dir, "robustness", name)
            if os.path.exists(robustness):
                with open(robustness, encoding="utf-8") as handle:
                    results[name[:-5]]["robustness"] = json.load(handle)
    return results


def report(results: dict[str, dict], corruption_images: int) -> str:
    total, robust = len(VIEWS) * len(PAIRS), sum(1 for r in results.values() if "robustness" in r)
    status = f"top-1/top-5 of {len(results)} of {total} students" + (f", robustness of {robust}" if corruption_images else "")
    complete = len(results) == total and (robust == total or not corruption_images)
    lines = [f"# The R2KD authors' published TinyImageNet students, through r2kd_hf ({status}{'' if complete else ', partial'})", "",
             "Real Tiny-ImageNet-200 validation split (10,000 images, 64x64, ImageNet mean/std, no resize). Robustness: the 15 "
             f"corruptions of Hendrycks & Dietterich with the Tiny-ImageNet-C constants, severities 1-5, on the first "
             f"{corruption_images:,} validation images; mCA is the mean over the 15 corruptions, mCA-10 over the first ten. "
             "'reference' is the reference code's own evaluation pipeline (ToTensor + Normalize, batch 64); 'differ' counts "
             "images whose predicted class differs between the two.", "",
             "| student (teacher) | second view | top-1 | top-5 | reference top-1 | differ | mCA | mCA-10 | params | MACs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for pair, (arch, _, teacher) in PAIRS.items():
        for view in VIEWS:
            r = results.get(f"{view}_{pair}")
            if r is None:
                lines.append(f"| {arch} ({teacher}) | {view} | not run | | | | | | | |")
                continue
            rob = r.get("robustness") or {}
            lines.append(f"| {arch} ({teacher}) | {view} | {r['top1']:.4f} | {r['top5']:.4f} | {r['reference_top1']:.4f} | "
                         f"{r['predictions_differing_from_reference']} | {_fmt(rob.get('mca'))} | {_fmt(rob.get('mca_10'))} | "
                         f"{r['params']:,} | {r['macs']:,} |")
    lines += ["", "Hardware: evaluated on a 2-core CPU (float32). Command: `python benchmarks/benchmark_published_students.py "
              "--weights <folder of the 15 .pth files> --dataset <Tiny-ImageNet-200 with a valid split>`; one student: "
              "`r2kd-evaluate --model <view>_res56_res20_student_best.pth --arch cifar_resnet20 --recipe "
              "tinyimagenet/r2kd-resnet20_from_resnet56 --dataset <folder> --corruptions all --corruption_max_images "
              f"{corruption_images}`."]
    return "\n".join(lines) + "\n"


def docs_robustness_table(results: dict[str, dict]) -> str:
    """The user guide's robustness table (docs/benchmarks.md, "Published students"): mCA (mCA-10) per student."""
    rows = ["| student (paper's teacher) | " + " | ".join(VIEWS) + " |", "|" + "---|" * (len(VIEWS) + 1)]
    for pair, (arch, _, teacher) in PAIRS.items():
        cells = []
        for view in VIEWS:
            measured = results.get(f"{view}_{pair}", {}).get("robustness")
            cells.append(f"{measured['mca']:.4f} ({measured['mca_10']:.4f})" if measured else "not measured")
        rows.append(f"| {arch} ({teacher}) | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def update_docs(page: str, results: dict[str, dict]) -> None:
    """Replace the robustness table of ``page`` (between its ``<!-- published-robustness -->`` markers)."""
    with open(page, encoding="utf-8") as handle:
        text = handle.read()
    start, end = "<!-- published-robustness -->\n", "<!-- end published-robustness -->"
    if start not in text or end not in text.split(start, 1)[-1]:
        raise SystemExit(f"{page} has no '{start.strip()}' ... '{end}' markers; add them around its table, or pass --docs ''.")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(page, "w", encoding="utf-8") as handle:
        handle.write(head + start + docs_robustness_table(results) + end + tail)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="../shared/weights/r2kd-tinyimagenet-students")
    parser.add_argument("--dataset", default="../shared/data/tiny-imagenet-200")
    parser.add_argument("--output_dir", default="benchmarks/results/benchmark_published_students")
    parser.add_argument("--corruption_images", type=int, default=2000, help="0: top-1/top-5 only.")
    parser.add_argument("--views", nargs="*", default=list(VIEWS), choices=VIEWS)
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument("--docs", default="docs/benchmarks.md", help="The guide whose robustness table is rewritten ('' : none).")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    if not args.report_only:
        jobs = [(view, pair) for pair in args.pairs for view in args.views]
        for view, pair in jobs:  # all the clean evaluations first (minutes), then the corruptions (the long part)
            result = _done(os.path.join(args.output_dir, f"{view}_{pair}.json"), evaluate_one, args.weights, view, pair, args)
            print(f"{view}_{pair}: top-1 {result['top1']:.4f} (reference {result['reference_top1']:.4f}, "
                  f"{result['predictions_differing_from_reference']} differ)", flush=True)
        for view, pair in jobs if args.corruption_images else []:
            result = _done(os.path.join(args.output_dir, "robustness", f"{view}_{pair}.json"), robustness_one, args.weights, view, pair, args)
            print(f"{view}_{pair}: mCA {result['mca']:.4f} on {result['images']} images", flush=True)
    results = load_results(args.output_dir)
    text = report(results, args.corruption_images)
    with open(os.path.join(args.output_dir, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    if args.docs:
        update_docs(args.docs, results)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
