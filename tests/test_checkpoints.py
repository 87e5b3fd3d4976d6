"""Published reference teacher checkpoints: weights-only reading, strict loading, clear errors, conversion."""

import json
import os
import subprocess
import sys

import pytest
import timm
import torch

import r2kd_hf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference_checkpoint(tmp_path, arch="cifar_resnet20", num_classes=100, name="ckpt_epoch_240.pth"):
    model = timm.create_model(arch, num_classes=num_classes).eval()
    path = tmp_path / name
    torch.save({"model": model.state_dict(), "epoch": 240, "best_acc": 69.1}, path)
    return model, path


def test_wrong_architecture_names_the_first_mismatched_key(tmp_path):
    _, path = reference_checkpoint(tmp_path, "cifar_resnet8x4")
    with pytest.raises(ValueError, match=r"does not fit cifar_resnet32x4: key 'layer1.1.conv1.weight' .* is missing"):
        r2kd_hf.load_model(str(path), arch="cifar_resnet32x4")
    with pytest.raises(ValueError, match=r"'conv1.weight' has shape \(32, 3, 3, 3\) in the file but \(16, 3, 3, 3\)"):
        r2kd_hf.load_model(str(path), arch="cifar_resnet8")


def test_checkpoint_needs_an_arch_and_accepts_reference_names(tmp_path):
    model, path = reference_checkpoint(tmp_path, "cifar_mobilenetv2", num_classes=200)
    with pytest.raises(ValueError, match="say which network it holds with arch="):
        r2kd_hf.load_model(str(path))
    loaded = r2kd_hf.load_model(str(path), arch="mobile_half")  # the reference's own name
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": timm.create_model("cifar_resnet8", num_classes=10)}, path)  # a whole pickled module
    with pytest.raises(ValueError, match="never unpickles arbitrary objects"):
        r2kd_hf.load_model(str(path), arch="cifar_resnet8")


def test_convert_teacher_writes_a_folder_timm_and_transformers_load(tmp_path):
    from transformers import AutoModelForImageClassification

    model, path = reference_checkpoint(tmp_path, "cifar_wrn_40_2", num_classes=100)
    out = tmp_path / "converted"
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "convert_teacher.py"), str(path), "--arch", "wrn_40_2", "--output_dir", str(out),
         "--label_names", ",".join(f"class_{i}" for i in range(100))],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((out / "config.json").read_text())["architecture"] == "cifar_wrn_40_2"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(timm.create_model(f"local-dir:{out}", pretrained=True).eval()(x), expected)
        auto = AutoModelForImageClassification.from_pretrained(out).eval()
        torch.testing.assert_close(auto(x).logits, expected)
        assert auto.config.id2label[7] == "class_7"
        torch.testing.assert_close(r2kd_hf.load_student(str(out))(x).logits, expected)


def test_cifar_networks_are_unknown_to_timm_until_r2kd_hf_is_imported():
    # the troubleshooting row: the fix is `import r2kd_hf` first, not a timm upgrade
    code = "import timm; timm.create_model('cifar_resnet8')"
    without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert without.returncode != 0 and "Unknown model (cifar_resnet8)" in without.stderr
    with_import = subprocess.run([sys.executable, "-c", "import r2kd_hf; " + code], capture_output=True, text=True, timeout=300)
    assert with_import.returncode == 0, with_import.stderr[-2000:]
