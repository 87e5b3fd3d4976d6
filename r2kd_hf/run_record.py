"""What the end of a run adds to the student's card and upload, handed to the trainer as one typed object.

The application measures things after training (common corruptions, an ONNX export, its own records such as the
recipe and the summary) and gives them to :meth:`r2kd_hf.R2KDTrainer.record_run`; the card
(:mod:`r2kd_hf.cards`) and the one-commit push read them from ``trainer.run_record``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunRecord:
    """Facts and files a run adds after training.

    Attributes:
        onnx: the report of :func:`r2kd_hf.export.export_onnx` (opset, input size, ONNX Runtime check) when exported.
        robustness: the report of :func:`r2kd_hf.corruptions.evaluate_corruptions` (per corruption, mCA, benchmark).
        files: names of files the run wrote in its output folder that belong with the model (uploaded by the push).
    """

    onnx: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)

    def merge(self, other: "RunRecord") -> "RunRecord":
        """This record with ``other``'s facts on top and both lists of files."""
        return RunRecord(onnx=other.onnx or self.onnx, robustness=other.robustness or self.robustness,
                         files=list(dict.fromkeys([*self.files, *other.files])))
