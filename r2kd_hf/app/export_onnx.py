"""``r2kd-export-onnx``: a student (plain or pruned) to ONNX, checked with ONNX Runtime against torch.

    r2kd-export-onnx outputs/quickstart --output outputs/quickstart/model.onnx
    r2kd-export-onnx you/your-student --output student.onnx --opset 17      # a Hub repo

Input ``pixel_values`` (batch, 3, H, W), normalised as the model's config.json says; output ``logits``; the batch
axis is dynamic. Exits 2 on a bad argument, 1 when the model cannot be exported faithfully.
"""

import argparse
import json
import sys

from r2kd_hf.export import DEFAULT_OPSET, export_onnx


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="r2kd-export-onnx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="A folder written by r2kd_hf (or save_pretrained), a Hub repo id or a timm name.")
    parser.add_argument("--output", required=True, help="The .onnx file to write.")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--image_size", type=int, default=None, help="Default: the size in the model's config.json.")
    parser.add_argument("--revision", default=None, help="Hub revision of a repo id.")
    args = parser.parse_args(argv)
    if not args.output.endswith(".onnx"):
        parser.error(f"--output {args.output!r} should end with .onnx.")
    if args.opset < 9 or (args.image_size is not None and args.image_size < 8):
        parser.error("--opset must be >= 9 and --image_size >= 8.")
    try:
        result = export_onnx(args.model, args.output, opset=args.opset, revision=args.revision,
                             input_size=(3, args.image_size, args.image_size) if args.image_size else None)
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
