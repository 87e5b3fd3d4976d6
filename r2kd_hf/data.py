"""Image-classification datasets: loading, column normalisation, splits, lazy transforms.

Every loader returns a ``DatasetDict`` with ``train`` and ``eval`` splits whose samples, after
:func:`prepare_dataset`, are ``{"pixel_values": FloatTensor(3, H, W), "labels": int}``. Images are decoded lazily
with PIL in the transform (``set_transform``), converted to RGB whatever their mode.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

import datasets
import numpy as np
import torch
from PIL import Image

from .messages import UsageError, hub_unreachable

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "img", "images", "jpg", "png", "webp")
LABEL_COLUMNS = ("labels", "label", "fine_label", "target", "class", "coarse_label")
EVAL_SPLITS = ("validation", "valid", "val", "test")
INDEX_COLUMN = "__index__"


class CorruptImageError(ValueError):
    """An image that PIL cannot decode; the message names the sample and its file."""


@dataclass
class LoadedData:
    splits: datasets.DatasetDict | dict  # "train" and "eval", columns "image", "labels" (and the row index); streamed: a dict
    id2label: dict[int, str]
    source: str
    train_split: str
    eval_split: str

    @property
    def num_labels(self) -> int:
        return len(self.id2label)


def _is_saved_dataset(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("dataset_dict.json", "dataset_info.json", "state.json"))


def load_raw_dataset(source: str, config_name: str | None = None) -> datasets.DatasetDict:
    """A Hub dataset id, a folder saved with ``save_to_disk``, a parquet folder in the Hub layout, or an imagefolder."""
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        if _is_saved_dataset(path):
            loaded = datasets.load_from_disk(path)
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
        has_parquet = any(f.endswith(".parquet") for _, _, files in os.walk(path) for f in files)
        if has_parquet:
            return datasets.load_dataset(path, config_name)
        return datasets.load_dataset("imagefolder", data_dir=path)
    if source.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"The dataset folder {source!r} does not exist.")
    try:
        return datasets.load_dataset(source, config_name)
    except Exception as error:
        raise hub_unreachable("the dataset", source, error, ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")) from error


def _find_column(dataset: datasets.Dataset, wanted: str | None, candidates: tuple[str, ...], kind: str) -> str:
    columns = list(dataset.column_names)
    if wanted:
        if wanted not in columns:
            raise KeyError(f"The dataset has no {kind} column {wanted!r}; its columns are {columns}. Set the {kind}_column option.")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    if kind == "image":
        for name, feature in dataset.features.items():
            if isinstance(feature, datasets.Image):
                return name
    if kind == "label" and columns == ["image"]:  # what datasets' imagefolder gives for a single class folder
        raise UsageError(
            "The dataset has images but no labels: an imagefolder with a single class folder (or none) has nothing to "
            "classify. Put each class's images in its own sub-folder, at least two classes (<root>/train/<class>/*.png).")
    raise KeyError(
        f"Found no {kind} column among {columns} (looked for {', '.join(candidates)}). Name it with "
        f"--{kind}_column <column>."
    )


def _select_splits(raw, source: str, train_split: str, eval_split: str, image_column: str | None,
                   label_column: str | None) -> tuple[Any, str | None, Callable]:
    """``(train, eval split name or None, normalise)``: the splits checked, the columns found, and the function that
    keeps the image and label columns as ``image`` (undecoded: we decode, to name bad files) and ``labels``."""
    if train_split not in raw:
        raise KeyError(f"The dataset {source!r} has no split {train_split!r}; its splits are {list(raw)}. Set train_split.")
    if eval_split == "auto":
        eval_split = next((s for s in EVAL_SPLITS if s in raw and s != train_split), None)
    elif eval_split not in raw:
        raise KeyError(f"The dataset {source!r} has no split {eval_split!r}; its splits are {list(raw)}. Set eval_split (or 'auto').")
    train = raw[train_split]
    if train.features is None:  # a stream that does not declare its features
        raise UsageError(f"The stream of {source!r} does not declare its features; give image_column and label_column, "
                         "or use a dataset with features (parquet written by datasets, Hub datasets).")
    image_name = _find_column(train, image_column, IMAGE_COLUMNS, "image")
    label_name = _find_column(train, label_column, LABEL_COLUMNS, "label")

    def normalise(split):
        split = split.select_columns([image_name, label_name])
        renames = {k: v for k, v in ((image_name, "image"), (label_name, "labels")) if k != v}
        split = split.rename_columns(renames) if renames else split
        return split.cast_column("image", datasets.Image(decode=False)) if isinstance(split.features["image"], datasets.Image) else split

    return normalise(train), eval_split, normalise


def _with_index(split: datasets.Dataset) -> datasets.Dataset:
    return split.add_column(INDEX_COLUMN, list(range(len(split))))


def load_image_dataset(
    source: str,
    config_name: str | None = None,
    train_split: str = "train",
    eval_split: str = "auto",
    image_column: str | None = None,
    label_column: str | None = None,
    validation_fraction: float = 0.1,
    seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    raw: datasets.DatasetDict | None = None,
) -> LoadedData:
    """Load ``source`` and return normalised ``train``/``eval`` splits plus ``id2label``.

    ``eval_split="auto"`` picks the first of validation/valid/val/test; when none exists a deterministic, stratified
    ``validation_fraction`` of the training split (``seed``) becomes the eval split.
    """
    if raw is None:
        raw = digits_dataset() if source == "digits" else load_raw_dataset(source, config_name)
    train, eval_split, normalise = _select_splits(raw, source, train_split, eval_split, image_column, label_column)
    train = _with_index(train)
    id2label = _label_names(train)
    if len(id2label) < 2:
        found = f"one class ({next(iter(id2label.values()))!r})" if id2label else "no classes"
        raise UsageError(
            f"The dataset {source!r} has {found} in its {train_split!r} split; a classifier "
            "needs at least two. For an imagefolder, put each class's images in its own sub-folder "
            "(<root>/train/<class>/*.png); for other datasets, name the label column with label_column.")
    if eval_split is None:
        if not 0 < validation_fraction < 1:
            raise ValueError(f"The dataset has no eval split, and validation_fraction={validation_fraction} is not in (0, 1).")
        stratify = "labels" if isinstance(train.features["labels"], datasets.ClassLabel) else None
        try:
            parts = train.train_test_split(test_size=validation_fraction, seed=seed, stratify_by_column=stratify)
        except ValueError:  # too few images per class to stratify: fall back to a plain seeded split
            logger.warning("The held-out split cannot be stratified (too few images per class); using a random split.")
            parts = train.train_test_split(test_size=validation_fraction, seed=seed)
        train, evaluation, eval_split = parts["train"], parts["test"], f"{train_split}[{validation_fraction:.0%} held out, seed {seed}]"
    else:
        evaluation = _with_index(normalise(raw[eval_split]))
    if max_train_samples:
        train = train.shuffle(seed=seed).select(range(min(max_train_samples, len(train))))
    if max_eval_samples:
        evaluation = evaluation.select(range(min(max_eval_samples, len(evaluation))))
    return LoadedData(datasets.DatasetDict(train=train, eval=evaluation), id2label, source, train_split, str(eval_split))


def load_streaming_dataset(
    source: str,
    config_name: str | None = None,
    train_split: str = "train",
    eval_split: str = "auto",
    image_column: str | None = None,
    label_column: str | None = None,
    seed: int = 42,
    shuffle_buffer_size: int = 10_000,
    max_eval_samples: int | None = None,
) -> LoadedData:
    """Like :func:`load_image_dataset`, but the training split is streamed (``datasets.IterableDataset``): nothing is
    downloaded or converted before the first step. It is shuffled through a buffer of ``shuffle_buffer_size`` images
    (re-seeded every epoch); the eval split is read once, capped at ``max_eval_samples`` (default 10,000), into memory.

    Works for Hub datasets and local parquet or image folders; the label column must be a ``ClassLabel`` (a stream
    cannot be scanned for its classes first).
    """
    if source == "digits":
        raise UsageError("streaming=True needs a Hub dataset or a parquet/image folder; the built-in 'digits' is in memory "
                         "already. Drop --streaming.")
    path = os.path.expanduser(source)
    raw = datasets.load_dataset(path if os.path.isdir(path) else source, config_name, streaming=True)
    train, eval_split, normalise = _select_splits(raw, source, train_split, eval_split, image_column, label_column)
    if eval_split is None:
        raise UsageError(f"The dataset {source!r} has no validation/test split, and a held-out part cannot be carved "
                         "from a stream. Name an eval split with eval_split, or drop --streaming.")
    if not isinstance(train.features["labels"], datasets.ClassLabel):
        raise UsageError(f"The label column of {source!r} is not a ClassLabel, so a stream cannot tell its "
                         "classes; cast it (dataset.class_encode_column) or drop --streaming.")
    id2label = dict(enumerate(train.features["labels"].names))
    if len(id2label) < 2:
        raise UsageError(f"The dataset {source!r} has {len(id2label)} class(es); a classifier needs at least two.")
    evaluation = normalise(raw[eval_split]).take(max_eval_samples or 10_000)
    rows = list(evaluation)
    evaluation = datasets.Dataset.from_list(rows, features=evaluation.features) if rows else None
    if evaluation is None:
        raise UsageError(f"The eval split {eval_split!r} of {source!r} is empty.")
    evaluation = _with_index(evaluation)
    train = train.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    return LoadedData({"train": train, "eval": evaluation}, id2label, source, train_split, str(eval_split))


def prepare_streaming_dataset(dataset, transform: Callable, skip_corrupt_images: bool = False):
    """:func:`prepare_dataset` for a streamed split: the same decode and transform, applied lazily by ``map``."""
    apply = _transform_batch(transform, skip_corrupt_images)
    return dataset.map(apply, batched=True, batch_size=64, remove_columns=["image"])


def _label_names(split: datasets.Dataset) -> dict[int, str]:
    feature = split.features["labels"]
    if isinstance(feature, datasets.ClassLabel):
        return dict(enumerate(feature.names))
    values = np.unique(np.asarray(split["labels"]))
    if not np.issubdtype(values.dtype, np.integer) or values.min() < 0:
        raise ValueError(
            f"The label column holds {values.dtype} values {values[:5].tolist()}...; labels must be class ids 0..C-1 "
            "or a ClassLabel. Encode them with dataset.class_encode_column('labels')."
        )
    return {i: str(i) for i in range(int(values.max()) + 1)}


def decode_image(value: Any, index: int | None = None) -> Image.Image:
    """PIL RGB image from a datasets image value (dict of bytes/path, PIL image, array); names bad samples."""
    path = value.get("path") if isinstance(value, dict) else getattr(value, "filename", None)
    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, dict):
            image = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
        elif isinstance(value, (np.ndarray, list)):
            array = np.asarray(value)
            image = Image.fromarray(array.astype(np.uint8) if array.dtype != np.uint8 else array)
        else:
            raise TypeError(f"unsupported image value of type {type(value).__name__}")
        image.load()
        return image.convert("RGB")  # grey, palette, RGBA, CMYK, 16-bit: all become 3-channel RGB
    except Exception as error:
        raise CorruptImageError(
            f"Cannot decode the image of sample {index}" + (f" (file {path!r})" if path else "")
            + f": {type(error).__name__}: {error}. Remove or replace it, or set skip_corrupt_images=True to skip such samples."
        ) from error


def verify_images(split: datasets.Dataset, skip_corrupt: bool = False, num_proc: int | None = None,
                  name: str = "train") -> tuple[datasets.Dataset, list[dict[str, Any]]]:
    """Decode every image once, in parallel, with a progress bar, before training.

    Without ``skip_corrupt`` the first unreadable image stops the run with its sample index and file; with it,
    unreadable samples are dropped and returned as ``[{"index", "problem"}]`` so the caller can list them.
    """

    def check(batch: dict[str, list]) -> dict[str, list]:
        problems = []
        for value, index in zip(batch["image"], batch.get(INDEX_COLUMN, [None] * len(batch["image"]))):
            try:
                decode_image(value, index)
                problems.append("")
            except CorruptImageError as error:
                if not skip_corrupt:
                    raise
                problems.append(str(error))
        return {"__problem__": problems}

    workers = num_proc if num_proc is not None else min(os.cpu_count() or 1, 8)
    checked = split.map(check, batched=True, batch_size=256, num_proc=workers if len(split) > 1024 and workers > 1 else None,
                        desc=f"verifying {name} images", load_from_cache_file=False)
    problems = checked["__problem__"]
    bad = [{"index": i, "problem": p} for i, p in enumerate(problems) if p]
    if bad:
        split = split.select([i for i, p in enumerate(problems) if not p])
    return split, bad


def prepare_dataset(dataset: datasets.Dataset, transform: Callable, skip_corrupt_images: bool = False) -> datasets.Dataset:
    """Attach a lazy transform that decodes, converts to RGB and applies ``transform`` (PIL -> tensor).

    Skipped (unreadable) samples yield ``pixel_values=None`` and are dropped by the collator, with a warning
    naming the sample.
    """

    return dataset.with_transform(_transform_batch(transform, skip_corrupt_images))


def _transform_batch(transform: Callable, skip_corrupt_images: bool) -> Callable[[dict[str, list]], dict[str, list]]:
    def apply(batch: dict[str, list]) -> dict[str, list]:
        pixels = []
        indices = batch.get(INDEX_COLUMN, [None] * len(batch["image"]))
        for value, index in zip(batch["image"], indices):
            try:
                pixels.append(transform(decode_image(value, index)))
            except CorruptImageError as error:
                if not skip_corrupt_images:
                    raise
                logger.warning("Skipping an unreadable image: %s", error)
                pixels.append(None)
        return {"pixel_values": pixels, "labels": batch["labels"]}

    return apply


class PerSampleSeeds(torch.utils.data.Dataset):
    """Each sample's augmentation drawn from its own seed, a function of ``(seed, epoch, index)``.

    The per-image PIL pipeline draws its crops and flips from the global torch, ``random`` and numpy generators. Which
    draws a sample gets then depends on the process or worker that transforms it and on how far ahead the loader
    fetches (accelerate fetches one batch ahead), so a run resumed from a checkpoint drew different augmentations
    than the uninterrupted run. Seeding each sample makes them independent of all that: a resumed run continues
    bit-identically, with any number of workers. The main process's generators are restored after each sample.
    ``set_epoch`` (called by accelerate's loader each epoch) writes to shared memory, so persistent workers see it.
    Other attributes (``features``, ...) are the wrapped dataset's.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        import random

        seed = hash((self.seed, int(self._epoch[0]), int(index))) % (2**63)
        saved = torch.get_rng_state(), random.getstate(), np.random.get_state()
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % (2**32))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(saved[0])
            random.setstate(saved[1])
            np.random.set_state(saved[2])

    def __getattr__(self, name: str):
        # not the wrapped dataset's ``__getitems__`` (the DataLoader would fetch whole batches past the seeds), nor
        # our own fields before they are set (unpickling)
        if name.startswith("__") or name in ("dataset", "seed", "_epoch"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


# --------------------------------------------------------------------------- transforms
def build_transforms(
    data_config: dict[str, Any],
    style: str = "timm",
    auto_augment: str | None = None,
    random_erasing: float = 0.0,
    crop_padding: int | None = None,
) -> tuple[Callable, Callable]:
    """Train and eval transforms (PIL -> normalised tensor) from a timm data config.

    ``style="timm"``: timm's ``create_transform`` (random resized crop + flip, optional ``auto_augment`` such as
    ``"rand-m9-mstd0.5-inc1"``, ``"augmix-m5-w4-d2"``, ``"autoaugment"``, ``"trivialaugment"``, random erasing; eval is
    resize + centre crop). ``style="cifar"``: the CIFAR/TinyImageNet recipe of the KD papers (pad-and-crop at full
    size, padding ``size/8`` unless given, + flip; eval is a plain resize).
    """
    from torchvision import transforms as T

    size = int(data_config["input_size"][-1])
    mean, std = tuple(data_config["mean"]), tuple(data_config["std"])
    if style == "cifar":
        normalize = [T.ToTensor(), T.Normalize(mean, std)]
        padding = crop_padding if crop_padding is not None else max(size // 8, 1)
        train = [T.Resize((size, size)), T.RandomCrop(size, padding=padding), T.RandomHorizontalFlip()]
        if auto_augment:
            train.append(_torchvision_policy(auto_augment))
        train += normalize
        if random_erasing > 0:
            train.append(T.RandomErasing(p=random_erasing))
        return T.Compose(train), T.Compose([T.Resize((size, size)), *normalize])
    if style != "timm":
        raise ValueError(f"Unknown transform style {style!r}; valid: timm, cifar.")
    from timm.data import create_transform

    common = {k: data_config[k] for k in ("input_size", "interpolation", "mean", "std") if k in data_config}
    trivial = auto_augment in ("trivialaugment", "trivial")
    policy = None if trivial else ("original" if auto_augment in ("autoaugment", "auto") else auto_augment)
    train = create_transform(**common, is_training=True, auto_augment=policy, re_prob=random_erasing)
    if trivial:  # timm has no TrivialAugment: insert torchvision's on the PIL image, before tensor conversion
        steps = list(train.transforms)
        at = next(i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__)
        train = T.Compose(steps[:at] + [T.TrivialAugmentWide()] + steps[at:])
    evaluation = create_transform(**common, is_training=False, crop_pct=data_config.get("crop_pct", 0.875), crop_mode=data_config.get("crop_mode", "center"))
    return train, evaluation


def _torchvision_policy(name: str):
    from torchvision import transforms as T

    policies = {
        "autoaugment": lambda: T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
        "randaugment": lambda: T.RandAugment(),
        "trivialaugment": lambda: T.TrivialAugmentWide(),
    }
    if name not in policies:
        raise ValueError(f"Unknown auto_augment {name!r} for the cifar style; valid: {', '.join(policies)}.")
    return policies[name]()


# --------------------------------------------------------------------------- the embedded default dataset
def digits_dataset(image_size: int = 32, seed: int = 0) -> datasets.DatasetDict:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images) as an RGB image dataset, offline.

    ``train`` (80 %) and ``test`` (20 %), stratified; images upscaled to ``image_size`` with bilinear resampling.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [
        Image.fromarray((img * (255.0 / 16.0)).astype(np.uint8), mode="L").resize((image_size, image_size), Image.BILINEAR).convert("RGB")
        for img in digits.images
    ]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    full = datasets.Dataset.from_dict({"image": images, "label": digits.target.tolist()}, features=features)
    return full.train_test_split(test_size=0.2, seed=seed, stratify_by_column="label")
