"""ONNX export of students (plain and pruned), checked with ONNX Runtime against torch.

Small and pruned students are meant for CPU and edge serving, where ONNX Runtime is the usual runtime. The export
takes a module, a saved folder or a Hub repo (anything :func:`r2kd_hf.load_model` reads), writes one ``.onnx`` file
with input ``pixel_values`` ``(batch, 3, H, W)`` and output ``logits`` ``(batch, classes)``, the batch axis dynamic,
and compares ONNX Runtime's logits with torch's on a batch (max abs difference, default bound 1e-4). ``onnx`` and
``onnxruntime`` are the optional extra ``r2kd_hf[onnx]``.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from typing import Any

import torch
from torch import nn

from .introspection import LogitsOnly, data_config_of

DEFAULT_OPSET = 17  # ONNX Runtime >= 1.11 runs it; every convolution and pooling the cifar_* and timm CNNs use exist


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401  (availability check)
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise ImportError(f"ONNX export needs onnx and onnxruntime ({error}): pip install 'r2kd_hf[onnx]'.") from None


def export_onnx(model: nn.Module | str, output: str, *, input_size: tuple[int, int, int] | None = None,
                opset: int = DEFAULT_OPSET, check_inputs: torch.Tensor | None = None, tolerance: float = 1e-4,
                revision: str | None = None) -> dict[str, Any]:
    """Export ``model`` to ``output`` (ONNX, dynamic batch) and check it with ONNX Runtime.

    Args:
        model: a module, or a folder / Hub repo / timm name (loaded with :func:`r2kd_hf.load_model`).
        input_size: ``(3, H, W)``; default: the model's timm data config (the size it was trained at).
        opset: the ONNX opset (default 17).
        check_inputs: the batch ONNX Runtime and torch are compared on (default: 8 random normalised images).
        tolerance: the largest allowed absolute difference of the logits.

    Returns ``{"path", "opset", "input_size", "max_abs_diff", "check_batch"}``; raises ``ValueError`` when the model
    cannot be traced or ONNX Runtime disagrees with torch beyond ``tolerance``.
    """
    _require_onnx()
    import numpy as np
    import onnxruntime as ort

    from .loading import load_model

    model = load_model(model, role="model", revision=revision) if isinstance(model, str) else model
    model = model.eval().to("cpu")
    size = tuple(input_size or (data_config_of(model) or {}).get("input_size") or (3, 224, 224))
    wrapper = LogitsOnly(model).eval()
    example = torch.randn(2, *size)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            torch.onnx.export(wrapper, (example,), output, input_names=["pixel_values"], output_names=["logits"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                              dynamo=False)
    except Exception as error:  # noqa: BLE001 - whatever the tracer stops at, say which model and what to try
        raise ValueError(
            f"ONNX cannot trace {type(model).__name__} ({type(error).__name__}: {str(error).splitlines()[0][:300]}). "
            f"Try another --opset (now {opset}), or export the plain timm architecture; attention models may need a "
            "newer torch exporter.") from None
    x = check_inputs if check_inputs is not None else torch.randn(8, *size, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(output, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = wrapper(x).numpy()
    got = session.run(["logits"], {"pixel_values": x.numpy().astype(np.float32)})[0]
    difference = float(np.abs(got - expected).max())
    if difference > tolerance:
        # the usual cause is Python control flow on tensor values, which the tracer freezes; it warned where
        traced = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
        where = (f" The tracer warned at {os.path.basename(traced[0].filename)}:{traced[0].lineno}: "
                 f"{str(traced[0].message).split('.')[0]}; make that branch tensor-only.") if traced else ""
        raise ValueError(f"ONNX Runtime's logits differ from torch's by {difference:.2e} (> {tolerance:g}) on a batch of "
                         f"{len(x)}: the export of {type(model).__name__} is not faithful; do not deploy {output}.{where}")
    return {"path": output, "opset": opset, "input_size": list(size), "max_abs_diff": difference, "check_batch": len(x)}


def onnx_latency_ms(path: str, input_size: tuple[int, int, int], batch_size: int = 1, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time (ms) of one ONNX Runtime CPU run at ``batch_size``."""
    _require_onnx()
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch_size, *input_size)).astype(np.float32)
    for _ in range(warmup):
        session.run(["logits"], {"pixel_values": x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(["logits"], {"pixel_values": x})
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)
