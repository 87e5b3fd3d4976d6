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
# Only where the installed torchvision cannot load its compiled ops (CPU torch + CUDA torchvision).
.venv/bin/python -m r2kd_hf.fix_torchvision --install-if-needed
