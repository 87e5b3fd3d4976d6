"""Faults during a run: each stops clearly (exit code, message) and leaves the output folder in a state a user can act
on: nothing non-finite saved, a resumable checkpoint after SIGTERM, a second run refused, no half-written checkpoint."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from test_bad_inputs import DISTILL, cli, refused

SMALL = ["--max_train_samples", "128", "--max_eval_samples", "64", "--train_teacher_epochs", "1", "--per_device_train_batch_size", "16"]


def _teacher(tmp_path):
    """A trained quickstart teacher (folder), so the runs below distil without training one."""
    folder = tmp_path / "teacher_run"
    if not (folder / "teacher" / "config.json").exists():
        result = cli([*SMALL, "--max_steps", "1", "--output_dir", str(folder)], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    return str(folder / "teacher")


def _finite(path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_file(str(path)).values() if t.is_floating_point())


@pytest.mark.slow
def test_a_diverging_run_stops_and_saves_nothing_non_finite(tmp_path):
    out = tmp_path / "out"
    result = cli([*SMALL, "--teacher", _teacher(tmp_path), "--learning_rate", "1e6", "--max_steps", "20", "--save_strategy", "steps",
                  "--save_steps", "1", "--logging_steps", "1", "--output_dir", str(out)], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "became NaN or inf" in result.stderr and "--learning_rate" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "model.safetensors").exists() and not (out / "README.md").exists()  # no final model, no card
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert all(_finite(c / "model.safetensors") for c in checkpoints)  # only finite states were checkpointed
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text()) if checkpoints else {"log_history": []}
    assert all(e["loss"] == e["loss"] for e in state["log_history"] if "loss" in e)  # no NaN logged, none shown as 0
    if checkpoints:
        assert f"{checkpoints[-1]}, is kept" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", [["--small_image_path", "true"], ["--small_image_path", "false", "--dataloader_num_workers", "1"]],
                         ids=["small_image_path", "pil_with_a_worker"])
def test_sigterm_writes_a_checkpoint_whose_resume_equals_the_uninterrupted_run(tmp_path, path):
    teacher = _teacher(tmp_path)
    common = [*SMALL, *path, "--teacher", teacher, "--max_steps", "120", "--save_strategy", "steps", "--save_steps", "100",
              "--logging_steps", "4", "--eval_strategy", "no"]
    whole = cli([*common, "--output_dir", str(tmp_path / "whole")], tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, DISTILL, *common, "--output_dir", str(out)], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="2"))
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "teacher_pruning.json").exists():  # written as training begins
        time.sleep(0.2)
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-3000:]
    newest = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert "--resume_from_checkpoint last" in stderr and str(newest) in stderr and "SIGTERM" in stderr
    stopped_at = int(newest.name.split("-")[1])
    assert 0 < stopped_at < 120 and not (out / "model.safetensors").exists()  # stopped early, no final model
    resumed = cli([*common, "--output_dir", str(out), "--resume_from_checkpoint", "last"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical to the uninterrupted run


def test_a_second_run_into_a_held_folder_is_refused_and_a_dead_holder_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        record = {"pid": holder.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00", "command": "r2kd-distill ..."}
        (out / ".r2kd_run.lock").write_text(json.dumps(record))
        result = cli([*SMALL, "--output_dir", str(out)], tmp_path)
        refused(result, "Another run is writing to", f"pid {holder.pid}", "another --output_dir")
        assert sorted(os.listdir(out)) == [".r2kd_run.lock"]  # nothing done, the holder's lock untouched
    finally:
        holder.kill()
        holder.wait()
    from r2kd_hf.faults import OutputDirLock

    lock = OutputDirLock(str(out))  # the holder is gone: its lock is taken over, and released at the end
    with lock:
        assert json.loads((out / ".r2kd_run.lock").read_text())["pid"] == os.getpid()
    assert not (out / ".r2kd_run.lock").exists()


@pytest.mark.slow
def test_a_full_disk_names_the_file_and_leaves_no_half_written_checkpoint(tmp_path):
    teacher = _teacher(tmp_path)
    out = tmp_path / "out"
    limit = 200_000  # bytes per file: the teacher and data fit, the student's checkpoint files do not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, DISTILL, *SMALL, "--teacher", teacher, "--max_steps", "4", "--save_strategy", "steps",
                             "--save_steps", "2", "--small_image_path", "false", "--output_dir", str(out)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600, preexec_fn=small_files,
                            env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Could not write" in result.stderr and "File too large" in result.stderr and "Traceback" not in result.stderr
    assert "Removed the half-written" in result.stderr and "start the run again" in result.stderr
    assert not list(out.glob("checkpoint-*"))  # nothing that looks resumable and is not


def test_per_sample_seeds_make_augmentation_independent_of_order_workers_and_global_state():
    import random

    from r2kd_hf.data import PerSampleSeeds

    class Draws(torch.utils.data.Dataset):  # stands in for a PIL pipeline: draws from all three generators
        def __len__(self):
            return 6

        def __getitem__(self, i):
            import numpy as np

            return torch.rand(2), random.random(), float(np.random.rand())

        def __getitems__(self, indices):  # as datasets.Dataset has: a loader must not fetch through it, past the seeds
            return [self[i] for i in indices]

    data = PerSampleSeeds(Draws(), seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    forward = [data[i] for i in range(6)]
    assert torch.equal(torch.get_rng_state(), before)  # the main process's generators are left as they were
    torch.manual_seed(123)
    random.seed(9)
    backward = [data[i] for i in reversed(range(6))][::-1]  # another order, another global state
    assert all(torch.equal(a[0], b[0]) and a[1:] == b[1:] for a, b in zip(forward, backward))
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2)  # the same in worker processes
    assert torch.equal(torch.cat([b[0] for b in loader]), torch.stack([f[0] for f in forward]))
    data.set_epoch(1)
    assert not torch.equal(data[0][0], forward[0][0])  # a new epoch draws new augmentations
    assert len({round(f[1], 12) for f in forward}) == 6  # and samples differ from each other


@pytest.mark.slow
def test_sigterm_to_one_process_of_a_launch_stops_every_process_at_the_same_step(tmp_path):
    """Under ``accelerate launch`` a signal to one rank (a scheduler may signal them one by one) stops all of them
    after the same step, with one checkpoint of that step."""
    import psutil

    from test_multiprocess import accelerate_2_cpu

    teacher = _teacher(tmp_path)
    out = tmp_path / "ddp"
    launcher = subprocess.Popen([*accelerate_2_cpu(), DISTILL, *SMALL, "--teacher", teacher, "--max_steps", "200",
                                 "--save_strategy", "steps", "--save_steps", "1000", "--eval_strategy", "no", "--use_cpu", "true",
                                 "--output_dir", str(out)], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "teacher_pruning.json").exists():
        time.sleep(0.2)
    time.sleep(3.0)
    workers = [p for p in psutil.Process(launcher.pid).children(recursive=True) if "distill.py" in " ".join(p.cmdline())]
    assert len(workers) == 2, [p.cmdline() for p in workers]
    workers[-1].send_signal(signal.SIGTERM)  # one rank only
    _, stderr = launcher.communicate(timeout=300)
    checkpoints = list(out.glob("checkpoint-*"))
    assert len(checkpoints) == 1, (sorted(os.listdir(out)), stderr[-3000:])  # both ranks stopped after the same step
    step = int(checkpoints[0].name.split("-")[1])
    assert 0 < step < 200 and json.loads((checkpoints[0] / "trainer_state.json").read_text())["global_step"] == step
    assert "Stopped by SIGTERM" in stderr and not (out / "model.safetensors").exists()
