"""Model cards that say how a distilled (and possibly pruned) student was made, and the Hub's evaluation-results file."""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import citations
from .augment import view_entry
from .losses import loss_entry
from .introspection import REPO_ID_PATTERN, count_parameters, timm_module_of, unwrap
from .metrics import final_and_best, teacher_metrics
from .pruning.serialization import record_of

TAGS = ["r2kd_hf", "knowledge-distillation", "image-classification"]


EVAL_RESULTS_FILE = ".eval_results/r2kd_hf.yaml"


def write_eval_results(trainer, output_dir: str) -> str | None:
    """The evaluation results in the Hub's current format (``.eval_results/*.yaml``, read by model pages and dataset
    leaderboards), beside the card's legacy ``model-index``. Written when the installed huggingface_hub has
    ``EvalResultEntry`` and the dataset is a Hub dataset id (a local folder cannot be referenced); returns the path."""
    try:
        from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml
    except ImportError:
        return None
    dataset = trainer.lineage.get("dataset")
    if not isinstance(dataset, str) or not REPO_ID_PATTERN.match(dataset) or os.path.exists(os.path.expanduser(dataset)):
        return None
    final, best = final_and_best(trainer.state.log_history)
    split = trainer.lineage.get("eval_split") or "validation"
    entries = [EvalResultEntry(dataset_id=dataset, task_id="image-classification", value=round(value, 6),
                               notes=f"{name} top-1 on the {split} split, r2kd_hf {trainer.args.loss_name}")
               for value, name in ((final, "final"), (best, "best")) if value is not None]
    report = trainer.run_record.robustness
    if report:
        entries.append(EvalResultEntry(dataset_id=dataset, task_id="image-classification", value=round(report["mca"], 6),
                                       notes=f"mean corruption accuracy ({report['benchmark']} constants, {split} split)"))
    if not entries:
        return None
    import yaml

    path = os.path.join(output_dir, EVAL_RESULTS_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(eval_result_entries_to_yaml(entries), handle, sort_keys=False)
    return path


def _usage(trainer) -> str:
    """The loading snippet with the real repo id (or, before any push, the local folder)."""
    repo = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id
    timm_spec, other = (f"hf-hub:{repo}", repo) if repo else (f"local-dir:{trainer.args.output_dir}", trainer.args.output_dir)
    return ("```python\nimport r2kd_hf  # import r2kd_hf first: it registers the cifar_* and pruned architectures with timm\n"
            "import timm\nfrom transformers import AutoModelForImageClassification, pipeline\n\n"
            f"model = timm.create_model({timm_spec!r}, pretrained=True)   # timm\n"
            f"model = AutoModelForImageClassification.from_pretrained({other!r})   # transformers\n"
            f"model = r2kd_hf.load_student({other!r})   # r2kd_hf\n```\n"
            "Without `import r2kd_hf`, timm reports `Unknown model` and transformers asks to upgrade timm for the "
            "`cifar_*` and `r2kd_pruned` architectures: the fix is the import, not an upgrade.")


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows if value is not None]
    return "\n".join(lines)


def _eval_results(trainer, extra_results: list[EvalResult] | None) -> list[EvalResult]:
    """The card's model-index: final and best top-1, and one entry per corruption plus the mCA when measured."""
    lineage = trainer.lineage
    final, best = final_and_best(trainer.state.log_history)
    dataset, split = lineage.get("dataset") or "unknown", lineage.get("eval_split") or "validation"
    results = [EvalResult(task_type="image-classification", dataset_type=dataset, dataset_name=dataset, dataset_split=split,
                          metric_type="accuracy", metric_value=round(value, 6), metric_name=metric_name)
               for value, metric_name in ((final, "final top-1"), (best, "best top-1")) if value is not None]
    results += list(extra_results or [])
    report = trainer.run_record.robustness
    if report:
        corrupted = f"{dataset}-C"
        for corruption, entry in report["per_corruption"].items():
            results.append(EvalResult(task_type="image-classification", dataset_type=corrupted, dataset_name=corrupted,
                                      dataset_config=corruption, dataset_split=split, metric_type="accuracy",
                                      metric_value=round(entry["mean"], 6), metric_name=f"{corruption} accuracy (mean over severities)"))
        results.append(EvalResult(task_type="image-classification", dataset_type=corrupted, dataset_name=corrupted, dataset_split=split,
                                  metric_type="mca", metric_value=round(report["mca"], 6), metric_name="mean corruption accuracy"))
    return results


def _tags_and_citations(trainer, student_record, teacher_report, extra_tags) -> tuple[list[str], list[str]]:
    args = trainer.args
    tags = list(dict.fromkeys([*TAGS, args.loss_name, *(extra_tags or [])]))
    cites = [loss_entry(args.loss_name).citation] if args.uses_teacher else []
    if args.prune_teacher:
        cites.append(citations.R2KD)
    if args.second_view != "none":
        cites.append(view_entry(args.second_view).citation)
    if student_record or (teacher_report and teacher_report["method"] == "structured"):
        tags.append("pruning")
        cites.append(citations.TORCH_PRUNING)
    if trainer.run_record.robustness:
        cites.append(citations.COMMON_CORRUPTIONS)
    return tags, [c for c in dict.fromkeys(cites) if c]


def _sections(trainer, student, student_record, teacher_report) -> list[dict[str, str]]:
    """The card's tables: distillation, teacher, student, data and training."""
    args, lineage = trainer.args, trainer.lineage
    final, best = final_and_best(trainer.state.log_history)
    teacher_id = lineage.get("teacher")
    loss_rows = [("loss", args.loss_name), ("temperature", args.temperature), ("loss hyper-parameters", args.loss_kwargs or "defaults"),
                 ("CE / KD / second-view KD weights", f"{args.ce_weight} / {args.kd_weight} / {args.aug_kd_weight}"),
                 ("second view", args.second_view + (f" {args.second_view_kwargs}" if args.second_view_kwargs else ""))]
    teacher_rows = [("teacher", f"`{teacher_id}`" if teacher_id else None), ("teacher revision", lineage.get("teacher_revision")),
                    ("teacher trained by this run", lineage.get("teacher_training")),
                    *[(k.replace("_", " "), v) for k, v in teacher_metrics(trainer.state.log_history).items()]]
    if teacher_report:
        teacher_rows += [("teacher pruning", f"{teacher_report['method']}, amount {teacher_report['amount']}"),
                         ("pruned-teacher share w", args.pruned_teacher_weight), ("pruned-teacher BatchNorm", args.pruned_teacher_bn),
                         ("achieved weight sparsity", f"{teacher_report['sparsity_overall']:.4f}")]
    student_rows = [("parameters", f"{count_parameters(student):,}")]
    if student_record and student_record.get("pruning"):
        p = student_record["pruning"]
        student_rows += [("base architecture", student_record["base"].get("architecture")),
                         ("student pruning", f"{p['method']} ({p.get('importance')}), {p['amount']:.0%} of channels"),
                         ("params before / after", f"{p['params_before']:,} / {p['params_after']:,}"),
                         ("MACs before / after", f"{p['macs_before']:,} / {p['macs_after']:,}" if p.get("macs_after") else None)]
    data_rows = [("dataset", lineage.get("dataset")), ("train split", lineage.get("train_split")), ("eval split", lineage.get("eval_split")),
                 ("epochs", args.num_train_epochs), ("per-device batch", args.per_device_train_batch_size),
                 ("processes", args.world_size), ("learning rate", args.learning_rate), ("seed", args.seed),
                 ("final eval top-1", f"{final:.4f}" if final is not None else None), ("best eval top-1", f"{best:.4f}" if best is not None else None)]
    return [{"title": "Distillation", "body": _table(loss_rows)}, {"title": "Teacher", "body": _table(teacher_rows)},
            {"title": "Student", "body": _table(student_rows)}, {"title": "Data and training", "body": _table(data_rows)}]


def _onnx_section(onnx: dict) -> dict[str, str]:
    return {"title": "ONNX", "body": f"`model.onnx` (opset {onnx['opset']}, input `pixel_values` (batch, {', '.join(map(str, onnx['input_size']))}), "
            f"output `logits`, dynamic batch) was exported from this student and checked with ONNX Runtime: max abs "
            f"difference to torch {onnx['max_abs_diff']:.1e} on {onnx['check_batch']} images.\n\n```python\nimport "
            "onnxruntime as ort\nsession = ort.InferenceSession('model.onnx')\nlogits = session.run(['logits'], "
            "{'pixel_values': pixel_values_numpy})[0]\n```"}


CARD_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "model_card.md")


def build_model_card(trainer, model_name: str | None = None, extra_tags: list[str] | None = None,
                     extra_results: list[EvalResult] | None = None) -> ModelCard:
    """A ``huggingface_hub.ModelCard`` rendered from ``templates/model_card.md`` (``ModelCardData`` metadata,
    model-index) with the student's lineage and what the run recorded after training (``trainer.run_record``)."""
    from .corruptions import robustness_markdown

    args, lineage, record = trainer.args, trainer.lineage, trainer.run_record
    student = unwrap(trainer.model)
    student_record = record_of(student) or record_of(timm_module_of(student) or student)
    teacher_report = trainer.teacher.pruning_report if trainer.teacher is not None else None
    teacher_id = lineage.get("teacher")
    name = model_name or args.hub_model_id or "student"
    tags, cites = _tags_and_citations(trainer, student_record, teacher_report, extra_tags)
    results = _eval_results(trainer, extra_results)
    teacher_repo = teacher_id.removeprefix("hf-hub:") if isinstance(teacher_id, str) else ""
    is_hub_teacher = REPO_ID_PATTERN.match(teacher_repo) and not os.path.exists(os.path.expanduser(teacher_id))
    data = ModelCardData(
        library_name="timm" if timm_module_of(student) is not None else "transformers", pipeline_tag="image-classification",
        tags=tags, license="apache-2.0", base_model=teacher_repo if is_hub_teacher else None,
        datasets=[lineage["dataset"]] if lineage.get("dataset") else None, model_name=name if results else None,
        eval_results=results or None,
    )
    intro = (f"This image classifier was distilled with [r2kd_hf](https://arxiv.org/abs/2311.13934) from the teacher "
             f"`{teacher_id}` with the **{args.loss_name}** loss." if teacher_id else "Trained with r2kd_hf (cross-entropy only).")
    sections = _sections(trainer, student, student_record, teacher_report)
    if record.onnx:
        sections.append(_onnx_section(record.onnx))
    if record.robustness:
        sections.append({"title": "Robustness (common corruptions)", "body": robustness_markdown(record.robustness)})
    if lineage.get("recipe"):
        sections.append({"title": "Recipe", "body": "```yaml\n" + lineage["recipe"].strip() + "\n```"})
    if cites:
        sections.append({"title": "Citations", "body": "```bibtex\n" + "\n\n".join(cites) + "\n```"})
    return ModelCard.from_template(data, template_path=CARD_TEMPLATE, model_name=name, intro=intro, usage=_usage(trainer),
                                   sections=sections)
