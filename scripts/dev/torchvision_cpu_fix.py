"""Development set-up only: make ``import torchvision`` work where its compiled ops cannot load.

This is a property of one kind of machine, not of r2kd_hf: the package never imports it. Some machines (our CPU CI
box among them) only have a CUDA build of torchvision next to a CPU build of torch (see the README, "CPU-only
machines"). Its ``_C`` extension then fails to load and ``torchvision/_meta_registrations.py`` crashes the whole
import with ``RuntimeError: operator torchvision::nms does not exist``; timm, transformers' ``Trainer`` and the
``accelerate`` CLI all import torchvision, so everything breaks.

The fix is a lazy import hook: on the first ``import torchvision`` it tries to load the real ``_C`` (GPU machines:
nothing else happens) and, only if that fails, declares the two operator schemas the meta registrations need.
Transforms, models and timm then work; only torchvision's C++ ops (``nms``, ``roi_align``) and ``torchvision.io``
decoders stay unavailable, and r2kd_hf decodes images with PIL.

``python scripts/dev/torchvision_cpu_fix.py --install-if-needed`` (run by ``scripts/setup_env.sh``) probes a fresh
interpreter and, only when torchvision cannot be imported, installs this file into the virtual environment's
``site-packages`` with a ``.pth`` line, so that every interpreter of that environment (``accelerate launch`` workers
included) gets it. Machines with matching torch and torchvision builds never install it.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
import sysconfig

_PTH_NAME = "r2kd_hf_torchvision_fix.pth"
_MODULE_NAME = "r2kd_hf_torchvision_fix"
_LIBRARY = None  # keeps the torch.library registration alive


class _TorchvisionCpuFix:
    """A meta-path finder that runs :func:`_declare_missing_ops` once, just before torchvision is imported."""

    def find_spec(self, name, path=None, target=None):  # noqa: D401 - importlib protocol
        if name != "torchvision":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        try:
            _declare_missing_ops()
        except Exception:  # never block the import itself
            pass
        return None  # let the normal finders import torchvision


def _declare_missing_ops() -> None:
    global _LIBRARY
    import torch

    spec = importlib.machinery.PathFinder.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    package_dir = list(spec.submodule_search_locations)[0]
    extensions = [f for f in os.listdir(package_dir) if f.startswith("_C") and f.endswith((".so", ".pyd"))]
    if extensions:
        try:
            torch.ops.load_library(os.path.join(package_dir, extensions[0]))
            return  # the real kernels load: nothing to fix
        except (OSError, ImportError, RuntimeError):
            pass
    try:
        torch.ops.torchvision.nms  # already declared by someone else
        return
    except (AttributeError, RuntimeError):
        pass
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def install_hook() -> None:
    """Register the hook in this interpreter (no-op when torchvision is already imported)."""
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(finder, _TorchvisionCpuFix) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionCpuFix())


def torchvision_imports_cleanly() -> bool:
    """Whether ``import torchvision`` works in a fresh interpreter without any hook."""
    env = dict(os.environ)
    probe = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_TorchvisionCpuFix']; "
        "import torchvision"
    )
    result = subprocess.run([sys.executable, "-S", "-c", _site_without_fix() + probe], env=env, capture_output=True)
    return result.returncode == 0


def _site_without_fix() -> str:
    # "-S" skips site (and so every .pth); add site-packages back by hand, without processing .pth files.
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return f"import sys; sys.path[:0] = {paths!r}; "


def install_pth(site_dir: str | None = None) -> str:
    """Copy this module into ``site-packages`` and add a ``.pth`` that imports it at interpreter start."""
    site_dir = site_dir or sysconfig.get_paths()["purelib"]
    shutil.copyfile(__file__, os.path.join(site_dir, f"{_MODULE_NAME}.py"))
    with open(os.path.join(site_dir, _PTH_NAME), "w", encoding="utf-8") as handle:
        handle.write(f"import {_MODULE_NAME}\n")
    return site_dir


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["--install-if-needed"], ["--check"]):
        print("usage: python scripts/dev/torchvision_cpu_fix.py [--install-if-needed | --check]", file=sys.stderr)
        return 2
    clean = torchvision_imports_cleanly()
    if argv == ["--check"]:
        print("torchvision imports cleanly" if clean else "torchvision cannot load its compiled ops")
        return 0
    if clean:
        print("torchvision loads its compiled ops: no fix needed.")
        return 0
    site_dir = install_pth()
    print(f"torchvision cannot load its compiled ops on this machine; installed the import fix in {site_dir}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
else:  # imported from the .pth file (as r2kd_hf_torchvision_fix): register the lazy hook
    install_hook()
