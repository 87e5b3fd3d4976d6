"""The end of a run: evaluate, export, measure robustness, write the card, recipe and summary, print, plot, push.

What the run adds after training reaches the trainer as one :class:`r2kd_hf.RunRecord` (``trainer.record_run``);
the card and the one-commit push read it there.
"""

from __future__ import annotations

import json
import logging
import os

from ..data import LoadedData
from ..faults import NonFiniteLossError, nonfinite_parameters
from ..introspection import count_macs, count_parameters, unwrap
from ..metrics import final_and_best, teacher_metrics
from ..run_record import RunRecord
from ..trainer import R2KDTrainer
from .recipe import DataArguments, ModelArguments

logger = logging.getLogger(__name__)


def finish(trainer: R2KDTrainer, model_args: ModelArguments, data_args: DataArguments, info: dict, data: LoadedData,
           data_config: dict, student_report: dict | None, role: str, skipped: dict) -> dict:
    """After training: evaluate, save; on process zero ONNX, corruptions, card, recipe, summary and plots; one push."""
    training_args = trainer.args
    broken = nonfinite_parameters(unwrap(trainer.accelerator.unwrap_model(trainer.model)))
    if broken:  # never saved as the final model, never pushed
        raise NonFiniteLossError(f"The trained {role} holds NaN or inf values ({len(broken)} tensors, first {broken[0]!r}); it was "
                                 "not saved or pushed. Lower --learning_rate or use fp32 (docs/troubleshooting.md).")
    metrics = _latest_eval(trainer) or trainer.evaluate()  # no second pass when the last step was just evaluated
    if not training_args.push_to_hub:  # push_to_hub saves the model itself, once, with the final card
        trainer.save_model()
    summary = {}
    robustness = None
    if trainer.is_world_process_zero() and model_args.export_onnx and role == "student":
        from ..export import export_onnx

        size = tuple(data_config["input_size"])
        exported = export_onnx(trainer.accelerator.unwrap_model(trainer.model), os.path.join(training_args.output_dir, "model.onnx"),
                               input_size=size)
        trainer.model.to(training_args.device)  # the export ran on the CPU
        trainer.record_run(RunRecord(onnx=exported, files=["model.onnx"]))
        logger.info("Wrote model.onnx (opset %d, ONNX Runtime vs torch: max abs diff %.1e)", exported["opset"], exported["max_abs_diff"])
    if trainer.is_world_process_zero():
        if data_args.corruptions:
            robustness = evaluate_robustness(trainer, data, data_config, data_args, training_args.output_dir)
        trainer.create_model_card(model_name=os.path.basename(os.path.abspath(training_args.output_dir)))
        with open(os.path.join(training_args.output_dir, "recipe.yaml"), "w", encoding="utf-8") as handle:
            handle.write(info.get("recipe_text") or "")
        summary = summarize(trainer, metrics, data_config, student_report, role, robustness)
        files = ["recipe.yaml", "summary.json", "trainer_state.json", "training_curves.png"]
        files += ["robustness.json", "corruption_accuracy.png"] if robustness else []
        if os.path.exists(os.path.join(training_args.output_dir, "skipped_images.json")) and any(skipped.values()):
            files.append("skipped_images.json")
        trainer.record_run(RunRecord(files=files))
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return summary


def evaluate_robustness(trainer: R2KDTrainer, data: LoadedData, data_config: dict, data_args: DataArguments, output_dir: str) -> dict:
    """Common-corruption accuracy of the trained model on the eval split; written next to the model and into the card."""
    from ..plots import plot_corruption_accuracy
    from .pipeline import cache_dir
    from ..corruptions import clean_images, evaluate_corruptions, save_report

    size = int(data_config["input_size"][-1])
    images, labels = clean_images(data.splits["eval"], size, data_args.corruption_max_images)
    model = trainer.accelerator.unwrap_model(trainer.model)
    report = evaluate_corruptions(model, images, labels, data_config["mean"], data_config["std"], data_args.corruptions,
                                  data_args.corruption_severities, seed=trainer.args.seed, cache_dir=cache_dir(data_args, "corruptions"))
    report["dataset"], report["split"] = data.source, data.eval_split
    save_report(report, os.path.join(output_dir, "robustness.json"))
    plot_corruption_accuracy(report, os.path.join(output_dir, "corruption_accuracy.png"))
    trainer.record_run(RunRecord(robustness=report))
    logger.info("Mean corruption accuracy %.4f (clean %.4f)", report["mca"], report["clean_accuracy"])
    return report


def _latest_eval(trainer: R2KDTrainer) -> dict | None:
    for entry in reversed(trainer.state.log_history):
        if "eval_accuracy" in entry:
            return dict(entry) if entry.get("step") == trainer.state.global_step else None
    return None


def summarize(trainer: R2KDTrainer, metrics: dict, data_config: dict, student_report: dict | None, role: str,
              robustness: dict | None = None) -> dict:
    """Print a table (teacher, pruned teacher, student: accuracy, params, MACs), write summary.json and the PNG."""
    from ..plots import plot_training_curves

    size = tuple(data_config["input_size"])
    final, best = final_and_best(trainer.state.log_history)
    rows = []
    measured = teacher_metrics(trainer.state.log_history)
    teacher = trainer.teacher
    if teacher is not None:
        rows.append(("teacher", measured.get("teacher_eval_accuracy"), count_parameters(teacher.module), count_macs(teacher.module, size)))
    if teacher is not None and teacher.pruned is not None:
        nonzero = sum(int((p != 0).sum()) for p in unwrap(teacher.pruned).parameters())
        rows.append(("pruned teacher", measured.get("pruned_teacher_eval_accuracy"), nonzero, count_macs(teacher.pruned, size)))
        rows.append(("teacher mix", measured.get("teacher_mix_eval_accuracy"), None, None))
    rows.append((role, metrics.get("eval_accuracy"), count_parameters(trainer.model), count_macs(trainer.model, size)))
    lines = [f"{'model':<16}{'top-1':>8}{'params':>14}{'MACs':>16}", "-" * 54]
    for name, accuracy, params, macs in rows:
        lines.append(
            f"{name:<16}{(f'{accuracy:.4f}' if accuracy is not None else '-'):>8}"
            f"{(f'{params:,}' if params else '-'):>14}{(f'{macs:,}' if macs else '-'):>16}"
        )
    if student_report:
        lines.append(f"student pruning: params {student_report['params_before']:,} -> {student_report['params_after']:,}")
    lines.append(f"final eval top-1 {final if final is not None else '-'}, best {best if best is not None else '-'}")
    if robustness:
        lines.append(f"common corruptions: mCA {robustness['mca']:.4f} over {len(robustness['per_corruption'])} corruptions "
                     f"(clean {robustness['clean_accuracy']:.4f}; robustness.json, corruption_accuracy.png)")
    table = "\n".join(lines)
    print("\n" + table + "\n", flush=True)
    output_dir = trainer.args.output_dir
    trainer.state.save_to_json(os.path.join(output_dir, "trainer_state.json"))
    plot_path = plot_training_curves(trainer.state.log_history, os.path.join(output_dir, "training_curves.png"))
    summary = {
        "role": role,
        "rows": [dict(zip(("model", "accuracy", "params", "macs"), row)) for row in rows],
        "final_eval_accuracy": final,
        "best_eval_accuracy": best,
        "metrics": metrics,
        "student_pruning": student_report,
        "teacher_pruning": {k: v for k, v in ((teacher.pruning_report if teacher else None) or {}).items() if k != "sparsity_per_layer"} or None,
        "plot": plot_path,
        "robustness": {k: robustness[k] for k in ("mca", "clean_accuracy", "benchmark", "images")} | {
            "per_corruption": {n: v["mean"] for n, v in robustness["per_corruption"].items()}} if robustness else None,
        "output_dir": output_dir,
    }
    with open(os.path.join(output_dir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, default=str)
    return summary
