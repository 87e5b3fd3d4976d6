"""Faults during a run, each turned into a clear stop: a non-finite loss, a preemption signal, a second run into the
same output folder, a failed write.

* :class:`NonFiniteLossCallback` stops training when the loss became NaN/inf (checked on the device, synchronised with
  the host only at logging, saving and evaluation steps and every :data:`CHECK_EVERY` steps), before that step's
  checkpoint or log is written; :class:`NonFiniteLossError` names the steps and the last finite values.
* :class:`PreemptionCallback`: on SIGTERM/SIGINT the run finishes its step, writes a checkpoint and stops;
  :class:`Preempted` says where it is and how to resume. Under ``accelerate launch`` the processes agree on the step.
* :class:`OutputDirLock`: one run per output folder (the processes of one launch are one run).
* :func:`write_failure`: a failed save named (file, reason), the half-written checkpoint removed, the intact one named.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import shutil
import signal
import socket
import sys

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)
CHECK_EVERY = 10  # steps between host checks of the device-side finiteness flag (besides log/save/eval steps)
LOCK_NAME = ".r2kd_run.lock"


# ---------------------------------------------------------------------------------------------- non-finite loss
class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the run stopped before saving anything from that state."""


def nonfinite_message(first_step: int, last_step: int, log_history: list[dict], output_dir: str) -> str:
    finite = next((e for e in reversed(log_history) if "loss" in e and all(_finite(v) for v in e.values())), None)
    terms = ", ".join(f"{k} {v:.4g}" for k, v in finite.items() if k not in ("epoch", "step") and isinstance(v, (int, float))) if finite else None
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    where = f"between steps {first_step} and {last_step}" if first_step != last_step else f"at step {last_step}"
    return (f"The training loss became NaN or inf {where}; the run stopped and saved nothing from that state. "
            + (f"Last finite log (step {finite.get('step')}): {terms}. " if finite else "No finite loss was logged before. ")
            + "Usual causes: a learning rate too high for this batch size (lower --learning_rate, or set --max_grad_norm), "
            "fp16 teachers or student overflowing (use bf16 or fp32: --teacher_precision fp32, --fp16 false), or a broken "
            "teacher (check its validation accuracy in the log). "
            + (f"The last checkpoint written before it, {checkpoint}, is kept." if checkpoint else "No checkpoint was written before it.")
            + " Turn the check off with --stop_on_nonfinite_loss false.")


def _finite(value) -> bool:
    return not isinstance(value, float) or (value == value and abs(value) != float("inf"))


class NonFiniteLossCallback(TrainerCallback):
    """Raise :class:`NonFiniteLossError` once the trainer's device-side flag says a loss was not finite.

    ``flag`` returns that flag (a 0-d bool tensor, already reduced over processes, so every process raises at the
    same step). It is read on the host only when the step will log, save or evaluate, at the last step, and every
    :data:`CHECK_EVERY` steps: the checkpoint and log of a non-finite step are never written.
    """

    def __init__(self, flag, output_dir: str):
        self.flag, self.output_dir, self.checked_at = flag, output_dir, 0

    def on_step_end(self, args, state, control, **kwargs):
        due = (control.should_log or control.should_save or control.should_evaluate or control.should_training_stop
               or state.global_step % CHECK_EVERY == 0)
        if not due:
            return
        ok = bool(self.flag())
        first = self.checked_at + 1
        self.checked_at = state.global_step
        if not ok:
            raise NonFiniteLossError(nonfinite_message(first, state.global_step, state.log_history, self.output_dir))


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or inf (a student that must not be saved or pushed)."""
    return [name for name, tensor in [*model.named_parameters(), *model.named_buffers()]
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


# -------------------------------------------------------------------------------------------------- preemption
class Preempted(Exception):
    """The run was stopped by a signal after writing a checkpoint; ``exit_code`` is the signal's usual one."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        where = (f"a checkpoint is in {checkpoint}; continue with the same command and --resume_from_checkpoint last"
                 if checkpoint else "no checkpoint could be written (save_strategy 'no' and nothing saved)")
        super().__init__(f"Stopped by {name} after step {step}: {where}.")


class PreemptionCallback(TrainerCallback):
    """On the first SIGTERM/SIGINT: finish the step, save a checkpoint, stop. A second signal exits at once.

    One process reads its own flag after every step. Under several processes the flag is agreed (an all-reduce, a
    host sync) every ``MULTI_PROCESS_CHECK_STEPS`` steps, not every step, so all processes stop at the same step
    without a synchronisation point in every step.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)
    MULTI_PROCESS_CHECK_STEPS = 10

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal: leave now, as without this callback
            signal.signal(signum, self.previous.get(signum) or signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: finishing this step and writing a checkpoint "
              "(send it again to stop at once).", file=sys.stderr, flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handler)

    def on_step_end(self, args, state, control, **kwargs):
        if args.world_size > 1 and state.global_step % self.MULTI_PROCESS_CHECK_STEPS:
            return
        signum = self._agreed_signal(args)
        if signum:
            self.signum = signum
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def _agreed_signal(self, args) -> int:
        """The signal number if any process got one (all processes stop at the same step), else 0."""
        value = self.signum or 0
        if args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            tensor = torch.tensor([value], device=args.device if torch.distributed.get_backend() == "nccl" else "cpu")
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
            value = int(tensor.item())
        return value


# ---------------------------------------------------------------------------------------------- one run per folder
def _run_identity() -> dict:
    """This run: the launcher's pid under ``accelerate launch``/``torchrun`` (shared by its processes), else ours."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return {"pid": os.getppid() if launched else os.getpid(), "host": socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputDirLock:
    """A lock file in the output folder for the run's lifetime; a second run into the folder stops before any work.

    A lock left by a process that no longer runs on this host is taken over with a warning.
    """

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.identity = _run_identity()
        self.owned = False

    def acquire(self) -> None:
        from .messages import UsageError

        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        record = {**self.identity, "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "command": " ".join(sys.argv)}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None or {k: holder.get(k) for k in self.identity} == self.identity:
                    return  # our own run (another process of the same launch, or a nested teacher run)
                if holder.get("host") == self.identity["host"] and not _alive(int(holder.get("pid", 0))):
                    logger.warning("Taking over %s: the run that held it (pid %s, started %s) no longer runs.", self.path,
                                   holder.get("pid"), holder.get("started"))
                    os.remove(self.path)
                    continue
                raise UsageError(
                    f"Another run is writing to {os.path.dirname(self.path)!r}: pid {holder.get('pid')} on {holder.get('host')}, "
                    f"started {holder.get('started')} ({holder.get('command')}). Two runs in one folder overwrite each other's "
                    f"model and checkpoints: give this run another --output_dir, or wait for that one (if it is gone, delete {self.path}).")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            self.owned = True
            return

    def _holder(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.owned and os.path.exists(self.path):
            os.remove(self.path)
        self.owned = False

    def __enter__(self) -> "OutputDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------------------------ failed writes
def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` cannot be resumed from (a truncated model file, unreadable trainer state), or ``None``."""
    from safetensors import safe_open

    weights = os.path.join(path, "model.safetensors")
    if not os.path.exists(weights):
        return "it has no model.safetensors"
    try:
        with safe_open(weights, "pt"):
            pass
    except Exception as error:  # noqa: BLE001 - safetensors' own check of the header against the file size
        return f"{weights} ({os.path.getsize(weights):,} bytes) is unreadable, probably cut short while writing ({str(error).splitlines()[0]})"
    try:
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as handle:
            json.load(handle)
    except (OSError, ValueError):
        return "its trainer_state.json is missing or unreadable"
    return None



WRITE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM)


def is_write_failure(error: BaseException) -> bool:
    """A save that failed for lack of space, a file-size limit or permissions (safetensors reports them as text)."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return True
    text = str(error)
    return type(error).__name__ == "SafetensorError" and any(s in text for s in ("os error 27", "os error 28", "os error 13",
                                                                                  "File too large", "No space left"))


def write_failure(error: BaseException, output_dir: str) -> str:
    """The message for a failed save; the checkpoint folder it left half-written is removed (it would look resumable)."""
    removed = []
    if os.path.isdir(output_dir):
        for name in sorted(os.listdir(output_dir)):
            folder = os.path.join(output_dir, name)
            if name.startswith("checkpoint-") and os.path.isdir(folder) and checkpoint_problem(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    from transformers.trainer_utils import get_last_checkpoint

    intact = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    file = getattr(error, "filename", None)
    reason = os.strerror(error.errno) if isinstance(error, OSError) and error.errno else str(error).splitlines()[0][:200]
    return (f"Could not write {file or (removed[0] if removed else output_dir)}: {reason}. "
            + (f"Removed the half-written {', '.join(removed)}. " if removed else "")
            + (f"The previous checkpoint {intact} is intact: free space (or fix permissions) and continue with "
               "--resume_from_checkpoint last." if intact else "No earlier checkpoint exists: free space (or fix "
               "permissions) and start the run again."))
