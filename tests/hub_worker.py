"""Prune a student 50 %, train two steps, push it to the Hub at HF_ENDPOINT, pull it back and compare logits.

Runs in its own process because huggingface_hub reads HF_ENDPOINT at import time. Prints one JSON line.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from helpers import BlobImages  # noqa: E402
from r2kd_hf import R2KDConfig, R2KDTrainer, load_student, prune_student  # noqa: E402
from r2kd_hf.pipeline import create_timm_classifier  # noqa: E402


def main(output_dir: str, repo_id: str) -> None:
    labels = {i: f"class_{i}" for i in range(4)}
    teacher = create_timm_classifier("cifar_resnet8", 4, labels)
    student = create_timm_classifier("cifar_resnet8", 4, labels)
    report = prune_student(student, 0.5, (3, 8, 8))
    args = R2KDConfig(
        output_dir=output_dir, per_device_train_batch_size=8, max_steps=2, use_cpu=True, report_to="none", save_strategy="no",
        disable_tqdm=True, validate_teacher=False, hub_model_id=repo_id, hub_token="hf_secret_test_token", logging_steps=1,
        second_view="cutmix", prune_teacher=True,
    )
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=BlobImages(16),
                          model_card_info={"dataset": "blobs", "recipe": "training:\n  loss_name: r2kd\n"})
    trainer.train()
    result = {"params_before": report["params_before"], "params_after": report["params_after"]}
    try:
        trainer.push_to_hub()
        result["pushed"] = True
    except RuntimeError as error:
        result.update(pushed=False, error=str(error))
        print(json.dumps(result))
        return
    student.eval()
    x = torch.randn(3, 3, 8, 8)
    pulled = load_student(repo_id)
    with torch.no_grad():
        result["max_logit_difference"] = float((pulled(x).logits - student(x).logits).abs().max())
    result["pulled_params"] = sum(p.numel() for p in pulled.parameters())
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
