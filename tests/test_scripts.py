"""End-to-end runs of the scripts: the quickstart on digits, a 2-process run, evaluation of the result."""

import json
import math
import os
import subprocess
import sys

import pytest

from test_multiprocess import accelerate_2_cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTILL = os.path.join(ROOT, "scripts", "distill.py")


def run(command, cwd):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return result


@pytest.mark.slow
def test_quickstart_distillation_beats_chance_with_finite_terms(tmp_path):
    out = tmp_path / "quick"
    result = run([sys.executable, DISTILL, "--train_teacher_epochs", "4", "--num_train_epochs", "4", "--output_dir", str(out)], tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["model"]: row for row in summary["rows"]}
    assert rows["teacher"]["accuracy"] > 0.5 and rows["student"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert rows["pruned teacher"]["accuracy"] is not None
    assert summary["teacher_pruning"]["sparsity_overall"] == pytest.approx(0.1, abs=1e-3)
    state = json.loads((out / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "loss" in e]
    assert logged
    for entry in logged:
        for term in ("loss", "ce", "kd_value", "kd_rank", "aug_kd_value", "aug_kd_rank"):
            assert math.isfinite(entry[term]), (term, entry)
    for name in ("model.safetensors", "config.json", "README.md", "recipe.yaml", "training_curves.png", "teacher_pruning.json"):
        assert (out / name).exists(), name
    assert "teacher" in result.stdout and "top-1" in result.stdout
    run([sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"), "--model", str(out), "--output", str(tmp_path / "m.json")], tmp_path)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["top1"] == pytest.approx(rows["student"]["accuracy"], abs=1e-6)
    assert metrics["params"] == rows["student"]["params"]


@pytest.mark.slow
def test_two_process_distill_trains_evaluates_and_saves_once(tmp_path):
    out = tmp_path / "ddp"
    args = ["--train_teacher_epochs", "1", "--num_train_epochs", "1", "--max_train_samples", "256", "--output_dir", str(out),
            "--logging_steps", "2"]
    result = run([*accelerate_2_cpu(), DISTILL, *args], tmp_path)
    # one summary for the teacher run and one for the distillation, each printed by rank 0 only (4 if both ranks did)
    assert result.stdout.count("model              top-1") == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["eval_accuracy"] > 0.0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2  # 256 images / (64 per device x 2 processes)
    assert (out / "model.safetensors").exists() and (out / "teacher" / "model.safetensors").exists()


def test_bad_recipe_key_fails_fast(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  studnet: resnet18\n")
    result = subprocess.run([sys.executable, DISTILL, "--recipe", str(bad)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Unknown key 'studnet'" in result.stderr and "Did you mean student" in result.stderr
