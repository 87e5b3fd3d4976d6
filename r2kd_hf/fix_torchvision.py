"""``python -m r2kd_hf.fix_torchvision --install-if-needed``: see :mod:`r2kd_hf._torchvision_fix`."""

from ._torchvision_fix import main

if __name__ == "__main__":
    raise SystemExit(main())
