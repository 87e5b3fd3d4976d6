"""The fast path: the small-image data path (decode once, augment batch-wise on the device) and the teacher options
(precision, channels-last, torch.compile, inference mode), each checked against the plain path."""

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from r2kd_hf import R2KDConfig, R2KDTrainer
from r2kd_hf.data import CorruptImageError, build_transforms, decode_image, load_image_dataset, prepare_dataset
from r2kd_hf.small_images import InMemoryImages, SmallImageTransform, decode_split, in_memory_split
from r2kd_hf.teacher import Teacher, resolve_teacher_precision

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def write_imagefolder(root, size=12, corrupt=False):
    """Two classes of varied colour images at ``size`` px (resized to 16 px by the pipelines)."""
    generator = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                Image.fromarray(generator.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    if corrupt:
        (root / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    return root


def pil_reference(split, size, padding, offsets, flips):
    """The PIL path's training transform with the crop offsets and flips fixed."""
    out = []
    for k in range(len(split)):
        image = T.Resize((size, size))(decode_image(split[k]["image"]))
        image = TF.crop(TF.pad(image, padding), int(offsets[k, 0]), int(offsets[k, 1]), size, size)
        if flips[k]:
            image = TF.hflip(image)
        out.append(T.Normalize(MEAN, STD)(T.ToTensor()(image)))
    return torch.stack(out)


@pytest.mark.parametrize("source_size, size, padding", [(12, 16, 2), (16, 16, 4), (32, 32, 4)])
def test_small_image_path_is_pixel_identical_to_the_pil_path(tmp_path, source_size, size, padding):
    data = load_image_dataset(str(write_imagefolder(tmp_path / "imgs", source_size)))
    split = data.splits["train"]
    images, labels, skipped = decode_split(split, size)
    assert images.dtype == np.uint8 and images.shape == (len(split), size, size, 3) and not skipped
    assert labels == split["labels"]
    transform = SmallImageTransform(MEAN, STD, padding)
    offsets, flips = transform.draw(len(split), torch.Generator().manual_seed(3))
    assert flips.any() and not flips.all() and offsets.max() > 0  # the check covers flipped and shifted images
    ours = transform.normalise(transform.crop_and_flip(torch.from_numpy(images), offsets, flips))
    assert torch.equal(ours, pil_reference(split, size, padding, offsets, flips))
    # evaluation: normalisation only, equal to the PIL eval transform
    _, eval_tf = build_transforms({"input_size": (3, size, size), "mean": MEAN, "std": STD}, style="cifar")
    assert torch.equal(transform(torch.from_numpy(images), train=False), torch.stack([eval_tf(decode_image(v)) for v in split["image"]]))


def test_crop_offsets_and_flips_have_the_pil_path_distribution():
    padding, draws = 4, 40_000
    offsets, flips = SmallImageTransform(MEAN, STD, padding).draw(draws, torch.Generator().manual_seed(0))
    crop, reference = T.RandomCrop(32, padding=padding), []
    torch.manual_seed(0)
    for _ in range(draws // 10):  # torchvision's own draws: get_params on the padded 40x40 image
        reference.append(crop.get_params(torch.empty(3, 32 + 2 * padding, 32 + 2 * padding), (32, 32)))
    reference = torch.tensor(reference)[:, :2]
    for axis in range(2):
        ours = torch.bincount(offsets[:, axis], minlength=2 * padding + 1).float() / draws
        theirs = torch.bincount(reference[:, axis], minlength=2 * padding + 1).float() / len(reference)
        assert len(ours) == len(theirs) == 2 * padding + 1  # the same support, 0..2p
        assert (ours - 1 / (2 * padding + 1)).abs().max() < 0.01  # uniform (4 std of a bin's frequency)
        assert (ours - theirs).abs().max() < 0.03
    assert abs(flips.float().mean().item() - 0.5) < 0.01  # RandomHorizontalFlip(p=0.5)
    assert abs(torch.corrcoef(torch.stack([offsets[:, 0].float(), offsets[:, 1].float(), flips.float()]))[0, 1:]).max() < 0.02


def test_corrupt_image_is_found_before_training_or_skipped_and_listed(tmp_path):
    data = load_image_dataset(str(write_imagefolder(tmp_path / "imgs", corrupt=True)))
    with pytest.raises(CorruptImageError, match=r"broken.png.*skip_corrupt_images"):
        in_memory_split(data.splits["train"], 16, MEAN, STD, 2)
    dataset, skipped = in_memory_split(data.splits["train"], 16, MEAN, STD, 2, skip_corrupt_images=True)
    assert len(dataset) == len(data.splits["train"]) - 1 and len(skipped) == 1 and "broken.png" in skipped[0]["problem"]


def test_decoded_images_are_cached_on_disk(tmp_path):
    data = load_image_dataset(str(write_imagefolder(tmp_path / "imgs")))
    first = decode_split(data.splits["train"], 16, cache_dir=str(tmp_path / "cache"))
    cached = os.listdir(tmp_path / "cache")
    assert len(cached) == 1 and cached[0].endswith(".npz")
    second = decode_split(data.splits["train"], 16, cache_dir=str(tmp_path / "cache"))
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]
    with pytest.raises(ValueError, match="up to 64 px.*small_image_path: false"):
        decode_split(data.splits["train"], 96)


# ---------------------------------------------------------------------------------------------- the teacher options
def trained_digits_teacher():
    """A small CNN trained for a few steps on real images (digits), so that its logits are confident."""
    data = load_image_dataset("digits")
    train_tf, _ = build_transforms({"input_size": (3, 32, 32), "mean": MEAN, "std": STD}, style="cifar")
    prepared = prepare_dataset(data.splits["train"].select(range(256)), train_tf)
    x = torch.stack([prepared[i]["pixel_values"] for i in range(256)])
    y = torch.tensor(data.splits["train"]["labels"][:256])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(60):
        batch = slice((step * 64) % 256, (step * 64) % 256 + 64)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), x[:128]


def test_every_teacher_option_matches_the_eager_fp32_logits(caplog):
    teacher, batch = trained_digits_teacher()
    reference = Teacher(teacher).targets(batch)[0]
    assert reference.dtype == torch.float32 and not reference.is_inference()
    # channels-last: the same convolutions in another memory layout, fp32 rounding only
    channels_last = Teacher(teacher.to(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last.targets(batch.contiguous(memory_format=torch.channels_last))[0], reference, atol=1e-5, rtol=1e-5)
    teacher = teacher.to(memory_format=torch.contiguous_format)
    # bf16 autocast: a real batch, argmax agreement and a relative bound
    bf16 = Teacher(teacher, precision=resolve_teacher_precision("bf16", torch.device("cpu"))).targets(batch)[0]
    assert bf16.dtype == torch.float32
    assert (bf16.argmax(1) == reference.argmax(1)).float().mean() >= 0.97
    assert (bf16 - reference).norm() / reference.norm() < 0.03
    # torch.compile (or, where this machine cannot compile, the eager fallback with one warning)
    with caplog.at_level(logging.INFO, logger="r2kd_hf.teacher"):
        compiled = Teacher(teacher, compile_mode="default")
        torch.testing.assert_close(compiled.targets(batch)[0], reference, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(compiled.targets(batch[:7])[0], reference[:7], atol=1e-4, rtol=1e-4)  # a short last batch
    messages = [r.getMessage() for r in caplog.records]
    # the first call says why the first step waits, once (the troubleshooting table quotes it)
    assert len([m for m in messages if m.startswith(f"Compiling {type(teacher).__name__} with torch.compile (mode default)")]) == 1
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING and "compile" in r.getMessage()]) <= 1


def test_fp32_teachers_stay_fp32_inside_the_students_mixed_precision():
    """Trainer runs compute_loss under autocast when bf16/fp16 is on: teacher_precision='fp32' must still mean fp32."""
    teacher, batch = trained_digits_teacher()
    reference = Teacher(teacher).targets(batch)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what Trainer(bf16=True) wraps the step in
        assert teacher(batch).dtype == torch.bfloat16  # the ambient autocast does reach a bare forward
        fp32 = Teacher(teacher).targets(batch)[0]
        predictions = Teacher(teacher).predictions(batch)["teacher"]
        bf16 = Teacher(teacher, precision=torch.bfloat16).targets(batch)[0]
    torch.testing.assert_close(fp32, reference, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(predictions, reference, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(bf16, reference, atol=1e-6, rtol=1e-6)  # bf16 teachers are still bf16 there


def test_targets_are_ordinary_tensors_usable_in_backward():
    teacher, batch = trained_digits_teacher()
    target, _, raw = Teacher(teacher).targets(batch)
    student_logits = torch.randn(len(batch), 10, requires_grad=True)
    (student_logits * target).sum().backward()  # an inference tensor here would raise "cannot be saved for backward"
    assert torch.equal(student_logits.grad, target) and not raw.is_inference()


def test_unavailable_options_warn_once_and_fall_back(monkeypatch, caplog):
    teacher, batch = trained_digits_teacher()
    reference = Teacher(teacher).targets(batch)[0]

    def broken_compile(module, mode=None):
        def fail(*args, **kwargs):
            raise RuntimeError("InductorError: no working C++ compiler found")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING, logger="r2kd_hf.teacher"):
        ensemble = Teacher(teacher, compile_mode="max-autotune")
        for _ in range(3):
            torch.testing.assert_close(ensemble.targets(batch)[0], reference)
    warnings = [r.getMessage() for r in caplog.records if "compile" in r.getMessage()]
    assert len(warnings) == 1 and "run eager" in warnings[0]
    assert resolve_teacher_precision("auto", torch.device("cpu")) is None  # no bf16 default on CPUs
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("unsupported dtype")))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r2kd_hf.teacher"):
        assert resolve_teacher_precision("fp16", torch.device("cpu")) is None
    assert any("fp16 is not available" in r.getMessage() and "fp32" in r.getMessage() for r in caplog.records)


def test_bad_fast_path_values_are_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="teacher_precision.*fp64.*fp32, bf16, fp16, auto"):
        R2KDConfig(output_dir=str(tmp_path), teacher_precision="fp64")
    with pytest.raises(ValueError, match="teacher_compile_mode.*turbo"):
        R2KDConfig(output_dir=str(tmp_path), teacher_compile_mode="turbo")


def _run(tmp_path, name, max_steps, resume=None, in_memory=True, **overrides):
    import timm

    import r2kd_hf  # noqa: F401  (cifar_* networks)

    data = load_image_dataset(str(write_imagefolder(tmp_path / "imgs", 16)) if not (tmp_path / "imgs").exists() else str(tmp_path / "imgs"))
    train_tf, eval_tf = build_transforms({"input_size": (3, 16, 16), "mean": MEAN, "std": STD}, style="cifar", crop_padding=2)
    train = in_memory_split(data.splits["train"], 16, MEAN, STD, 2)[0] if in_memory else prepare_dataset(data.splits["train"], train_tf)
    torch.manual_seed(0)
    student, teacher = timm.create_model("cifar_resnet8", num_classes=2), timm.create_model("cifar_resnet8", num_classes=2)
    args = R2KDConfig(
        output_dir=str(tmp_path / name), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=0.05, optim="sgd",
        save_strategy="steps", save_steps=2, logging_steps=1, report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
        loss_name="r2kd", second_view="cutmix", prune_teacher=True, validate_teacher=False, **overrides,
    )
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=train,
                          eval_dataset=prepare_dataset(data.splits["eval"], eval_tf))
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_a_run_with_every_fast_option_trains_saves_and_resumes(tmp_path):
    options = dict(teacher_precision="bf16", channels_last=True, compile_teachers=True)
    full = _run(tmp_path, "full", 4, **options)
    assert full.teacher.precision == torch.bfloat16 and full.channels_last
    assert full.teacher.pruned is not None and full.device_transform is not None
    losses = [e["loss"] for e in full.state.log_history if "loss" in e]
    assert len(losses) == 4 and all(np.isfinite(losses))
    full.save_model()
    from r2kd_hf import load_student
    from r2kd_hf.introspection import logits_of

    reloaded = load_student(str(tmp_path / "full"))
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(logits_of(reloaded.eval()(x)), logits_of(full.accelerator.unwrap_model(full.model).eval()(x)))
    resumed = _run(tmp_path, "resumed", 4, resume=str(tmp_path / "full" / "checkpoint-2"), **options)
    assert resumed.state.global_step == 4
    resumed_losses = [e["loss"] for e in resumed.state.log_history if "loss" in e]
    assert resumed_losses[-2:] == losses[-2:]  # the small-image path's crops are a function of (seed, step)
    # exact resume: the same final weights as the uninterrupted run (data order, crops, CutMix, pruned teacher, schedule)
    final, again = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(final[k], again[k]) for k in final), [k for k in final if not torch.equal(final[k], again[k])][:3]


def test_uint8_batches_without_a_device_transform_get_an_actionable_error(tmp_path):
    data = load_image_dataset(str(write_imagefolder(tmp_path / "imgs", 16)))
    train, _ = in_memory_split(data.splits["train"], 16, MEAN, STD, 2)
    plain = InMemoryImages(train.images.numpy(), train.labels.tolist(), train.device_transform)
    plain.device_transform = None
    from helpers import TinyNet

    trainer = R2KDTrainer(model=TinyNet(2), args=R2KDConfig(output_dir=str(tmp_path / "o"), loss_name="none", use_cpu=True,
                                                            report_to="none", max_steps=1), train_dataset=plain)
    with pytest.raises(ValueError, match="uint8 images.*device_transform.*in_memory_split"):
        trainer.train()


# ---------------------------------------------------------------------------------------------- the student's EMA
def _ema_run(tmp_path, name, max_steps, resume=None, decay=0.5, save_steps=2):
    from helpers import BlobImages, TinyNet
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):  # the live weights after every optimiser step, in callback order before the EMA's
        def __init__(self):
            self.weights = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    snapshots = Snapshots()
    torch.manual_seed(0)
    args = R2KDConfig(output_dir=str(tmp_path / name), max_steps=max_steps, per_device_train_batch_size=8, learning_rate=0.1,
                      optim="sgd", loss_name="none", use_cpu=True, report_to="none", disable_tqdm=True, seed=0,
                      save_strategy="steps", save_steps=save_steps, student_ema_decay=decay, save_ema_student=True)
    trainer = R2KDTrainer(model=TinyNet(4, batch_norm=True), args=args, train_dataset=BlobImages(64), callbacks=[snapshots])
    initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(resume_from_checkpoint=resume)
    return trainer, initial, snapshots.weights


def test_student_ema_equals_a_hand_computation_and_survives_resume(tmp_path):
    full, initial, steps = _ema_run(tmp_path, "full", 4)
    expected = {k: v.clone().float() if v.is_floating_point() else v.clone() for k, v in initial.items()}
    for weights in steps:
        for k, v in weights.items():
            expected[k] = 0.5 * expected[k] + 0.5 * v if v.is_floating_point() else v.clone()
    for k, v in expected.items():
        torch.testing.assert_close(full.student_ema.shadow[k], v, rtol=0, atol=1e-6)
    assert not torch.equal(full.student_ema.shadow["fc.weight"], full.model.state_dict()["fc.weight"])  # an average, not a copy
    assert os.path.exists(tmp_path / "full" / "checkpoint-2" / "student_ema.safetensors")
    metrics = full.evaluate(__import__("helpers").BlobImages(16, seed=1))
    assert "eval_accuracy" in metrics and "eval_ema_accuracy" in metrics
    full.save_model()  # save_ema_student: the final folder holds the average, the checkpoints the live weights
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "full" / "model.safetensors"))
    assert torch.equal(saved["fc.weight"], full.student_ema.shadow["fc.weight"])
    resumed, _, _ = _ema_run(tmp_path, "resumed", 4, resume=str(tmp_path / "full" / "checkpoint-2"))
    for k, v in full.student_ema.shadow.items():
        assert torch.equal(resumed.student_ema.shadow[k], v), k  # the same average as the uninterrupted run


def test_a_pruned_student_trains_on_the_small_image_path_with_a_short_last_batch(tmp_path):
    """Regression: channels-last-strided batches from the device transform crashed (SIGSEGV) oneDNN convolutions of a
    pruned student with odd channel counts on CPU; the transform now hands over contiguous NCHW like the PIL path."""
    import r2kd_hf
    from r2kd_hf.loading import create_timm_classifier

    data = load_image_dataset(str(write_imagefolder(tmp_path / "imgs", 16)))
    train, _ = in_memory_split(data.splits["train"], 16, MEAN, STD, 2)
    labels = {0: "cat", 1: "dog"}
    student = create_timm_classifier("cifar_resnet8", 2, labels)
    r2kd_hf.prune_student(student, 0.5, (3, 16, 16))
    x = train.device_transform(train.images[:5], train=True, generator=torch.Generator().manual_seed(0))
    assert x.is_contiguous()
    args = R2KDConfig(output_dir=str(tmp_path / "o"), loss_name="kd", num_train_epochs=2, per_device_train_batch_size=5,
                      use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True, validate_teacher=False)
    trainer = R2KDTrainer(model=student, teacher_model=create_timm_classifier("cifar_resnet8", 2, labels), args=args,
                          train_dataset=train)  # 12 images: batches of 5, 5 and 2
    trainer.train()
    assert trainer.state.global_step == 6
