"""The installed console commands: each answers --help, recipes are found by name from any folder, and a command
without a recipe uses the embedded quickstart's settings. (The installed-wheel check is scripts/dev/check_installed_package.sh,
which CI runs after the tests.)"""

import json
import os
import subprocess
import sys

import pytest

COMMANDS = ("r2kd-distill", "r2kd-train-teacher", "r2kd-evaluate", "r2kd-export-onnx", "r2kd-convert-teacher")
BIN = os.path.dirname(sys.executable)


def command(name: str, *args, cwd, timeout=900):
    return subprocess.run([os.path.join(BIN, name), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="2"))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_installed_and_answers_help(name, tmp_path):
    result = command(name, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower() and "Traceback" not in result.stderr


def test_a_shipped_recipe_is_found_by_name_from_any_folder(tmp_path):
    result = command("r2kd-distill", "--recipe", "tinyimagenet/r2kd-resnet20_from_resnet56", "--print_recipe", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dataset: zh-plus/tiny-imagenet" in result.stdout and "student: cifar_resnet20" in result.stdout
    missing = command("r2kd-distill", "--recipe", "tinyimagenet/r2kd-resnet20_from_resnet5", cwd=tmp_path)
    assert missing.returncode == 2 and "Close names: tinyimagenet/r2kd-resnet20_from_resnet56" in missing.stderr


@pytest.mark.slow
def test_train_teacher_without_a_recipe_trains_a_useful_teacher(tmp_path):
    """The quickstart's settings (SGD, lr 0.1, batch 64), not transformers' defaults (AdamW 5e-5, batch 8)."""
    result = command("r2kd-train-teacher", "--num_train_epochs", "2", "--output_dir", "t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    args = json.loads((tmp_path / "t" / "training_args.json").read_text())
    assert args["optim"] == "sgd" and args["learning_rate"] == 0.1 and args["per_device_train_batch_size"] == 64
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["role"] == "teacher" and summary["final_eval_accuracy"] > 0.5  # 10 digits: chance is 0.1
