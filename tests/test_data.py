"""Dataset loading, column normalisation, splits, decoding errors and transforms."""



import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from r2kd_hf.collate import ImageClassificationCollator
from r2kd_hf.data import CorruptImageError, build_transforms, digits_dataset, load_image_dataset, prepare_dataset

CONFIG = {"input_size": (3, 16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bilinear", "crop_pct": 1.0}


def write_imagefolder(root, corrupt=False, modes=("RGB",)):
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                mode = modes[i % len(modes)]
                image = Image.fromarray(np.full((12, 12, 3), 40 * i, dtype=np.uint8)).convert(mode)
                image.save(folder / f"{i}.png")
    if corrupt:
        (root / "train" / "cat" / "broken.png").write_bytes(b"definitely not a png")
    return root


def test_imagefolder_with_mixed_modes_converts_to_rgb(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", modes=("RGB", "L", "RGBA", "P"))
    data = load_image_dataset(str(root))
    assert data.eval_split == "test" and data.id2label == {0: "cat", 1: "dog"}
    train_tf, _ = build_transforms(CONFIG, style="cifar")
    prepared = prepare_dataset(data.splits["train"], train_tf)
    batch = ImageClassificationCollator()([prepared[i] for i in range(len(prepared))])
    assert batch["pixel_values"].shape == (8, 3, 16, 16)
    assert batch["labels"].tolist().count(0) == 4


def test_corrupt_image_names_sample_and_file(tmp_path):
    root = write_imagefolder(tmp_path / "imgs", corrupt=True)
    data = load_image_dataset(str(root))
    _, eval_tf = build_transforms(CONFIG, style="cifar")
    prepared = prepare_dataset(data.splits["train"], eval_tf)
    bad = next(i for i in range(len(prepared)) if "broken" in (data.splits["train"][i]["image"]["path"] or ""))
    with pytest.raises(CorruptImageError, match=rf"sample {bad} \(file .*broken.png'\).*skip_corrupt_images"):
        prepared[bad]
    skipping = prepare_dataset(data.splits["train"], eval_tf, skip_corrupt_images=True)
    assert skipping[bad]["pixel_values"] is None
    batch = ImageClassificationCollator()([skipping[i] for i in range(len(skipping))])
    assert batch["pixel_values"].shape[0] == len(skipping) - 1 and int(batch["skipped_images"]) == 1


def test_trainer_counts_skipped_images(tmp_path):
    import timm

    from r2kd_hf import R2KDConfig, R2KDTrainer

    root = write_imagefolder(tmp_path / "imgs", corrupt=True)
    data = load_image_dataset(str(root))
    train_tf, _ = build_transforms(CONFIG, style="cifar")
    args = R2KDConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, num_train_epochs=1, use_cpu=True,
                      report_to="none", save_strategy="no", disable_tqdm=True, loss_name="none", logging_steps=1)
    trainer = R2KDTrainer(model=timm.create_model("cifar_resnet8", num_classes=2), args=args,
                          train_dataset=prepare_dataset(data.splits["train"], train_tf, skip_corrupt_images=True))
    trainer.train()
    assert trainer.skipped_images == 1
    assert any(e.get("skipped_images") == 1 for e in trainer.state.log_history)


def test_parquet_hub_layout_and_saved_dataset(tmp_path):
    digits = digits_dataset(image_size=8)
    (tmp_path / "pq" / "data").mkdir(parents=True)
    digits["train"].select(range(30)).rename_column("image", "img").to_parquet(str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet"))
    data = load_image_dataset(str(tmp_path / "pq"), validation_fraction=0.2, seed=3)
    assert "held out" in data.eval_split and len(data.splits["eval"]) == 6 and len(data.splits["train"]) == 24
    again = load_image_dataset(str(tmp_path / "pq"), validation_fraction=0.2, seed=3)
    assert again.splits["eval"]["__index__"] == data.splits["eval"]["__index__"]  # deterministic split
    digits.save_to_disk(str(tmp_path / "saved"))
    saved = load_image_dataset(str(tmp_path / "saved"), max_train_samples=50)
    assert len(saved.splits["train"]) == 50 and saved.num_labels == 10


def test_column_and_split_errors(tmp_path):
    no_label = datasets.DatasetDict(train=datasets.Dataset.from_dict({"image": [Image.new("RGB", (4, 4))], "caption": ["x"]}))
    with pytest.raises(KeyError, match="Found no label column among \\['image', 'caption'\\]"):
        load_image_dataset("mem", raw=no_label)
    raw = digits_dataset(image_size=8)
    with pytest.raises(KeyError, match="no split 'validation'; its splits are \\['train', 'test'\\]"):
        load_image_dataset("digits", raw=raw, eval_split="validation")
    with pytest.raises(KeyError, match="no split 'training'"):
        load_image_dataset("digits", raw=raw, train_split="training")
    with pytest.raises(KeyError, match="no label column 'target'"):
        load_image_dataset("digits", raw=raw, label_column="target")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_dataset("./no/such/folder")


def test_offline_hub_dataset_error_is_actionable():
    with pytest.raises(OSError, match="no local folder has that name"):
        load_image_dataset("some-org/some-dataset")


def test_timm_and_cifar_transforms():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    config = {**CONFIG, "input_size": (3, 24, 24)}
    for style, policy in (("timm", "rand-m9-mstd0.5-inc1"), ("timm", "trivialaugment"), ("cifar", "autoaugment")):
        train, evaluation = build_transforms(config, style=style, auto_augment=policy, random_erasing=0.5)
        assert train(image).shape == (3, 24, 24) and evaluation(image).shape == (3, 24, 24)
    _, evaluation = build_transforms(config, style="cifar")
    assert torch.equal(evaluation(image), evaluation(image))  # eval is deterministic
    with pytest.raises(ValueError, match="Unknown transform style"):
        build_transforms(config, style="fancy")


def test_streaming_refuses_what_a_stream_cannot_give(tmp_path):
    from r2kd_hf.data import load_streaming_dataset
    from r2kd_hf.messages import UsageError

    digits = digits_dataset(image_size=8)
    only_train = tmp_path / "only_train" / "data"
    only_train.mkdir(parents=True)
    digits["train"].select(range(20)).to_parquet(str(only_train / "train-00000-of-00001.parquet"))
    with pytest.raises(UsageError, match="has no validation/test split, and a held-out part cannot be carved from a stream"):
        load_streaming_dataset(str(tmp_path / "only_train"))
    plain = tmp_path / "plain_labels" / "data"
    plain.mkdir(parents=True)
    for split in ("train", "test"):  # integer labels, not a ClassLabel
        part = digits[split].select(range(20))
        part.cast_column("label", datasets.Value("int64")).to_parquet(str(plain / f"{split}-00000-of-00001.parquet"))
    with pytest.raises(UsageError, match="is not a ClassLabel, so a stream cannot tell its classes"):
        load_streaming_dataset(str(tmp_path / "plain_labels"))
