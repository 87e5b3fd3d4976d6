"""R2KDTrainer behaviour on tiny models: teacher handling, logged terms, GA, pruning, bad inputs."""

import logging
import math

import pytest
import torch

from helpers import BlobImages, TinyNet
from transformers import PretrainedConfig
from r2kd_hf import R2KDConfig, R2KDTrainer, TeacherPruningCallback
from r2kd_hf.pruning import prune_teacher_copy


def make_config(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, per_device_eval_batch_size=32, num_train_epochs=1,
        learning_rate=0.05, optim="sgd", use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
        disable_tqdm=True, validate_teacher=False, seed=0,
    )
    defaults.update(overrides)
    return R2KDConfig(**defaults)


def test_teacher_frozen_in_eval_mode_and_never_optimised(tmp_path):
    teacher, student = TinyNet(seed=1), TinyNet(seed=2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=make_config(tmp_path, second_view="cutmix"),
                          train_dataset=BlobImages(), eval_dataset=BlobImages(32, seed=1))
    trainer.train()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised.isdisjoint({id(p) for p in teacher.parameters()})
    assert teacher.calls and all(not c["training"] and not c["grad"] for c in teacher.calls)
    teacher.calls.clear()
    metrics = trainer.evaluate()
    assert teacher.calls == []  # the teacher is skipped during evaluation
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


def test_every_term_is_logged_and_finite(tmp_path):
    weights = dict(ce_weight=0.5, kd_weight=1.5, aug_kd_weight=0.25)

    def logs(every):
        trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1), train_dataset=BlobImages(64),
                              args=make_config(tmp_path / str(every), second_view="mixup", logging_steps=every, **weights))
        trainer.train()
        return [e for e in trainer.state.log_history if "loss" in e]

    each, pairs = logs(1), logs(2)  # 4 steps; the same run logged every step and every second step
    assert len(each) == 4 and len(pairs) == 2
    terms = ("ce", "kd_value", "kd_rank", "aug_kd_value", "aug_kd_rank")
    for entry in each + pairs:
        assert all(math.isfinite(entry[t]) for t in terms), entry
        assert "aug_ce" not in entry  # the augmented view gets KD terms only
        # the loss is the weighted sum of its logged terms
        total = (0.5 * entry["ce"] + 1.5 * (entry["kd_value"] + entry["kd_rank"])
                 + 0.25 * (entry["aug_kd_value"] + entry["aug_kd_rank"]))
        assert entry["loss"] == pytest.approx(total, rel=1e-3)
    for k, entry in enumerate(pairs):  # each logged value is the mean over its logging interval, not a sum or the last
        for t in terms:
            assert entry[t] == pytest.approx((each[2 * k][t] + each[2 * k + 1][t]) / 2, rel=1e-4, abs=1e-6), (t, k)


def test_augmented_view_reaches_student_and_teacher_identically(tmp_path):
    teacher, student = TinyNet(seed=1), TinyNet(seed=2)
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=make_config(tmp_path, second_view="cutout", max_steps=1),
                          train_dataset=BlobImages(16))
    trainer.train()
    # student: clean then augmented call; teacher: one fused call over [clean, augmented]
    clean, augmented = student.calls[-2]["input"], student.calls[-1]["input"]
    fused = teacher.calls[-1]["input"]
    assert not torch.equal(clean, augmented)
    assert torch.equal(fused[: len(clean)], clean) and torch.equal(fused[len(clean):], augmented)


def test_gradient_accumulation_matches_full_batch(tmp_path):
    """KD + CE has no batch-wise term: GA=2 with half batches must give the same update as one full batch."""
    data = BlobImages(8)
    results = []
    for batch, accumulation in ((8, 1), (4, 2)):
        student = TinyNet(seed=3)
        args = make_config(tmp_path / f"ga{accumulation}", loss_name="kd", per_device_train_batch_size=batch,
                           gradient_accumulation_steps=accumulation, learning_rate=0.5, max_grad_norm=0.0, lr_scheduler_type="constant")
        trainer = R2KDTrainer(model=student, teacher_model=TinyNet(seed=1), args=args, train_dataset=data)
        trainer.train()
        assert trainer.state.global_step == 1
        results.append({k: v.clone() for k, v in student.state_dict().items()})
    changed = any(not torch.equal(TinyNet(seed=3).state_dict()[k], v) for k, v in results[0].items())
    assert changed
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=1e-5, atol=1e-6)


def test_pruned_teacher_sparsity_and_target_mix(tmp_path):
    teacher = TinyNet(seed=1, width=16)
    args = make_config(tmp_path, prune_teacher=True, pruned_teacher_bn="running_stats", max_steps=1, validate_teacher=True)
    trainer = R2KDTrainer(model=TinyNet(seed=2, width=16), teacher_model=teacher, args=args, train_dataset=BlobImages(),
                          eval_dataset=BlobImages(16, seed=5))
    trainer.train()
    pruned = trainer.teacher.pruned
    for module_name in ("conv", "fc"):
        weight = getattr(pruned, module_name).weight
        expected = round(0.1 * weight.numel()) / weight.numel()
        assert (weight == 0).float().mean().item() == pytest.approx(expected)
        # layer-wise: the zeros are this layer's own smallest magnitudes
        original = getattr(teacher, module_name).weight.abs().flatten()
        threshold = original.kthvalue(round(0.1 * original.numel())).values
        assert torch.all(original[weight.flatten() == 0] <= threshold)
    assert torch.equal(teacher.conv.bias, pruned.conv.bias)
    x = BlobImages(4)[0]["pixel_values"].unsqueeze(0).repeat(4, 1, 1, 1)
    target, _, _ = trainer.teacher.targets(x, None)
    with torch.no_grad():
        expected = 0.7 * teacher(x) + 0.3 * pruned(x)
    torch.testing.assert_close(target, expected)
    for key in ("teacher_eval_accuracy", "pruned_teacher_eval_accuracy", "teacher_mix_eval_accuracy", "pruned_teacher_sparsity"):
        assert any(key in e for e in trainer.state.log_history), key


@pytest.mark.parametrize("mode, expect_training", [("batch_stats", True), ("running_stats", False)])
def test_pruned_teacher_batchnorm_modes(tmp_path, mode, expect_training):
    args = make_config(tmp_path, prune_teacher=True, pruned_teacher_bn=mode, max_steps=1, second_view="cutmix")
    trainer = R2KDTrainer(model=TinyNet(seed=2, batch_norm=True), teacher_model=TinyNet(seed=1, batch_norm=True), args=args,
                          train_dataset=BlobImages())
    trainer.train()
    expected_calls = 2 if mode == "batch_stats" else 1
    # the copy inherits the teacher's call record up to the moment it was made (none: pruning runs first)
    copied, pruned_calls = trainer.teacher.pruned.calls[:-expected_calls], trainer.teacher.pruned.calls[-expected_calls:]
    assert len(copied) == 0
    # reference mode runs the two views in separate forwards (batch statistics), eval mode fuses them
    assert all(c["training"] is expect_training for c in pruned_calls)
    assert len(pruned_calls[-1]["input"]) == (16 if mode == "batch_stats" else 32)
    assert all(not c["training"] for c in trainer.teacher.module.calls)


def test_pruning_happens_once(tmp_path):
    args = make_config(tmp_path, prune_teacher=True, max_steps=1)
    trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1), args=args, train_dataset=BlobImages())
    trainer.train()
    first = trainer.teacher.pruned
    callback = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TeacherPruningCallback))
    callback.on_train_begin(trainer.args, trainer.state, trainer.control)
    assert trainer.teacher.pruned is first
    assert (tmp_path / "out" / "teacher_pruning.json").exists()


def test_resume_rebuilds_the_same_pruned_teacher(tmp_path):
    def make(max_steps):
        args = make_config(tmp_path, prune_teacher=True, max_steps=max_steps, save_strategy="steps", save_steps=2)
        return R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1), args=args, train_dataset=BlobImages())

    first = make(2)
    first.train()
    resumed = make(4)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    assert resumed.teacher.pruning_report["fingerprint"] == first.teacher.pruning_report["fingerprint"]
    changed_teacher = make(4)
    with torch.no_grad():
        changed_teacher.teacher.module.fc.weight.mul_(2.0)
    with pytest.raises(RuntimeError, match="differs from the one this run started with"):
        changed_teacher.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))


def test_near_chance_teacher_warns(tmp_path, caplog):
    args = make_config(tmp_path, validate_teacher=True, max_steps=1)
    constant = TinyNet(seed=1)
    with torch.no_grad():
        constant.fc.weight.zero_()
        constant.fc.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=constant, args=args, train_dataset=BlobImages(),
                          eval_dataset=BlobImages(32, seed=4))
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert "NEAR CHANCE" in caplog.text
    from r2kd_hf.cards import teacher_metrics

    assert teacher_metrics(trainer.state.log_history)["teacher_eval_accuracy"] == pytest.approx(0.25)


def test_class_count_mismatch_fails_at_construction(tmp_path):
    with pytest.raises(ValueError, match="Class counts disagree .*teacher 5"):
        R2KDTrainer(model=TinyNet(num_classes=4), teacher_model=TinyNet(num_classes=5), args=make_config(tmp_path),
                    train_dataset=BlobImages())


def test_missing_teacher_path_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file or folder .*no_such_teacher' exists"):
        R2KDTrainer(model=TinyNet(), teacher_model=str(tmp_path / "no_such_teacher"), args=make_config(tmp_path))


@pytest.mark.parametrize("keys, missing", [(("image", "labels"), "pixel_values"), (("pixel_values", "label"), "labels")])
def test_batch_without_required_keys_fails_before_training(tmp_path, keys, missing):
    student = TinyNet(seed=2)
    trainer = R2KDTrainer(model=student, teacher_model=TinyNet(seed=1), args=make_config(tmp_path),
                          train_dataset=BlobImages(keys=keys))
    with pytest.raises(KeyError, match=f"no '{missing}'"):
        trainer.train()
    assert student.calls == []  # nothing ran


def test_teacher_required_unless_ce_only(tmp_path):
    with pytest.raises(ValueError, match="needs a `teacher_model`"):
        R2KDTrainer(model=TinyNet(), args=make_config(tmp_path))
    trainer = R2KDTrainer(model=TinyNet(), args=make_config(tmp_path, loss_name="none", max_steps=2), train_dataset=BlobImages())
    trainer.train()
    assert all("ce" in e for e in trainer.state.log_history if "loss" in e)


def test_teacher_inputs_are_renormalised_when_configs_differ():
    import timm

    from r2kd_hf.introspection import data_config_of
    from r2kd_hf.teacher import Teacher, input_transform

    student = timm.create_model("cifar_resnet8", num_classes=10)
    teacher = timm.create_model("resnet18", num_classes=10, pretrained=False)
    transform = input_transform(teacher, data_config_of(student))
    assert transform is not None
    assert input_transform(timm.create_model("cifar_resnet20", num_classes=10), data_config_of(student)) is None
    wrapped = Teacher(teacher, renormalize=transform)
    x = torch.randn(2, 3, 32, 32)
    s_mean, s_std = torch.tensor(student.pretrained_cfg["mean"]).view(1, 3, 1, 1), torch.tensor(student.pretrained_cfg["std"]).view(1, 3, 1, 1)
    t_mean, t_std = torch.tensor(teacher.pretrained_cfg["mean"]).view(1, 3, 1, 1), torch.tensor(teacher.pretrained_cfg["std"]).view(1, 3, 1, 1)
    raw = x * s_std + s_mean
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), teacher((raw - t_mean) / t_std), rtol=1e-4, atol=1e-4)


def test_label_order_mismatch_is_reported(tmp_path):
    import datasets
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    config = TimmWrapperConfig(architecture="cifar_resnet8", num_labels=2, id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1})
    teacher = TimmWrapperForImageClassification(config)
    dataset = datasets.Dataset.from_dict({"labels": [0, 1]}, features=datasets.Features({"labels": datasets.ClassLabel(names=["dog", "cat"])}))
    with pytest.raises(ValueError, match="label orders differ"):
        R2KDTrainer(model=TinyNet(num_classes=2), teacher_model=teacher, args=make_config(tmp_path), train_dataset=dataset)


def test_fused_teacher_views_equal_separate_forwards(tmp_path):
    teacher = TinyNet(seed=1, batch_norm=True)
    targets = []
    for fuse in (True, False):
        args = make_config(tmp_path / str(fuse), fuse_teacher_views=fuse, prune_teacher=True, pruned_teacher_bn="running_stats")
        trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=teacher, args=args, train_dataset=BlobImages())
        trainer.teacher.add_pruned_copy(*prune_teacher_copy(trainer.teacher.module, "l1_unstructured", 0.1))
        x = torch.stack([BlobImages(8)[i]["pixel_values"] for i in range(8)])
        targets.append(trainer.teacher.targets(x, x.flip(-1))[:2])
    for fused, separate in zip(targets[0], targets[1]):
        torch.testing.assert_close(fused, separate, rtol=1e-5, atol=1e-5)


def test_optimisation_defaults_follow_the_reference(tmp_path):
    """No clipping, and weight decay on every parameter (biases, BatchNorm) as the reference's plain SGD."""
    args = make_config(tmp_path, weight_decay=5e-4, max_steps=1)
    assert args.max_grad_norm == 0.0 and args.weight_decay_all_parameters
    student = TinyNet(seed=2, batch_norm=True)
    trainer = R2KDTrainer(model=student, teacher_model=TinyNet(seed=1), args=args, train_dataset=BlobImages(16))
    trainer.create_optimizer()
    decayed = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] == 5e-4 for p in g["params"]}
    assert decayed == {id(p) for p in student.parameters()}
    # the transformers grouping stays available
    args = make_config(tmp_path, weight_decay=5e-4, max_steps=1, weight_decay_all_parameters=False)
    trainer = R2KDTrainer(model=TinyNet(seed=2, batch_norm=True), teacher_model=TinyNet(seed=1), args=args, train_dataset=BlobImages(16))
    trainer.create_optimizer()
    decayed = [p for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    assert trainer.model.conv.bias.data_ptr() not in {p.data_ptr() for p in decayed}


def test_losses_get_the_epoch_counted_from_one_like_mdistiller(tmp_path):
    import r2kd_hf

    seen = []

    @r2kd_hf.register_loss("test_epoch_probe", needs=("epoch",))
    def probe(student_logits, teacher_logits, epoch=None):
        seen.append(epoch)
        return {"loss": student_logits.sum() * 0.0}

    trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1),
                          args=make_config(tmp_path, loss_name="test_epoch_probe", num_train_epochs=2), train_dataset=BlobImages(32))
    seen.clear()  # the config check ran the loss once
    trainer.train()
    assert seen == [1, 1, 2, 2]  # 2 steps per epoch; DKD's warm-up min(epoch / 20, 1) starts at 1/20


def test_cutmixpick_ranks_by_the_raw_teacher_not_the_pruned_mix(tmp_path):
    teacher = TinyNet(seed=1, batch_norm=True)
    trainer = R2KDTrainer(model=TinyNet(seed=2), teacher_model=teacher,
                          args=make_config(tmp_path, second_view="cutmixpick", prune_teacher=True, max_steps=1),
                          train_dataset=BlobImages(16))
    received = []
    original = trainer.second_view.__class__.__call__

    def spy(view, x, teacher_logits=None):
        received.append((x.clone(), teacher_logits.clone()))
        return original(view, x, teacher_logits=teacher_logits)

    trainer.second_view.__class__.__call__ = spy
    try:
        trainer.train()
    finally:
        trainer.second_view.__class__.__call__ = original
    clean, logits = received[0]
    with torch.no_grad():
        raw = trainer.teacher(clean)
    torch.testing.assert_close(logits, raw)


METRIC_MODULE = '''
import datasets
import evaluate


class LocalAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="accuracy", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("int64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        return {"accuracy": sum(int(p == r) for p, r in zip(predictions, references)) / len(references)}
'''


def test_a_compute_metrics_built_with_evaluate_works_with_the_trainer(tmp_path):
    """evaluate (an optional extra) plugs in as transformers users expect; offline, from a local metric module."""
    evaluate = pytest.importorskip("evaluate")
    folder = tmp_path / "local_accuracy"
    folder.mkdir()
    (folder / "local_accuracy.py").write_text(METRIC_MODULE)
    metric = evaluate.load(str(folder))

    def compute_metrics(prediction):
        return metric.compute(predictions=prediction.predictions.argmax(-1), references=prediction.label_ids)

    data = BlobImages(32)
    runs = {}
    for name, metrics_fn in (("evaluate", compute_metrics), ("built-in", None)):
        args = R2KDConfig(output_dir=str(tmp_path / name), loss_name="none", max_steps=2, per_device_train_batch_size=8,
                          use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True, seed=0)
        torch.manual_seed(0)
        trainer = R2KDTrainer(model=TinyNet(4), args=args, train_dataset=data, compute_metrics=metrics_fn)
        trainer.train()
        runs[name] = trainer.evaluate(BlobImages(16, seed=1))
    assert runs["evaluate"]["eval_accuracy"] == pytest.approx(runs["built-in"]["eval_accuracy"])


@pytest.mark.parametrize("loss_name", ["none", "r2kd"])
def test_label_smoothing_factor_applies_to_the_cross_entropy_term(tmp_path, loss_name):
    """TrainingArguments.label_smoothing_factor acts on the CE term (train and eval) as in Trainer; reference: 0."""
    data = BlobImages(16)
    x, y = torch.stack([data[i]["pixel_values"] for i in range(16)]), data.labels
    args = make_config(tmp_path, loss_name=loss_name, label_smoothing_factor=0.2)
    with pytest.raises(ValueError, match="label_smoothing_factor needs a model with a transformers config"):
        R2KDTrainer(model=TinyNet(seed=2), teacher_model=TinyNet(seed=1), train_dataset=data, args=args)
    student = TinyNet(seed=2)
    student.config = PretrainedConfig(num_labels=4)  # what Trainer reads when label smoothing is on
    trainer = R2KDTrainer(model=student, teacher_model=TinyNet(seed=1) if loss_name != "none" else None, train_dataset=data,
                          args=args)
    logits = student(x)
    smoothed = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.2)
    _, terms = trainer.distillation_step(student, x, y, logits)
    torch.testing.assert_close(terms["ce"], smoothed)
    assert not torch.allclose(terms["ce"], torch.nn.functional.cross_entropy(logits, y))
    student.eval()
    torch.testing.assert_close(trainer.compute_loss(student, {"pixel_values": x, "labels": y}),
                               torch.nn.functional.cross_entropy(student(x), y, label_smoothing=0.2))
