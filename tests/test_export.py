"""ONNX export: every cifar_* network, a standard timm network and a pruned student, checked with ONNX Runtime
against torch on a real batch (max abs difference <= 1e-4), with a dynamic batch axis."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import r2kd_hf
from r2kd_hf.data import build_transforms, load_image_dataset, prepare_dataset
from r2kd_hf.export import export_onnx
from r2kd_hf.models import ARCHITECTURES

ort = pytest.importorskip("onnxruntime")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def real_batch(size: int, n: int = 12) -> torch.Tensor:
    data = load_image_dataset("digits")
    _, eval_tf = build_transforms({"input_size": (3, size, size), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}, style="cifar")
    prepared = prepare_dataset(data.splits["eval"].select(range(n)), eval_tf)
    return torch.stack([prepared[i]["pixel_values"] for i in range(n)])


def calibrated(model, x):
    """BatchNorm statistics from the real batch (cumulative average), as a trained model has: a randomly initialised
    deep network with unit running variances has logits of 1e4-1e6, where float32 rounding alone exceeds 1e-4."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def check(model, tmp_path, size, name):
    x = real_batch(size)
    model = calibrated(model, x)
    result = export_onnx(model.eval(), str(tmp_path / f"{name}.onnx"), input_size=(3, size, size), check_inputs=x)
    assert result["max_abs_diff"] <= 1e-4 and result["opset"] == 17
    session = ort.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch axis is dynamic
        got = session.run(["logits"], {"pixel_values": x[:batch].numpy()})[0]
        with torch.no_grad():
            expected = r2kd_hf.introspection.logits_of(model(x[:batch])).numpy()
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4
    return result


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_cifar_network_exports_faithfully(name, tmp_path):
    import timm

    torch.manual_seed(0)
    check(timm.create_model(name, num_classes=10), tmp_path, 32, name)


def test_a_standard_timm_network_and_a_pruned_student_export_faithfully(tmp_path):
    import timm

    from r2kd_hf.loading import create_timm_classifier

    torch.manual_seed(0)
    check(timm.create_model("resnet18", num_classes=10), tmp_path, 64, "resnet18")
    student = create_timm_classifier("cifar_resnet20", 10, {i: str(i) for i in range(10)})
    report = r2kd_hf.prune_student(student, 0.5, (3, 32, 32))
    assert report["params_after"] < report["params_before"]
    r2kd_hf.save_classifier(student, str(tmp_path / "pruned"))
    reloaded = r2kd_hf.load_student(str(tmp_path / "pruned"))
    # the reloaded pruned student knows the size it was trained at (the r2kd_pruned factory starts from 224 px defaults)
    assert tuple(r2kd_hf.introspection.data_config_of(reloaded)["input_size"]) == (3, 32, 32)
    result = check(reloaded, tmp_path, 32, "pruned")
    # the command line: a folder in, a checked file out
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_onnx.py"), str(tmp_path / "pruned"),
                          "--output", str(tmp_path / "cli.onnx")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["max_abs_diff"] <= 1e-4 and result["input_size"] == [3, 32, 32]
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_onnx.py"), str(tmp_path / "pruned"),
                          "--output", str(tmp_path / "cli.txt")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "should end with .onnx" in bad.stderr


def test_an_untraceable_model_gets_a_message_that_names_it(tmp_path):
    class SpectralHead(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svdvals(x.flatten(2))[..., :2].flatten(1)  # no ONNX operator for it

    with pytest.raises(ValueError, match="ONNX cannot trace SpectralHead.*linalg_svdvals.*--opset"):
        export_onnx(SpectralHead(), str(tmp_path / "bad.onnx"), input_size=(3, 8, 8))


def test_an_unfaithful_export_is_an_error_not_a_file_to_deploy(tmp_path):
    class BranchOnBrightness(torch.nn.Module):
        def forward(self, x):
            logits = x.flatten(1)[:, :4]
            if x.mean() > 10:  # the tracer freezes the branch its example batch took: the export always takes the other
                return 2 * logits
            return logits

    bright = torch.full((2, 3, 8, 8), 20.0)
    output = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"ONNX Runtime's logits differ from torch's by 2\.00e\+01 .* not faithful; do not deploy.*"
                       r"tracer warned at test_export.py:\d+: Converting a tensor to a Python boolean"):
        export_onnx(BranchOnBrightness(), str(output), input_size=(3, 8, 8), check_inputs=bright)
