"""End-to-end runs of the scripts: the quickstart on digits, a 2-process run, evaluation of the result."""

import glob
import importlib.util
import json
import math
import os
import re
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


def test_no_script_is_named_like_an_importable_module():
    # `python scripts/x.py` (or benchmarks/x.py) puts its folder first on sys.path: a script named like an installed package (scripts/evaluate.py
    # was, beside the `evaluate` package) would be imported in its place by anything in that process.
    paths = glob.glob(os.path.join(ROOT, "scripts", "*.py")) + glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    assert "distill" in names and "benchmark_speed" in names
    assert [name for name in names if importlib.util.find_spec(name) is not None] == []


@pytest.mark.slow
def test_quickstart_distillation_beats_chance_with_finite_terms(tmp_path):
    out = tmp_path / "quick"
    result = run([sys.executable, DISTILL, "--train_teacher_epochs", "4", "--num_train_epochs", "4", "--output_dir", str(out),
                  "--corruptions", "contrast", "gaussian_noise", "--corruption_severities", "1", "5", "--corruption_max_images", "120",
                  "--corruption_cache_dir", str(tmp_path / "c_cache")], tmp_path)
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
    assert "teacher" in result.stdout and "top-1" in result.stdout and "mCA" in result.stdout
    robustness = json.loads((out / "robustness.json").read_text())
    assert set(robustness["per_corruption"]) == {"contrast", "gaussian_noise"} and robustness["benchmark"] == "cifar"
    assert summary["robustness"]["mca"] == pytest.approx(robustness["mca"]) and (out / "corruption_accuracy.png").exists()
    card = (out / "README.md").read_text()
    assert "name: digits-C" in card and "config: gaussian_noise" in card and "hendrycks2019robustness" in card
    run([sys.executable, os.path.join(ROOT, "scripts", "evaluate_model.py"), "--model", str(out), "--output", str(tmp_path / "m.json")], tmp_path)
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
    assert len(re.findall(r"^model\s+top-1", result.stdout, re.M)) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["eval_accuracy"] > 0.0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2  # 256 images / (64 per device x 2 processes)
    assert (out / "model.safetensors").exists() and (out / "teacher" / "model.safetensors").exists()


def cli(args, cwd, script=DISTILL, timeout=300):
    return subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="2"))


def test_usage_errors_exit_2_with_one_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  studnet: resnet18\n")
    cases = [
        (["--recipe", str(bad)], "Unknown key 'studnet' in section 'model'", "Did you mean student"),
        (["--learning_rat", "0.1"], "Unknown option --learning_rat on the command line", "Did you mean --learning_rate"),
        (["--second_view", "mosaic"], "Unknown second_view 'mosaic'", "Valid choices: none, mixup"),
        (["--recipe", str(tmp_path / "missing.yaml")], "does not exist", "recipes/"),
        (["--corruptions", "snowstorm"], "Unknown corruption", "gaussian_noise"),
    ]
    for args, *expected in cases:
        result = cli(args, tmp_path)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, args
        for text in expected:
            assert text in result.stderr, (args, text, result.stderr[-2000:])
    training_keys = cli(["--learning_rat", "0.1"], tmp_path).stderr
    assert "per_device_train_batch_size" not in training_keys  # the closest matches, not ~150 keys


def test_runtime_errors_exit_1_and_debug_shows_the_traceback(tmp_path):
    args = ["--teacher", str(tmp_path / "no_such_teacher"), "--num_train_epochs", "1", "--output_dir", str(tmp_path / "out")]
    result = cli(args, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no file or folder" in result.stderr and "--debug" in result.stderr
    debug = cli([*args, "--debug"], tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    resume = cli(["--resume_from_checkpoint", "last", "--output_dir", str(tmp_path / "empty")], tmp_path)
    assert resume.returncode == 1 and "no checkpoint-* folder" in resume.stderr


def test_import_adds_no_hook_and_registers_the_architectures(tmp_path):
    """``import r2kd_hf`` changes no other package's import machinery and writes nothing; the cifar_* networks work."""
    # The CI box's own torchvision fix (scripts/dev/, installed into .venv) removes itself on torchvision's import:
    # it belongs to the machine, so it is left out of the comparison.
    probe = ("import sys; mine = lambda: [f for f in sys.meta_path if type(f).__name__ != '_TorchvisionCpuFix']; "
             "before = mine(); import r2kd_hf, timm; after = mine(); assert after == before, (before, after); "
             "m = timm.create_model('cifar_resnet8', num_classes=3); print('ok', sum(p.numel() for p in m.parameters()))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, HF_HOME=str(tmp_path / "home")))
    assert result.returncode == 0 and result.stdout.startswith("ok "), result.stderr[-2000:]
    assert os.listdir(tmp_path) == []  # nothing written (no $HF_HOME cache, no files in the working directory)
    package = os.path.join(ROOT, "r2kd_hf")
    sources = [open(os.path.join(d, f)).read() for d, _, files in os.walk(package) for f in files if f.endswith(".py")]
    assert not [s for s in sources if "meta_path" in s or "torchvision::nms" in s]  # no hook, no torchvision patch


def test_the_library_never_imports_the_application_layer(tmp_path):
    """Every library module imports without r2kd_hf.app (recipes, the end-to-end run, the command line)."""
    package = os.path.join(ROOT, "r2kd_hf")
    modules = sorted(("r2kd_hf." + os.path.relpath(os.path.join(d, f), package)[:-3].replace(os.sep, ".")).removesuffix(".__init__")
                     for d, _, files in os.walk(package) for f in files if f.endswith(".py") and os.sep + "app" not in d)
    probe = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
             "print([m for m in sys.modules if m.startswith('r2kd_hf.app')])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(modules) > 20 and result.stdout.strip() == "[]", result.stdout


def test_help_and_print_recipe_answer_without_training(tmp_path):
    result = cli(["--help"], tmp_path)
    assert result.returncode == 0 and "--teacher_prune_amount" in result.stdout
    result = cli(["--recipe", os.path.join(ROOT, "recipes", "quickstart.yaml"), "--print_recipe"], tmp_path)
    assert result.returncode == 0 and "differs from the reference" in result.stdout and not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_corrupt_images_are_found_before_training_or_skipped_and_listed(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        for split in ("train", "test"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (16, 16), (200 if label == "cat" else 20, 90, i * 30)).save(folder / f"{i}.png")
    (tmp_path / "data" / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    args = ["--dataset", str(tmp_path / "data"), "--loss_name", "none", "--second_view", "none", "--prune_teacher", "false",
            "--num_train_epochs", "1", "--verify_images", "true", "--per_device_train_batch_size", "4"]
    stopped = cli([*args, "--output_dir", str(tmp_path / "stop")], tmp_path)
    assert stopped.returncode == 1 and "broken.png" in stopped.stderr and "skip_corrupt_images" in stopped.stderr
    assert not (tmp_path / "stop" / "model.safetensors").exists()  # stopped before any training
    skipped = cli([*args, "--skip_corrupt_images", "true", "--output_dir", str(tmp_path / "skip")], tmp_path)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    listed = json.loads((tmp_path / "skip" / "skipped_images.json").read_text())
    assert len(listed["train"]) == 1 and "broken.png" in listed["train"][0]["problem"] and listed["eval"] == []
