"""Train a student two steps, push it to the Hub at HF_ENDPOINT, pull it back three ways and compare logits.

Modes: ``pruned`` (a TimmWrapper student pruned 50 %), ``timm_module`` (a plain ``cifar_resnet8`` timm module, as in
the README's "use it in your own script") and ``timm_name`` (a standard timm architecture, resnet18). Runs in its own process because huggingface_hub reads HF_ENDPOINT at import time.
Prints one JSON line.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import datasets  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForImageClassification  # noqa: E402

from helpers import BlobImages  # noqa: E402
from r2kd_hf import R2KDConfig, R2KDTrainer, load_student, prune_student  # noqa: E402
from r2kd_hf.introspection import logits_of  # noqa: E402
from r2kd_hf.loading import create_timm_classifier  # noqa: E402


class LabelledBlobs(BlobImages):
    """BlobImages with a ClassLabel feature, as a datasets split has: the saved config gets label names."""

    features = datasets.Features({"labels": datasets.ClassLabel(names=[f"class_{i}" for i in range(4)])})


def main(output_dir: str, repo_id: str, mode: str = "pruned") -> None:
    labels = {i: f"class_{i}" for i in range(4)}
    teacher = create_timm_classifier("cifar_resnet8", 4, labels)
    if mode == "pruned":
        student = create_timm_classifier("cifar_resnet8", 4, labels)
        report = prune_student(student, 0.5, (3, 8, 8))
    elif mode == "timm_name":  # a standard timm architecture: pipeline() must work without r2kd_hf
        student = create_timm_classifier("resnet18", 4, labels)
        report = {"params_before": sum(p.numel() for p in student.parameters())}
        report["params_after"] = report["params_before"]
    else:
        student = timm.create_model("cifar_resnet8", num_classes=4)
        report = {"params_before": sum(p.numel() for p in student.parameters())}
        report["params_after"] = report["params_before"]
    args = R2KDConfig(
        output_dir=output_dir, per_device_train_batch_size=8, max_steps=2, use_cpu=True, report_to="none", save_strategy="no",
        disable_tqdm=True, validate_teacher=False, hub_model_id=repo_id, hub_token="hf_secret_test_token", logging_steps=1,
        second_view="cutmix", prune_teacher=True, push_to_hub=True,
    )
    try:
        trainer = R2KDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=LabelledBlobs(16),
                              lineage={"dataset": "blobs", "recipe": "training:\n  loss_name: r2kd\n"})
    except RuntimeError as error:  # the Hub check runs before any training
        print(json.dumps({"pushed": False, "stage": "setup", "error": str(error), "files": sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []}))
        return
    trainer.train()
    trainer.evaluate(LabelledBlobs(8, seed=1))  # the card's model-index reports it
    result = {"params_before": report["params_before"], "params_after": report["params_after"]}
    try:
        trainer.push_to_hub()
        result["pushed"] = True
    except RuntimeError as error:
        result.update(pushed=False, stage="push", error=str(error))
        print(json.dumps(result))
        return
    student.eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        expected = logits_of(student(x))
        pulled = {
            "load_student": load_student(repo_id),
            "timm": timm.create_model(f"hf-hub:{repo_id}", pretrained=True).eval(),
            "transformers": AutoModelForImageClassification.from_pretrained(repo_id).eval(),
        }
        result["max_logit_difference"] = {k: float((logits_of(m(x)) - expected).abs().max()) for k, m in pulled.items()}
    result["pulled_params"] = {k: sum(p.numel() for p in m.parameters()) for k, m in pulled.items()}
    result["label_names"] = [pulled["transformers"].config.id2label[i] for i in range(4)]
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
