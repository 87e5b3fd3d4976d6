#!/usr/bin/env bash
# Create ./.venv (if missing) and install r2kd_hf with its dev extra. Idempotent: a second run takes seconds.
# CPU-only machines get the pins in constraints/cpu.txt; pass R2KD_CONSTRAINTS="" to resolve freely (GPU boxes).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="${R2KD_CONSTRAINTS-constraints/cpu.txt}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
args=(-e ".[dev]")
if [ -n "$CONSTRAINTS" ]; then args=(-c "$CONSTRAINTS" "${args[@]}"); fi
.venv/bin/python -m pip install -q --disable-pip-version-check "${args[@]}"
# The parity tests' imagecorruptions-imaug pulls opencv-python, which needs libGL; on a box without it, use the
# headless build of the same version (same cv2 module, no GUI libraries).
if ! .venv/bin/python -c "import cv2" >/dev/null 2>&1; then
  version="$(.venv/bin/python -m pip show opencv-python 2>/dev/null | sed -n 's/^Version: //p')"
  .venv/bin/python -m pip uninstall -q -y opencv-python
  .venv/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "opencv-python-headless${version:+==$version}"
fi
# A property of this kind of machine, not of the package: where the installed torchvision cannot load its compiled
# ops (a CPU torch beside a CUDA-only torchvision wheel), install an import fix into .venv (scripts/dev/).
.venv/bin/python scripts/dev/torchvision_cpu_fix.py --install-if-needed
