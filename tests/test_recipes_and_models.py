"""Recipes, the model zoo and model loading."""

import glob
import os

import pytest
import timm
import torch

import r2kd_hf
from r2kd_hf.models import ARCHITECTURES
from r2kd_hf.recipe import load_recipe_file, parse_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "recipes", "**", "*.yaml"), recursive=True)))
def test_every_shipped_recipe_resolves(path):
    model_args, data_args, training_args, info = parse_recipe(["--recipe", path])
    assert training_args.output_dir
    assert "training:" in info["recipe_text"] and "loss_name" in info["recipe_text"]


def test_command_line_overrides_and_print(tmp_path, capsys):
    recipe = os.path.join(ROOT, "recipes", "quickstart.yaml")
    _, data_args, training_args, _ = parse_recipe(["--recipe", recipe, "--learning_rate", "0.3", "--second_view", "mixup", "--max_train_samples", "10"])
    assert training_args.learning_rate == 0.3 and training_args.second_view == "mixup" and data_args.max_train_samples == 10
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe(["--recipe", recipe, "--print_recipe", "--temperature", "2.5"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "temperature: 2.5" in printed and "teacher_prune_amount: 0.1" in printed and "per_device_train_batch_size: 64" in printed


def test_unknown_keys_and_values_are_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="Unknown key 'learning_rat'.*Did you mean learning_rate"):
        load_recipe_file(str(bad))
    bad.write_text("optimiser:\n  lr: 1\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_recipe_file(str(bad))
    with pytest.raises(SystemExit, match="unrecognized arguments: --no_such_flag"):
        parse_recipe(["--recipe", os.path.join(ROOT, "recipes", "quickstart.yaml"), "--no_such_flag", "1"])
    bad.write_text("training:\n  second_view: mosaic\n")
    with pytest.raises(ValueError, match="Unknown second_view 'mosaic'"):
        parse_recipe(["--recipe", str(bad)])
    with pytest.raises(ValueError, match="Unknown rank_mode"):
        parse_recipe(["--loss_kwargs", '{"rank_mode": "hard"}'])


def test_unknown_model_name_is_reported():
    with pytest.raises(ValueError, match="Unknown student model 'resnet1800'.*Close timm names"):
        r2kd_hf.load_model("resnet1800", role="student")


def test_offline_hub_teacher_is_reported():
    with pytest.raises(OSError, match="HF_HUB_OFFLINE is set"):
        r2kd_hf.load_model("some-org/some-teacher", role="teacher")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_zoo_models_build_run_and_round_trip(name, tmp_path):
    from transformers import AutoModelForImageClassification, TimmWrapperConfig, TimmWrapperForImageClassification

    model = timm.create_model(name, num_classes=7).eval()
    for size in (32, 64):
        assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    wrapped = TimmWrapperForImageClassification(TimmWrapperConfig(architecture=name, num_labels=7)).eval()
    wrapped.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, wrapped(x).logits)


def test_zoo_parameter_counts_match_the_literature():
    # CRD / mdistiller table values (millions of parameters, 100 classes)
    expected = {"cifar_resnet56": 0.86, "cifar_resnet20": 0.28, "cifar_resnet32x4": 7.43, "cifar_resnet8x4": 1.23,
                "cifar_wrn_40_2": 2.26, "cifar_wrn_16_2": 0.70, "cifar_vgg13": 9.46, "cifar_vgg8": 3.96}
    for name, millions in expected.items():
        count = sum(p.numel() for p in timm.create_model(name, num_classes=100).parameters()) / 1e6
        assert count == pytest.approx(millions, rel=0.03), name
