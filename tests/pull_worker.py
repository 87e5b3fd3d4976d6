"""Pull a pushed student three ways (timm, transformers, r2kd_hf) and compare logits with a local folder.

Runs in its own process because huggingface_hub reads HF_ENDPOINT at import time. Prints one JSON line.
"""

import json
import sys

import timm
import torch
from transformers import AutoModelForImageClassification

import r2kd_hf
from r2kd_hf.introspection import logits_of


def main(repo_id: str, local_dir: str, size: int) -> None:
    reference = r2kd_hf.load_student(local_dir)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = logits_of(reference(x))
        pulled = {
            "timm": timm.create_model(f"hf-hub:{repo_id}", pretrained=True).eval(),
            "transformers": AutoModelForImageClassification.from_pretrained(repo_id).eval(),
            "load_student": r2kd_hf.load_student(repo_id),
        }
        print(json.dumps({k: float((logits_of(m(x)) - expected).abs().max()) for k, m in pulled.items()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
