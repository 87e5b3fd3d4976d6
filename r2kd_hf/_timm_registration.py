"""Register the ``cifar_*`` and ``r2kd_pruned`` architectures with timm as soon as timm is imported.

``import r2kd_hf`` must not cost timm's import (3 s) up front, so that the command line answers ``--help`` and
recipe typos quickly; yet ``import r2kd_hf; timm.create_model("cifar_resnet8")`` must work. A post-import hook
does both: when timm finishes importing, :mod:`r2kd_hf.models` is imported (it registers the architectures).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys


class _AfterTimmImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of every spec found for ``timm``: availability checks (``find_spec``) may ask several times
    before the real import, so the hook stays until timm's module has actually run."""

    def find_spec(self, name, path=None, target=None):
        if name != "timm":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original_exec = spec.loader.exec_module

        def exec_module(module):
            original_exec(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            importlib.import_module("r2kd_hf.models")

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Register now if timm is already imported, else on its import."""
    if "timm" in sys.modules:
        importlib.import_module("r2kd_hf.models")
    elif not any(isinstance(f, _AfterTimmImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimmImport())
