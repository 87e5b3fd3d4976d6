#!/usr/bin/env python
"""The `r2kd-export-onnx` command as a script (see `r2kd_hf/app/export_onnx.py`)."""

import sys

from r2kd_hf.app.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
