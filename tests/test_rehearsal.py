"""Dress rehearsals of the shipped recipes: datasets and teachers come from a (local) Hub, as in production.

The local Hub server serves dataset repos in the Hub's parquet layout and a timm-format teacher under the exact ids
the recipes name. Each recipe then runs through ``accelerate launch scripts/distill.py --recipe ...`` with only size
overrides (tiny images, a tiny student, one epoch, CPU): the data are downloaded and verified, the teacher is
validated and pruned (CUB: first fine-tuned from ImageNet weights), the student is distilled, evaluated, saved, and (CUB) pushed and pulled back three ways.
"""

import json
import os
import subprocess
import sys

import pytest

from hub_fixtures import image_dataset_repo, timm_teacher_repo
from test_multiprocess import accelerate_2_cpu, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DISTILL = os.path.join(ROOT, "scripts", "distill.py")
TOKEN = "hf_secret_test_token"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    seed = str(root / "seed")
    image_dataset_repo(seed, "Donghyun99/CUB-200-2011", {"train": 200, "test": 200}, classes=200, size=24)
    # the ImageNet weights the CUB recipe fine-tunes its own teacher from (timm's repo id for resnet50.a1_in1k)
    timm_teacher_repo(seed, "timm/resnet50.a1_in1k", "resnet50", [f"imagenet_{i}" for i in range(1000)])
    image_dataset_repo(seed, "zh-plus/tiny-imagenet", {"train": 200, "valid": 200}, classes=200, size=64, seed=1)
    image_dataset_repo(seed, "uoft-cs/cifar100", {"train": 100, "test": 100}, classes=100, image_column="img",
                       label_column="fine_label", size=32, seed=2, extra_label="coarse_label")
    port_file = str(root / "hub.port")
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "hub_server.py"), port_file, "--seed", seed])
    for _ in range(400):
        if os.path.exists(port_file):
            break
        import time

        time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError("the local hub server did not start")
    endpoint = f"http://127.0.0.1:{open(port_file).read()}"
    yield {"endpoint": endpoint, "store": port_file + ".files", "home": str(root / "hf_home"), "seed": seed}
    server.kill()


def hub_env(hub) -> dict:
    return dict(os.environ, HF_ENDPOINT=hub["endpoint"], HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_HOME=hub["home"],
                HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")


def launch(hub, recipe: str, out, *overrides, processes: int = 1):
    launcher = accelerate_2_cpu() if processes == 2 else [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
    ]
    command = [*launcher, DISTILL, "--recipe", os.path.join(ROOT, "recipes", recipe), "--output_dir", str(out), "--use_cpu", "true",
               "--dataloader_num_workers", "0", "--report_to", "none", *overrides]
    result = subprocess.run(command, cwd=ROOT, env=hub_env(hub), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert TOKEN not in result.stdout + result.stderr
    return result


def logged(out) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


@pytest.mark.slow
def test_fgvr_cub_headline_command_from_the_hub_to_the_hub(hub, tmp_path):
    out = tmp_path / "cub"
    out.mkdir()
    (out / "notes_from_an_earlier_run.txt").write_text("not this run's")  # a leftover must not be published
    launch(hub, "fgvr_cub.yaml", out, "--train_teacher_epochs", "1",
           "--student", "cifar_resnet8", "--student_pretrained", "false", "--image_size", "32", "--num_train_epochs", "1",
           "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64", "--logging_steps", "2",
           "--verify_images", "true", "--push_to_hub", "true", "--hub_model_id", "tester/cub-student", "--hub_token", TOKEN,
           processes=2)
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["model"]: row for row in summary["rows"]}
    assert rows["teacher"]["params"] > 23_000_000  # the run's own ResNet-50 teacher, 200 classes
    # fine-tuned from the Hub's ImageNet weights (a short run moves them little), not trained from a random start
    import torch
    from safetensors.torch import load_file

    start = load_file(os.path.join(hub["seed"], "models", "timm", "resnet50.a1_in1k", "model.safetensors"))["conv1.weight"]
    tuned = load_file(str(out / "teacher" / "model.safetensors"))["conv1.weight"]
    assert torch.nn.functional.cosine_similarity(start.flatten(), tuned.flatten(), dim=0) > 0.9
    assert json.loads((out / "teacher" / "teacher_settings.json").read_text())["teacher_pretrained"] is True
    assert {"teacher_eval_accuracy", "pruned_teacher_eval_accuracy"} <= {k for e in logged(out) for k in e}  # validated
    assert summary["teacher_pruning"]["method"] == "l1_unstructured"
    assert summary["teacher_pruning"]["sparsity_overall"] == pytest.approx(0.1, abs=2e-3)
    assert summary["metrics"]["eval_accuracy"] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "cifar_resnet8" and config["num_classes"] == 200 and len(config["label_names"]) == 200
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]  # the size it was trained at, not the default
    pushed = os.path.join(hub["store"], "tester", "cub-student")
    commits = json.load(open(os.path.join(hub["store"], "_commits.json")))["tester/cub-student"]
    assert len(commits) == 1  # one run, one commit, with the final card and records
    assert set(commits[0]) == {"config.json", "model.safetensors", "README.md", "training_args.json", "recipe.yaml",
                               "summary.json", "trainer_state.json", "training_curves.png", ".eval_results/r2kd_hf.yaml"}
    import yaml  # the Hub's current evaluation-results format, beside the card's model-index

    results = yaml.safe_load(open(os.path.join(pushed, ".eval_results", "r2kd_hf.yaml")))
    assert results[0]["dataset"] == {"id": "Donghyun99/CUB-200-2011", "task_id": "image-classification"}
    assert results[0]["value"] == pytest.approx(summary["final_eval_accuracy"], abs=1e-6)
    assert not [f for f in os.listdir(pushed) if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    card = open(os.path.join(pushed, "README.md")).read()
    assert "resnet50.a1_in1k, fine-tuned from its pretrained weights" in card and "Donghyun99/CUB-200-2011" in card
    pull = subprocess.run([sys.executable, os.path.join(HERE, "pull_worker.py"), "tester/cub-student", str(out), "32"],
                          env=hub_env(hub), capture_output=True, text=True, timeout=300)
    assert pull.returncode == 0, pull.stderr[-4000:]
    assert json.loads(pull.stdout.strip().splitlines()[-1]) == {"timm": 0.0, "transformers": 0.0, "load_student": 0.0}


@pytest.mark.slow
def test_tinyimagenet_recipe_from_the_hub(hub, tmp_path):
    out = tmp_path / "tiny"
    launch(hub, "tinyimagenet/r2kd-resnet20_from_resnet56.yaml", out,
           "--train_teacher_epochs", "1", "--num_train_epochs", "1", "--max_train_samples", "96", "--max_eval_samples", "64",
           "--per_device_train_batch_size", "32", "--logging_steps", "1", "--save_strategy", "no")
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 200 and config["pretrained_cfg"]["input_size"] == [3, 64, 64]
    assert config["pretrained_cfg"]["mean"] == [0.485, 0.456, 0.406]  # the reference's TinyImageNet normalisation
    assert summary["teacher_pruning"]["method"] == "l1_unstructured"
    assert json.loads((out / "teacher" / "config.json").read_text())["architecture"] == "cifar_resnet56"


@pytest.mark.slow
def test_cifar100_recipe_from_the_hub(hub, tmp_path):
    out = tmp_path / "c100"
    launch(hub, "cifar100/r2kd-wrn_16_2_from_wrn_40_2.yaml", out,
           "--train_teacher_epochs", "1", "--num_train_epochs", "1", "--per_device_train_batch_size", "32",
           "--logging_steps", "1", "--save_strategy", "no")
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["num_classes"] == 100 and config["architecture"] == "cifar_wrn_16_2"
    assert [k for e in logged(out) for k in e if k == "aug_kd_value"]  # the CutMix view ran
    assert summary["metrics"]["eval_accuracy"] is not None
