#!/usr/bin/env python
"""The `r2kd-convert-teacher` command as a script (see `r2kd_hf/app/convert_teacher.py`)."""

import sys

from r2kd_hf.app.convert_teacher import main

if __name__ == "__main__":
    sys.exit(main())
