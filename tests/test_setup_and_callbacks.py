"""The seams of the redesign: the setup layer alone, the callbacks alone, and the trainer paths on ready modules."""

import os
import types

import pytest
import timm
import torch

from helpers import BlobImages, TinyNet
from r2kd_hf import R2KDConfig, R2KDTrainer, Teacher, TeacherPruningCallback
from r2kd_hf.callbacks import TeacherValidationCallback
from r2kd_hf.checks import check_label_agreement, check_one_batch, resolve_data_config
from r2kd_hf.saving import apply_data_config


def test_setup_checks_shapes_and_labels_before_any_trainer():
    batch = {"pixel_values": torch.randn(2, 3, 8, 8), "labels": torch.tensor([0, 1])}
    check_one_batch(TinyNet(num_classes=4), TinyNet(num_classes=4), batch)
    with pytest.raises(ValueError, match="differ in shape"):
        check_one_batch(TinyNet(num_classes=4), TinyNet(num_classes=5), batch)
    with pytest.raises(KeyError, match="needs 'pixel_values' and 'labels'"):
        check_one_batch(TinyNet(), None, {"image": batch["pixel_values"]})
    with pytest.raises(ValueError, match="Class counts disagree"):
        check_label_agreement(TinyNet(num_classes=4), None, ["a", "b"])


def test_one_data_config_is_resolved_and_recorded_on_the_student():
    student = timm.create_model("cifar_resnet8", num_classes=10)
    config = resolve_data_config(student, image_size=64, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    assert config["input_size"] == (3, 64, 64) and config["mean"] == (0.485, 0.456, 0.406)
    apply_data_config(student, config)
    assert student.pretrained_cfg["input_size"] == (3, 64, 64) and student.pretrained_cfg["std"] == (0.229, 0.224, 0.225)


def test_pruning_callback_alone_hands_the_copy_to_the_teacher(tmp_path):
    teacher = TinyNet(seed=1, width=16)
    ensemble = Teacher(teacher, pruned_weight=0.3, pruned_bn="running_stats")
    callback = TeacherPruningCallback(teacher=ensemble)
    args = types.SimpleNamespace(teacher_prune_method="l1_unstructured", teacher_prune_amount=0.1, output_dir=str(tmp_path), should_save=True)
    state = types.SimpleNamespace(global_step=0, log_history=[])
    callback.on_train_begin(args, state, None)
    assert ensemble.pruned is not None and ensemble.pruned is not teacher
    assert state.log_history[-1]["pruned_teacher_sparsity"] == pytest.approx(0.1, abs=0.01)
    x = torch.randn(3, 3, 8, 8)
    target, _, raw = ensemble.targets(x)
    with torch.no_grad():
        torch.testing.assert_close(target, 0.7 * teacher(x) + 0.3 * ensemble.pruned(x))
        torch.testing.assert_close(raw, teacher(x))
    callback.on_train_begin(args, state, None)  # pruned once
    with pytest.raises(RuntimeError, match="already has a pruned teacher"):
        ensemble.add_pruned_copy(TinyNet(), {})


class EngineLike(torch.nn.Module):
    """What DeepSpeed hands back: a wrapper with `.module` (copying it would copy the engine, not the network)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)


def test_pruning_under_an_engine_copies_the_bare_module_and_places_the_copy(tmp_path):
    teacher = TinyNet(seed=1, width=16)
    ensemble = Teacher(teacher, pruned_bn="running_stats").place(EngineLike)
    assert isinstance(ensemble.placed, EngineLike) and ensemble.module is teacher
    callback = TeacherPruningCallback(teacher=ensemble)
    args = types.SimpleNamespace(teacher_prune_method="l1_unstructured", teacher_prune_amount=0.1, output_dir=str(tmp_path), should_save=True)
    callback.on_train_begin(args, types.SimpleNamespace(global_step=0, log_history=[]), None)
    assert isinstance(ensemble.pruned, EngineLike) and isinstance(ensemble.pruned.module, TinyNet)  # placed once, not nested
    pruned_weights = [p for n, p in ensemble.pruned.module.named_parameters() if n.endswith("weight") and p.dim() > 1]
    assert all(0.05 < float((p == 0).float().mean()) < 0.15 for p in pruned_weights)
    assert all(float((p == 0).float().mean()) == 0 for n, p in teacher.named_parameters() if p.dim() > 1)  # the teacher is untouched


def test_sharded_save_keeps_the_pruning_record(tmp_path, monkeypatch):
    """Under DeepSpeed/FSDP Trainer gathers and writes the weights; r2kd_pruning.json must be written beside them."""
    import transformers

    from r2kd_hf.loading import create_timm_classifier
    from r2kd_hf.pruning import prune_student

    student = create_timm_classifier("cifar_resnet8", 4, {i: str(i) for i in range(4)})
    prune_student(student, 0.5, (3, 8, 8))
    trainer = R2KDTrainer(model=student, args=R2KDConfig(output_dir=str(tmp_path), loss_name="none", use_cpu=True, report_to=[]),
                          train_dataset=BlobImages(8))
    gathered = []

    def gather_and_write(self, output_dir=None, _internal_call=False):  # what Trainer does: the folder and the weights
        os.makedirs(output_dir, exist_ok=True)
        gathered.append(output_dir)

    monkeypatch.setattr(transformers.Trainer, "save_model", gather_and_write)
    trainer.is_fsdp_enabled = True
    trainer.save_model(str(tmp_path / "final"))
    assert gathered == [str(tmp_path / "final")] and (tmp_path / "final" / "r2kd_pruning.json").exists()


def test_validation_callback_alone_measures_the_teacher():
    ensemble = Teacher(TinyNet(seed=1))
    callback = TeacherValidationCallback(ensemble, BlobImages(32, seed=3), batch_size=16)
    state = types.SimpleNamespace(global_step=0, log_history=[], is_world_process_zero=True)
    callback.on_train_begin(None, state, None)
    data = BlobImages(32, seed=3)  # the accuracy by hand: the teacher in eval mode on every image
    teacher = TinyNet(seed=1).eval()
    with torch.no_grad():
        predicted = teacher(data.images).argmax(1)
    expected = float((predicted == data.labels).float().mean())
    assert 0.0 < expected < 1.0  # a measurement that can be wrong either way
    assert state.log_history[-1]["teacher_eval_accuracy"] == pytest.approx(expected, abs=1e-6)
    other_rank = types.SimpleNamespace(global_step=0, log_history=[], is_world_process_zero=False)
    callback.on_train_begin(None, other_rank, None)  # multi-process: only the main process spends time on it
    assert other_rank.log_history == []


def _config(tmp_path, **overrides):
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, learning_rate=0.1, optim="sgd", use_cpu=True,
                report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, validate_teacher=False, seed=0)
    return R2KDConfig(**{**base, **overrides})


def test_step_schedule_through_the_trainer(tmp_path):
    args = _config(tmp_path, num_train_epochs=3, lr_scheduler_type="constant", lr_decay_epochs=[1, 2], lr_decay_rate=0.5)
    trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1), args=args, train_dataset=BlobImages(32))
    trainer.train()
    rates = {round(e["epoch"], 2): e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e}
    assert rates[0.5] == pytest.approx(0.1) and rates[1.5] == pytest.approx(0.05) and rates[2.5] == pytest.approx(0.025)


def test_teacher_renormalisation_through_the_trainer(tmp_path):
    student = timm.create_model("cifar_resnet8", num_classes=4)
    teacher = timm.create_model("resnet18", num_classes=4, pretrained=False)  # ImageNet normalisation
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=_config(tmp_path, max_steps=1), train_dataset=BlobImages(16, size=32))
    assert trainer.teacher.renormalize is not None
    trainer.train()
    off = R2KDTrainer(model=timm.create_model("cifar_resnet8", num_classes=4), teacher_model=teacher,
                      args=_config(tmp_path, max_steps=1, renormalize_teacher_inputs=False), train_dataset=BlobImages(16, size=32))
    assert off.teacher.renormalize is None


def test_the_teacher_side_is_built_once_from_a_spec(tmp_path):
    """A teacher given as a folder is loaded, frozen and checked when the trainer is built, and never read again:
    the folder can be gone before training, and the card names the spec, not a class."""
    import shutil

    import r2kd_hf
    from helpers import BlobImages
    from r2kd_hf import R2KDConfig, R2KDTrainer
    from r2kd_hf.loading import create_timm_classifier

    labels = {i: f"class_{i}" for i in range(4)}
    r2kd_hf.save_classifier(create_timm_classifier("cifar_resnet8", 4, labels), str(tmp_path / "teacher"))
    args = R2KDConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8, use_cpu=True,
                      report_to="none", save_strategy="no", disable_tqdm=True, validate_teacher=False, prune_teacher=True)
    trainer = R2KDTrainer(model=create_timm_classifier("cifar_resnet8", 4, labels), teacher_model=str(tmp_path / "teacher"),
                          args=args, train_dataset=BlobImages(16))
    teacher = trainer.teacher.module
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    shutil.rmtree(tmp_path / "teacher")
    trainer.train()
    assert trainer.teacher.pruned is not None and trainer.lineage["teacher"] == str(tmp_path / "teacher")
