"""Recipes, the model zoo and model loading."""

import glob
import json
import os

import pytest
import timm
import torch

import r2kd_hf
from r2kd_hf.models import ARCHITECTURES
from r2kd_hf.app.recipe import load_recipe_file, parse_recipe

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
    with pytest.raises(ValueError, match="Unknown key 'learning_rat'.*Did you mean learning_rate.*--help"):
        load_recipe_file(str(bad))
    bad.write_text("optimiser:\n  lr: 1\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_recipe_file(str(bad))
    with pytest.raises(ValueError, match="Unknown option --no_such_flag on the command line"):
        parse_recipe(["--recipe", os.path.join(ROOT, "recipes", "quickstart.yaml"), "--no_such_flag", "1"])
    with pytest.raises(ValueError, match="Unknown option --learning_rat .*Did you mean --learning_rate"):  # no silent prefixes
        parse_recipe(["--learning_rat", "0.1"])
    bad.write_text("training:\n  second_view: mosaic\n")
    with pytest.raises(ValueError, match="Unknown second_view 'mosaic'"):
        parse_recipe(["--recipe", str(bad)])
    with pytest.raises(ValueError, match="Unknown rank_mode"):
        parse_recipe(["--loss_kwargs", '{"rank_mode": "hard"}'])


def test_unknown_model_name_is_reported():
    with pytest.raises(ValueError, match="Cannot load the student: 'resnet1800' is not a known timm name.*Close timm names.*hf-hub:org/name"):
        r2kd_hf.load_model("resnet1800", role="student")
    with pytest.raises(FileNotFoundError, match="no file or folder 'no/such/dir/x' exists.*checkpoint file"):
        r2kd_hf.load_model("no/such/dir/x", role="teacher")


def test_timm_name_without_weights_gets_one_answer():
    with pytest.raises(ValueError, match="has no pretrained weights.*Give a trained teacher") as info:
        r2kd_hf.load_model("cifar_resnet56", role="teacher")
    assert "HF_HUB_OFFLINE" not in str(info.value)


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


REFERENCE = json.loads(open(os.path.join(ROOT, "tests", "data", "reference_layouts.json")).read())["architectures"]


def conv_linear_macs(model: torch.nn.Module, size: int) -> int:
    """Multiply-accumulates of Conv2d and Linear layers, as the reference figures count them."""
    total = 0

    def hook(module, _, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * per_output
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for handle in handles:
        handle.remove()
    return total


def test_every_reference_architecture_is_covered():
    assert sorted(REFERENCE) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_networks_equal_the_reference_definitions(name):
    """Parameter count, MACs at 32 and 64 px, and every state-dict key and shape of mdistiller's definition."""
    reference = REFERENCE[name]
    model = timm.create_model(name, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == reference["params"]
    assert conv_linear_macs(model, 32) == reference["macs_32"]
    assert conv_linear_macs(model, 64) == reference["macs_64"]
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == reference["state_dict"]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_layout_checkpoints_load_strictly(name, tmp_path):
    """A published-teacher-style checkpoint ({'model': state_dict}, reference key names) loads weights-only and strictly."""
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*shape, generator=generator) if shape else torch.tensor(3) for k, shape in REFERENCE[name]["state_dict"]}
    state = {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in state.items()}
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": state, "epoch": 240, "optimizer": None}, path)
    model = r2kd_hf.load_model(str(path), arch=name)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


VALID_OVERRIDES = ["--loss_name", "R2KD", "--second_view=cutmix", "--learning_rate", "1e-3", "--corruptions", "fog",
                   "brightness", "--mean", "0.5", "0.5", "0.5", "--report_to", "none", "--use_cpu", "--optim", "sgd",
                   "--max_train_samples", "100", "--lr_decay_epochs", "2", "3", "--lr_scheduler_type", "constant",
                   "--warmup_steps", "0", "--eval_strategy", "epoch"]


def test_every_shipped_recipe_parses_with_valid_overrides_and_mistakes_name_the_fix():
    recipes = sorted(glob.glob(os.path.join(ROOT, "recipes", "**", "*.yaml"), recursive=True))
    for path in recipes:
        model_args, data_args, training_args, info = parse_recipe(["--recipe", path, *VALID_OVERRIDES])
        assert training_args.loss_name == "r2kd" and data_args.corruptions == ["fog", "brightness"], path
    parse_recipe(["--loss_name", "none", "--prune_teacher", "false", "--second_view", "none"])
    for argv, message in ((["--loss_name", "r2dk"], "Unknown distillation loss 'r2dk'. Did you mean 'r2kd'?"),
                          (["--learnin_rate", "1"], "Did you mean --learning_rate"),
                          (["--corruptions", "fog", "snowstorm"], "Unknown corruption 'snowstorm'"),
                          (["--second_view", "mosaic"], "Unknown second_view 'mosaic'")):
        with pytest.raises(ValueError, match=message):
            parse_recipe(argv)


@pytest.mark.parametrize("name", ["cifar_resnet8", "cifar_wrn_16_2", "cifar_vgg8", "cifar_mobilenetv2", "cifar_shufflenetv2"])
def test_cifar_networks_carry_what_timm_reads(name):
    """timm's own distillation task and data-config helpers take a cifar_* network like one of timm's."""
    from timm.task import LogitDistillationTask

    student, teacher = timm.create_model(name, num_classes=4), timm.create_model(name, num_classes=4)
    assert student.in_chans == 3
    out = LogitDistillationTask(student, teacher, verbose=False)(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert torch.isfinite(out["loss"]) and out["output"].shape == (2, 4)
    config = timm.data.resolve_data_config(model=student)
    assert config["input_size"] == (3, 32, 32) and len(config["mean"]) == 3


def test_a_missing_recipe_lists_the_shipped_ones():
    from r2kd_hf.app.recipe import find_recipe

    with pytest.raises(FileNotFoundError, match="Recipe 'nosuch' does not exist: it is neither a file nor a shipped recipe.*"
                                                "Shipped recipes .*quickstart"):
        find_recipe("nosuch")
