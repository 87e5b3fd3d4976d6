"""Batch collation for image classification: stack ``pixel_values`` and ``labels``; drop skipped samples."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


class ImageClassificationCollator:
    """Stack ``pixel_values`` (tensors) and ``labels`` (ints) of a list of samples.

    A sample whose ``pixel_values`` is ``None`` was an unreadable image that the data pipeline was told to skip
    (``skip_corrupt_images``); it is dropped here and counted in ``skipped_images``. Missing keys get an error that names what the sample holds.
    """

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        if len(samples) == 1 and samples[0].get("__batched__"):  # the small-image path fetches whole batches
            return {"pixel_values": samples[0]["pixel_values"], "labels": samples[0]["labels"]}
        for key in ("pixel_values", "labels"):
            if samples and key not in samples[0]:
                raise KeyError(
                    f"A sample has no {key!r} key (it has {sorted(samples[0])}). Build datasets with "
                    "r2kd_hf.data.prepare_dataset, or make your transform return 'pixel_values' and 'labels'."
                )
        kept = [s for s in samples if s["pixel_values"] is not None]
        if not kept:
            raise ValueError("Every image of this batch was unreadable and skipped; check the dataset.")
        batch = {
            "pixel_values": torch.stack([torch.as_tensor(s["pixel_values"]) for s in kept]),
            "labels": torch.tensor([int(s["labels"]) for s in kept], dtype=torch.long),
        }
        if len(kept) < len(samples):  # counted by the trainer (works with data-loader workers too)
            batch["skipped_images"] = torch.tensor(len(samples) - len(kept))
        return batch
