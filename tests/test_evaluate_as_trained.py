"""A saved model is evaluated as it was trained: every loader restores the data config its folder records, a
checkpoint file takes the recipe's, ``r2kd-evaluate`` evaluates any of them, and paper recipes can be shortened."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

import r2kd_hf
from r2kd_hf import load_model, load_student, save_classifier
from r2kd_hf.introspection import data_config_of
from r2kd_hf.loading import create_timm_classifier
from r2kd_hf.teacher import Teacher

from helpers import BlobImages, TinyNet

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _names(n):
    return {i: f"class_{i}" for i in range(n)}


def test_a_64px_cifar_student_with_imagenet_statistics_comes_back_as_saved(tmp_path):
    model = create_timm_classifier("cifar_resnet8", 5, _names(5))
    save_classifier(model, str(tmp_path), data_config={"input_size": (3, 64, 64), "mean": IMAGENET[0], "std": IMAGENET[1]})
    for loaded in (load_student(str(tmp_path)), load_model(str(tmp_path))):
        config = data_config_of(loaded)
        # the architecture's defaults are 32 px and the CIFAR-100 statistics: the folder's record must win
        assert config["input_size"] == (3, 64, 64) and config["mean"] == IMAGENET[0] and config["std"] == IMAGENET[1]
    by_timm = timm.data.resolve_data_config({}, model=timm.create_model(f"local-dir:{tmp_path}"))
    assert tuple(by_timm["input_size"]) == (3, 64, 64) and tuple(by_timm["mean"]) == IMAGENET[0]


def test_a_128px_timm_student_with_its_own_statistics_comes_back_as_saved(tmp_path):
    model = create_timm_classifier("resnet18", 3, _names(3))
    save_classifier(model, str(tmp_path), data_config={"input_size": (3, 128, 128), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    for loaded in (load_student(str(tmp_path)), load_model(str(tmp_path))):
        config = data_config_of(loaded)
        assert config["input_size"] == (3, 128, 128) and config["mean"] == (0.5,) * 3 and config["std"] == (0.5,) * 3


def test_a_checkpoint_file_takes_the_given_data_config_and_a_teacher_file_the_students(tmp_path):
    path = str(tmp_path / "teacher.pth")
    torch.save({"model": timm.create_model("cifar_resnet8", num_classes=5).state_dict()}, path)
    assert data_config_of(load_model(path, arch="cifar_resnet8"))["input_size"] == (3, 32, 32)  # nothing given: the defaults
    loaded = load_model(path, arch="cifar_resnet8", data_config={"input_size": (3, 64, 64), "mean": IMAGENET[0], "std": IMAGENET[1]})
    assert data_config_of(loaded)["input_size"] == (3, 64, 64) and data_config_of(loaded)["std"] == IMAGENET[1]
    student = create_timm_classifier("cifar_resnet8", 5, _names(5))
    r2kd_hf.saving.apply_data_config(student, {"input_size": (3, 64, 64), "mean": IMAGENET[0], "std": IMAGENET[1]})
    # a .pth records no normalisation: it shares the run's, so it must not be re-normalised to CIFAR-100 statistics
    teacher = Teacher.build(path, student, arch="cifar_resnet8")
    assert teacher.renormalize is None and data_config_of(teacher.module)["mean"] == IMAGENET[0]


def test_a_transformers_native_student_saved_by_the_trainer_works_in_pipeline(tmp_path):
    from PIL import Image
    from torchvision import transforms as T
    from transformers import ResNetConfig, ResNetForImageClassification, pipeline

    config = ResNetConfig(num_labels=4, id2label=_names(4), label2id={v: k for k, v in _names(4).items()}, embedding_size=8,
                          hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1])
    student = ResNetForImageClassification(config)
    args = r2kd_hf.R2KDConfig(output_dir=str(tmp_path / "out"), loss_name="none", use_cpu=True, report_to="none",
                              max_steps=1, per_device_train_batch_size=8, save_strategy="no", validate_teacher=False)
    data_config = {"input_size": (3, 24, 24), "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "crop_pct": 1.0}
    trainer = r2kd_hf.R2KDTrainer(model=student, args=args, train_dataset=BlobImages(16, size=24), data_config=data_config)
    trainer.save_model()
    assert os.path.exists(tmp_path / "out" / "preprocessor_config.json")
    classify = pipeline("image-classification", model=str(tmp_path / "out"))
    image = Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype("uint8"))
    fed = classify.image_processor(image, return_tensors="pt")["pixel_values"][0]
    as_trained = T.Compose([T.Resize((24, 24)), T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])])(image)
    assert fed.shape == (3, 24, 24) and (fed - as_trained).abs().mean() < 0.02  # the same resize and normalisation
    assert {p["label"] for p in classify(image, top_k=4)} == set(_names(4).values())


# ---------------------------------------------------------------------------------------------- r2kd-evaluate
def _dataset(root, size=16, per_class=6, classes=3):
    """A parquet folder with a ``test`` split: the same datasets path as real data (decode, label names)."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = {"image": [], "label": []}
    for i in range(per_class * classes):
        label = i % classes
        pixels = rng.integers(0, 80, (size, size, 3))
        pixels[..., label] += 150
        rows["image"].append(Image.fromarray(pixels.astype("uint8")))
        rows["label"].append(label)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["ant", "bee", "cat"][:classes])})
    for split in ("train", "test"):
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def _evaluate(args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluate_model.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="2"))


def test_evaluate_a_checkpoint_file_with_arch_and_a_recipe(tmp_path):
    from torchvision import transforms as T

    data = _dataset(tmp_path / "data_root")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  dataset: unused\n  eval_split: test\n  image_size: 16\n  transform_style: cifar\n"
                      "  mean: [0.3, 0.4, 0.5]\n  std: [0.2, 0.3, 0.4]\n")
    torch.manual_seed(0)
    network = timm.create_model("cifar_resnet8", num_classes=3)
    torch.save({"model": network.state_dict()}, tmp_path / "student.pth")
    result = _evaluate(["--model", str(tmp_path / "student.pth"), "--arch", "cifar_resnet8", "--recipe", str(recipe),
                        "--dataset", str(data), "--output", str(tmp_path / "out.json")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "out.json").read_text())
    assert {"top1", "top5", "samples", "params", "macs"} <= set(metrics)
    assert metrics["samples"] == 18 and metrics["input_size"] == [3, 16, 16] and metrics["mean"] == [0.3, 0.4, 0.5]
    assert metrics["class_order"].startswith("dataset order") and metrics["params"] == sum(p.numel() for p in network.parameters())
    # the reference's evaluation: ToTensor + Normalize with the recipe's statistics, no resize (the images are 16 px)
    import datasets

    split = datasets.load_dataset(str(data), split="test")
    reference = T.Compose([T.ToTensor(), T.Normalize((0.3, 0.4, 0.5), (0.2, 0.3, 0.4))])
    with torch.no_grad():
        predicted = network.eval()(torch.stack([reference(im) for im in split["image"]])).argmax(1)
    assert metrics["top1"] == pytest.approx(float((predicted == torch.tensor(split["label"])).float().mean()))


def test_evaluate_refuses_a_checkpoint_without_arch_and_a_class_order_that_differs(tmp_path):
    data = _dataset(tmp_path / "data_root")
    torch.save({"model": timm.create_model("cifar_resnet8", num_classes=3).state_dict()}, tmp_path / "student.pth")
    result = _evaluate(["--model", str(tmp_path / "student.pth"), "--dataset", str(data), "--split", "test"], tmp_path)
    assert result.returncode == 2 and "arch=" in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    swapped = {0: "bee", 1: "ant", 2: "cat"}
    save_classifier(create_timm_classifier("cifar_resnet8", 3, swapped), str(tmp_path / "swapped"))
    result = _evaluate(["--model", str(tmp_path / "swapped"), "--dataset", str(data), "--split", "test"], tmp_path)
    assert result.returncode == 2 and "class order differs" in result.stderr, result.stderr[-2000:]
    assert "'bee', 'ant', 'cat'" in result.stderr and "'ant', 'bee', 'cat'" in result.stderr  # both orders named


def test_evaluate_reads_a_shipped_recipe_by_name():
    from r2kd_hf.app.evaluate import build_parser, data_arguments

    args = build_parser().parse_args(["--model", "x", "--recipe", "tinyimagenet/r2kd-resnet20_from_resnet56", "--image_size", "72"])
    data = data_arguments(args)
    assert data.dataset == "zh-plus/tiny-imagenet" and data.eval_split == "valid" and data.transform_style == "cifar"
    assert data.image_size == 72 and data.mean == [0.485, 0.456, 0.406]  # the flag overrides, the rest is the recipe's


# ------------------------------------------------------------------------------------------ shortened recipes
def test_every_list_field_can_be_cleared_from_the_command_line():
    from r2kd_hf.app.recipe import parse_recipe

    _, data, training, _ = parse_recipe(["--recipe", "tinyimagenet/r2kd-resnet20_from_resnet56", "--max_steps", "30",
                                         "--lr_decay_epochs", "none", "--mean", "null", "--std", "[]", "--output_dir", "unused"])
    assert training.lr_decay_epochs is None and training.max_steps == 30 and data.mean is None and data.std is None
    # TrainingArguments' own fields keep transformers' meaning: --report_to none is "no integration", not None ("all")
    _, _, training, _ = parse_recipe(["--report_to", "none", "--output_dir", "unused"])
    assert training.report_to in ([], ["none"], "none")


def test_max_steps_keeps_the_epoch_milestones_at_the_real_epoch_length(tmp_path, caplog):
    args = r2kd_hf.R2KDConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, learning_rate=0.1, optim="sgd",
                              use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                              validate_teacher=False, seed=0, max_steps=5, lr_scheduler_type="constant", lr_decay_epochs=[1, 2, 9],
                              lr_decay_rate=0.5)
    trainer = r2kd_hf.R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1), args=args, train_dataset=BlobImages(32))
    with caplog.at_level("WARNING"):
        trainer.train()
    rates = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    # 32 images / 16 = 2 steps an epoch: x0.5 after step 2 and after step 4; epoch 9 (step 18) is never reached
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert "after 2 of the 3 decays" in caplog.text and "[2, 4, 18]" in caplog.text
