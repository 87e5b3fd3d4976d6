"""One R2KD step on a fixed global batch of 8; run with 1 process or under `accelerate launch` with 2."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from helpers import BlobImages, TinyNet  # noqa: E402
from r2kd_hf import R2KDConfig, R2KDTrainer  # noqa: E402


def main(output_dir: str, loss_name: str, gather: str = "gather") -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    student, teacher = TinyNet(seed=2), TinyNet(seed=1)
    args = R2KDConfig(
        output_dir=output_dir, per_device_train_batch_size=8 // world, max_steps=1, learning_rate=0.5, optim="sgd",
        lr_scheduler_type="constant", max_grad_norm=0.0, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, validate_teacher=False, seed=0, ddp_find_unused_parameters=False,
        loss_name=loss_name, loss_kwargs={"rank_mode": "soft"} if loss_name == "r2kd" else {},
        gather_across_processes=gather == "gather",
    )
    trainer = R2KDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=BlobImages(8))
    trainer.train()
    if trainer.is_world_process_zero():
        os.makedirs(output_dir, exist_ok=True)
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, os.path.join(output_dir, "weights.safetensors"))
        logs = next(e for e in trainer.state.log_history if "loss" in e)
        logs["world_size"] = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        with open(os.path.join(output_dir, "logs.json"), "w") as handle:
            json.dump(logs, handle)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of gloo, which occasionally aborts or hangs a rank on this CPU setup


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "r2kd", sys.argv[3] if len(sys.argv) > 3 else "gather")
