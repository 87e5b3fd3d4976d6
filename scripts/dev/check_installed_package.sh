#!/usr/bin/env bash
# The package as a user gets it: the wheel built from this checkout, installed into a fresh environment (CPU pins,
# no dev extra), each console command answering --help, and the quickstart run by r2kd-distill from a folder outside
# the checkout (one epoch each for teacher and student: this checks the install, not accuracy).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv "$work/env"
"$work/env/bin/python" -m pip install -q --disable-pip-version-check -c constraints/cpu.txt "$root"
"$work/env/bin/python" scripts/dev/torchvision_cpu_fix.py --install-if-needed
cd "$work"
for command in r2kd-distill r2kd-train-teacher r2kd-evaluate r2kd-export-onnx r2kd-convert-teacher; do
  "$work/env/bin/$command" --help > /dev/null
done
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$work/hf_home"
"$work/env/bin/r2kd-distill" --recipe quickstart --num_train_epochs 1 --train_teacher_epochs 1 --output_dir quickstart
"$work/env/bin/r2kd-evaluate" --model quickstart --output quickstart/eval.json > /dev/null
test -f quickstart/model.safetensors && test -f quickstart/README.md && test -f quickstart/eval.json
echo "installed package: 5 commands answer --help; r2kd-distill ran the quickstart in $work"
