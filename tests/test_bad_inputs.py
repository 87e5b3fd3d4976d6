"""Nothing wrong gets trained, saved or published: each bad input is refused with exit 2, a message that names the
field, the value, the allowed range and where it came from, and nothing written."""

import json
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DISTILL = os.path.join(ROOT, "scripts", "distill.py")
EVALUATE = os.path.join(ROOT, "scripts", "evaluate_model.py")


def cli(args, cwd, script=DISTILL, env=None, timeout=600):
    return subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="2", **(env or {})))


def refused(result, *texts):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for text in texts:
        assert text in result.stderr, (text, result.stderr[-2000:])


def test_out_of_range_values_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--num_train_epochs", "-1"], "num_train_epochs=-1.0 is not allowed: it must be > 0", "(set on the command line: --num_train_epochs)"),
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size=0 is not allowed: it must be >= 1"),
        (["--learning_rate", "-0.1"], "learning_rate=-0.1 is not allowed: it must be > 0"),
        (["--max_steps", "0"], "max_steps=0 is not allowed", "Use -1"),
        (["--teacher_prune_amount", "1.5"], "teacher_prune_amount=1.5", "< 1"),
        (["--max_train_samples", "0"], "max_train_samples=0 is not allowed: it must be >= 1"),
        (["--temperature", "0"], "temperature=0.0 is not allowed: it must be > 0"),
        # the quickstart's cosine schedule beside a step schedule: one of the two would be dropped without a word
        (["--lr_decay_epochs", "2", "3"], "lr_scheduler_type='cosine' is not allowed: lr_decay_epochs builds the step schedule",
         "section 'training'"),
        (["--lr_decay_epochs", "2", "--lr_scheduler_type", "constant", "--warmup_steps", "10"],
         "warmup_steps=10", "has no warm-up", "(set on the command line: --warmup_steps)"),
    ]
    for args, *texts in cases:
        refused(cli([*args, "--output_dir", str(out)], tmp_path), *texts)
    assert not out.exists() and not (tmp_path / "outputs").exists()  # nothing was written, not even an empty folder


def test_recipe_mistakes_name_the_file_and_the_line(tmp_path):
    tab = tmp_path / "tab.yaml"
    tab.write_text("training:\n\tlearning_rate: 0.1\n")
    refused(cli(["--recipe", str(tab)], tmp_path), "tab.yaml' is not valid YAML at line 2", "no tabs")
    unclosed = tmp_path / "unclosed.yaml"
    unclosed.write_text("training:\n  lr_decay_epochs: [1, 2\n")
    refused(cli(["--recipe", str(unclosed)], tmp_path), "unclosed.yaml' is not valid YAML at line")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    refused(cli(["--recipe", str(empty)], tmp_path), "empty.yaml' is empty", "recipes/quickstart.yaml")
    negative = tmp_path / "negative.yaml"
    negative.write_text("training:\n  learning_rate: -1\n")
    refused(cli(["--recipe", str(negative)], tmp_path), "learning_rate=-1", f"(set in '{negative}', section 'training')")
    assert sorted(os.listdir(tmp_path)) == ["empty.yaml", "negative.yaml", "tab.yaml", "unclosed.yaml"]


def test_an_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("a file")
    refused(cli(["--output_dir", str(tmp_path / "taken")], tmp_path), "output_dir=", "names an existing file, not a folder")


def test_a_one_class_dataset_is_refused_with_what_to_do(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        folder = tmp_path / "data" / split / "cat"
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), (i * 40, 90, 30)).save(folder / f"{i}.png")
    result = cli(["--dataset", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out")], tmp_path)
    refused(result, "no labels", "its own sub-folder, at least two classes")
    assert not (tmp_path / "out" / "teacher").exists()


def test_evaluate_checks_its_arguments_before_loading_anything(tmp_path):
    for args, text in ((["--corruptions", "snowstorm"], "Unknown corruption 'snowstorm'"), (["--severities", "9", "--corruptions", "fog"], "Severities"),
                       (["--batch_size", "0"], "--batch_size")):
        result = cli(["--model", str(tmp_path / "not_loaded_yet"), *args], tmp_path, script=EVALUATE)
        assert result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_hub_stops_the_run_before_the_teacher_is_trained(tmp_path):
    out = tmp_path / "out"
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_HOME": str(tmp_path / "home")}
    result = cli(["--push_to_hub", "true", "--hub_model_id", "tester/never", "--hub_token", "hf_secret_test_token",
                  "--output_dir", str(out)], tmp_path, env=env)
    assert result.returncode == 1 and "cannot be created or reached" in result.stderr and "Nothing has been trained" in result.stderr
    assert "hf_secret_test_token" not in result.stdout + result.stderr
    assert not (out / "teacher").exists() and not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_teacher_reuse_damaged_checkpoints_and_max_steps(tmp_path):
    out = tmp_path / "out"
    small = ["--max_train_samples", "128", "--max_eval_samples", "64", "--train_teacher_epochs", "1", "--output_dir", str(out)]
    first = cli([*small, "--max_steps", "3", "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "3"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    teacher_state = json.loads((out / "teacher" / "trainer_state.json").read_text())
    assert teacher_state["global_step"] == 2  # its own epoch (128 images / 64), not the student's max_steps 3
    assert json.loads((out / "teacher" / "teacher_settings.json").read_text())["teacher_arch"] == "cifar_resnet20"
    # a teacher trained with other settings is not reused silently
    other = cli([*small, "--teacher_arch", "cifar_resnet8", "--max_steps", "1"], tmp_path)
    refused(other, "holds a teacher trained with other settings", "teacher_arch: 'cifar_resnet20' there, 'cifar_resnet8' now",
            "--retrain_teacher true")
    # the newest checkpoint cut in half: named, and the newest intact one proposed
    weights = out / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    damaged = cli([*small, "--max_steps", "3", "--resume_from_checkpoint", "last"], tmp_path)
    refused(damaged, "checkpoint-3' is damaged", "cut short while writing", f"--resume_from_checkpoint {out / 'checkpoint-2'}")
    resumed = cli([*small, "--max_steps", "3", "--resume_from_checkpoint", str(out / "checkpoint-2")], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
