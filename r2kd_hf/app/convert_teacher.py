"""``r2kd-convert-teacher``: a reference checkpoint (CRD / mdistiller / R2KD ``.pth``) into a folder the ecosystem loads.

    r2kd-convert-teacher ckpt_epoch_240.pth --arch resnet32x4 --output_dir teachers/resnet32x4_cifar100 \\
        --label_names "$(python -c 'import datasets; print(",".join(datasets.load_dataset("uoft-cs/cifar100", split="test").features["fine_label"].names))')"
    hf upload you/resnet32x4-cifar100 teachers/resnet32x4_cifar100        # or --push_to_hub you/resnet32x4-cifar100

The checkpoint is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling) and loaded strictly into the
``cifar_*`` architecture (reference names such as ``resnet32x4``, ``wrn_40_2``, ``mobile_half``, ``ShuffleV2`` work).
The folder holds ``config.json`` + ``model.safetensors`` in timm's format and a short model card:
``timm.create_model("hf-hub:<repo>", pretrained=True)``, ``AutoModelForImageClassification.from_pretrained`` and
``--teacher <folder or repo>`` of ``r2kd-distill`` load it (after ``import r2kd_hf``). The data config it records
(input size, mean, std) comes from ``--recipe`` (its data section), then ``--image_size``/``--mean``/``--std``; with
neither, the architecture's defaults are recorded and the command says so.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2kd-convert-teacher", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="the .pth/.pt/.safetensors file")
    parser.add_argument("--arch", required=True, help="network in the file: cifar_resnet32x4 or the reference name resnet32x4")
    parser.add_argument("--output_dir", required=True, help="folder to write (config.json, model.safetensors, README.md)")
    parser.add_argument("--label_names", default=None, help="comma-separated class names in label order (recommended)")
    parser.add_argument("--recipe", default=None, help="recipe (name or path) whose data section gives the image size, mean and std")
    parser.add_argument("--image_size", type=int, default=None, help="training image size (32 for CIFAR, 64 for TinyImageNet)")
    parser.add_argument("--mean", type=float, nargs=3, default=None, help="normalisation mean used in training")
    parser.add_argument("--std", type=float, nargs=3, default=None, help="normalisation std used in training")
    parser.add_argument("--push_to_hub", metavar="REPO_ID", default=None, help="also upload the folder to this Hub repo")
    return parser


def stated_data_config(args: argparse.Namespace) -> dict:
    """The data config the user stated: the recipe's data section, then the flags (ValueError/OSError: a bad recipe)."""
    stated = {}
    if args.recipe:
        from r2kd_hf.app.pipeline import recipe_data_config
        from r2kd_hf.app.recipe import DataArguments, load_recipe_file

        stated = recipe_data_config(DataArguments(**(load_recipe_file(args.recipe).get("data") or {})))
    flags = {"input_size": (3, args.image_size, args.image_size) if args.image_size else None,
             "mean": tuple(args.mean) if args.mean else None, "std": tuple(args.std) if args.std else None}
    stated.update({k: v for k, v in flags.items() if v is not None})
    return stated


def write_card(args: argparse.Namespace, architecture: str) -> None:
    with open(os.path.join(args.output_dir, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(
            f"---\nlibrary_name: timm\nlicense: apache-2.0\ntags: [image-classification, timm, r2kd_hf]\n---\n\n# {architecture}\n\n"
            f"Converted with `r2kd_hf` (`r2kd-convert-teacher`) from the reference checkpoint "
            f"`{os.path.basename(args.checkpoint)}` (architecture `{args.arch}`), loaded strictly without unpickling.\n\n"
            "```python\nimport r2kd_hf, timm  # r2kd_hf registers the cifar_* architectures\n"
            "model = timm.create_model('hf-hub:<this repo>', pretrained=True)\n```\n"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import r2kd_hf
    from r2kd_hf.reference_checkpoints import load_checkpoint
    from r2kd_hf.saving import apply_data_config

    try:
        model = load_checkpoint(args.checkpoint, args.arch)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        stated = stated_data_config(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    apply_data_config(model, stated)
    cfg = dict(model.pretrained_cfg)
    if set(stated) != {"input_size", "mean", "std"}:
        defaults = ", ".join(f"{k} {tuple(cfg[k])}" for k in ("input_size", "mean", "std") if k not in stated)
        print(f"note: recorded the architecture's defaults for {defaults}: a checkpoint does not say how it was trained. "
              "Pass --recipe or --image_size/--mean/--std if it was trained otherwise (TinyImageNet: 64 px, ImageNet "
              "mean/std).", file=sys.stderr)
    labels = [name.strip() for name in args.label_names.split(",")] if args.label_names else None
    try:
        r2kd_hf.save_classifier(model, args.output_dir, label_names=labels)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_card(args, cfg["architecture"])
    print(f"wrote {args.output_dir}: {cfg['architecture']}, {model.num_classes} classes, {cfg['input_size'][-1]} px, "
          f"mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}" + ("" if labels else " (no label names: pass --label_names)"))
    if args.push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(args.push_to_hub, exist_ok=True)
        api.upload_folder(folder_path=args.output_dir, repo_id=args.push_to_hub)
        print(f"pushed to {args.push_to_hub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
