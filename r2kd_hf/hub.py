"""Model cards that say how a distilled (and possibly pruned) student was made."""

from __future__ import annotations

import os
from typing import Any

import yaml
from huggingface_hub import ModelCard

from .modeling import REPO_ID_PATTERN, count_parameters
from .pruning.serialization import record_of

CITATIONS = {
    "r2kd": """@article{kim2024r2kd,
  title={Robustness-Reinforced Knowledge Distillation with Correlation Distance and Network Pruning},
  author={Kim, Seonghak and Ham, Gyeongdo and Cho, Yucheol and Kim, Daeshik},
  journal={IEEE Transactions on Knowledge and Data Engineering}, volume={36}, number={12}, pages={9163--9175},
  year={2024}, doi={10.1109/TKDE.2024.3438074}
}""",
    "dist": """@inproceedings{huang2022dist,
  title={Knowledge Distillation from A Stronger Teacher},
  author={Huang, Tao and You, Shan and Wang, Fei and Qian, Chen and Xu, Chang},
  booktitle={NeurIPS}, year={2022}
}""",
    "kd": """@article{hinton2015distilling,
  title={Distilling the Knowledge in a Neural Network},
  author={Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff}, journal={arXiv:1503.02531}, year={2015}
}""",
    "dkd": """@inproceedings{zhao2022dkd,
  title={Decoupled Knowledge Distillation},
  author={Zhao, Borui and Cui, Quan and Song, Renjie and Qiu, Yiyu and Liang, Jiajun}, booktitle={CVPR}, year={2022}
}""",
    "cmkd": """@article{niu2024cmkd,
  title={Efficient and Robust Knowledge Distillation from A Stronger Teacher Based on Correlation Matching},
  author={Niu, Wenqi and Wang, Yingchao and Cai, Guohui and Hou, Hanpo}, journal={arXiv:2410.06561}, year={2024}
}""",
    "torch_pruning": """@inproceedings{fang2023depgraph,
  title={DepGraph: Towards Any Structural Pruning},
  author={Fang, Gongfan and Ma, Xinyin and Song, Mingli and Mi, Michael Bi and Wang, Xinchao}, booktitle={CVPR}, year={2023}
}""",
}


def final_and_best(log_history: list[dict], metric: str = "eval_accuracy") -> tuple[float | None, float | None]:
    values = [entry[metric] for entry in log_history if metric in entry]
    return (values[-1], max(values)) if values else (None, None)


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows if value is not None]
    return "\n".join(lines)


def build_model_card(trainer, model_name: str | None = None, extra_tags: list[str] | None = None, **_: Any) -> ModelCard:
    """A ``huggingface_hub.ModelCard`` with YAML metadata and the distillation lineage of ``trainer``'s student."""
    args = trainer.args
    info = trainer.model_card_info
    student_record = record_of(trainer.model)
    teacher_report = trainer.pruning_report
    final, best = final_and_best(trainer.state.log_history)
    tags = list(dict.fromkeys([*trainer._tag_names, args.loss_name, "timm", *(extra_tags or [])]))
    citations = ["r2kd"] if args.loss_name == "r2kd" or args.prune_teacher else []
    citations += [args.loss_name] if args.loss_name in CITATIONS and args.loss_name != "r2kd" else []
    if student_record or (teacher_report and teacher_report["method"] == "structured"):
        tags.append("pruning")
        citations.append("torch_pruning")
    metadata: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "image-classification", "tags": tags}
    teacher_repo = trainer.teacher_id.removeprefix("hf-hub:") if isinstance(trainer.teacher_id, str) else ""
    if REPO_ID_PATTERN.match(teacher_repo) and not os.path.exists(os.path.expanduser(trainer.teacher_id)):  # a Hub repo, not a folder
        metadata["base_model"] = teacher_repo
    if info.get("dataset"):
        metadata["datasets"] = [info["dataset"]]
    if best is not None:
        metadata["model-index"] = [{
            "name": model_name or args.hub_model_id or "student",
            "results": [{
                "task": {"type": "image-classification"},
                "dataset": {"name": info.get("dataset", "unknown"), "type": info.get("dataset", "unknown"), "split": info.get("eval_split", "validation")},
                "metrics": [{"type": "accuracy", "value": round(final, 6), "name": "final top-1"}, {"type": "accuracy", "value": round(best, 6), "name": "best top-1"}],
            }],
        }]

    loss_rows = [("loss", args.loss_name), ("temperature", args.temperature), ("loss hyper-parameters", args.loss_kwargs or "defaults"),
                 ("CE / KD / second-view KD weights", f"{args.ce_weight} / {args.kd_weight} / {args.aug_kd_weight}"),
                 ("second view", args.second_view + (f" {args.second_view_kwargs}" if args.second_view_kwargs else ""))]
    teacher_rows = [("teacher", f"`{trainer.teacher_id}`"), ("teacher revision", trainer.teacher_revision),
                    *[(k.replace("_", " "), v) for k, v in trainer.teacher_metrics.items()]]
    if teacher_report:
        teacher_rows += [("teacher pruning", f"{teacher_report['method']}, amount {teacher_report['amount']}"),
                         ("pruned-teacher share w", args.pruned_teacher_weight), ("pruned-teacher BatchNorm", args.pruned_teacher_bn),
                         ("achieved weight sparsity", f"{teacher_report['sparsity_overall']:.4f}")]
    student_rows = [("parameters", f"{count_parameters(trainer.model):,}")]
    if student_record:
        p = student_record["pruning"]
        student_rows += [("base architecture", student_record["base"].get("architecture")),
                         ("student pruning", f"{p['method']} ({p.get('importance')}), {p['amount']:.0%} of channels"),
                         ("params before / after", f"{p['params_before']:,} / {p['params_after']:,}"),
                         ("MACs before / after", f"{p['macs_before']:,} / {p['macs_after']:,}" if p.get("macs_after") else None)]
    data_rows = [("dataset", info.get("dataset")), ("train split", info.get("train_split")), ("eval split", info.get("eval_split")),
                 ("epochs", args.num_train_epochs), ("per-device batch", args.per_device_train_batch_size),
                 ("processes", args.world_size), ("learning rate", args.learning_rate), ("seed", args.seed),
                 ("final eval top-1", f"{final:.4f}" if final is not None else None), ("best eval top-1", f"{best:.4f}" if best is not None else None)]
    loader = "r2kd_hf.load_student(repo_id)" if student_record else "AutoModelForImageClassification.from_pretrained(repo_id)"
    body = [
        f"# {model_name or args.hub_model_id or 'Distilled student'}",
        f"This image classifier was distilled with [r2kd_hf](https://arxiv.org/abs/2311.13934) from the teacher "
        f"`{trainer.teacher_id}` with the **{args.loss_name}** loss." if trainer.teacher_id else "Trained with r2kd_hf (cross-entropy only).",
        "## How to load", "```python\nimport r2kd_hf  # registers the CIFAR-style architectures with timm\n"
        + ("" if student_record else "from transformers import AutoModelForImageClassification\n")
        + f"model = {loader}\n```",
        "## Distillation", _table(loss_rows), "## Teacher", _table(teacher_rows), "## Student", _table(student_rows),
        "## Data and training", _table(data_rows),
    ]
    if info.get("recipe"):
        body += ["## Recipe", "```yaml\n" + info["recipe"].strip() + "\n```"]
    body += ["## Citations", "```bibtex\n" + "\n\n".join(CITATIONS[c] for c in dict.fromkeys(citations)) + "\n```"] if citations else []
    text = "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---\n\n" + "\n\n".join(body) + "\n"
    return ModelCard(text)
