"""Streaming (``--streaming true``): a parquet folder in the Hub layout is streamed, not converted, through the same
transforms, with max_steps required; one process and the 2-process CPU launch. The one-process run also exports the
student to ONNX at the end (``--export_onnx true``)."""

import json
import os
import subprocess
import sys

import pytest

from hub_fixtures import image_dataset_repo, timm_teacher_repo
from test_multiprocess import accelerate_2_cpu

HERE = os.path.dirname(os.path.abspath(__file__))
DISTILL = os.path.join(os.path.dirname(HERE), "scripts", "distill.py")


@pytest.fixture(scope="module")
def stream_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    labels = image_dataset_repo(str(root), "local/blobs", {"train": 96, "test": 32}, classes=4, size=16)
    teacher = timm_teacher_repo(str(root), "local/teacher", "cifar_resnet8", labels, input_size=16)
    return {"data": os.path.join(root, "datasets", "local", "blobs"), "teacher": teacher}


def run(args, cwd, launcher=(sys.executable,), home=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **({"HF_HOME": str(home)} if home else {}))
    return subprocess.run([*launcher, DISTILL, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def common(stream_inputs, out):
    return ["--dataset", stream_inputs["data"], "--streaming", "true", "--teacher", stream_inputs["teacher"],
            "--student", "cifar_resnet8", "--image_size", "16", "--loss_name", "kd", "--second_view", "none",
            "--prune_teacher", "false", "--train_teacher_epochs", "0", "--per_device_train_batch_size", "8",
            "--shuffle_buffer_size", "32", "--logging_steps", "1", "--output_dir", str(out), "--validate_teacher", "false"]


@pytest.mark.slow
def test_streaming_trains_without_converting_the_dataset_and_needs_max_steps(stream_inputs, tmp_path):
    refused = run(common(stream_inputs, tmp_path / "no_steps"), tmp_path)
    assert refused.returncode == 2 and "Set max_steps" in refused.stderr, refused.stderr[-2000:]
    result = run([*common(stream_inputs, tmp_path / "out"), "--max_steps", "5", "--export_onnx", "true"], tmp_path,
                 home=tmp_path / "home")
    assert result.returncode == 0, result.stderr[-4000:]
    card = (tmp_path / "out" / "README.md").read_text()  # --export_onnx: model.onnx beside the model, named by the card
    assert (tmp_path / "out" / "model.onnx").stat().st_size > 1000 and "## ONNX" in card and "max abs" in card
    arrow = [f for _, _, files in os.walk(tmp_path / "home") for f in files if f.endswith(".arrow")]
    assert arrow == []  # streamed: no split was converted to Arrow (the capped eval split lives in memory)
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["metrics"]["eval_accuracy"] is not None


@pytest.mark.slow
def test_streaming_under_the_two_process_cpu_launch(stream_inputs, tmp_path):
    result = run([*common(stream_inputs, tmp_path / "ddp"), "--max_steps", "3", "--use_cpu", "true"], tmp_path,
                 launcher=accelerate_2_cpu())
    assert result.returncode == 0, result.stderr[-4000:]
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
