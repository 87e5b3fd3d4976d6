"""The command line's contract: one clear message and an exit code, a traceback only with ``--debug``.

Exit codes: 0 success; 2 a usage, recipe or input error (unknown key or flag, out-of-range value, missing file, a
dataset with fewer than two classes, a teacher folder trained with other settings, a damaged checkpoint, an output
folder another run holds), found before any training; 1 a runtime error (data, models, Hub, a NaN/inf loss, a failed
write); 143 / 130 stopped by SIGTERM / SIGINT after writing a checkpoint.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

USAGE_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError)  # raised while parsing: the recipe or flags are wrong


def _message(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return str(text).strip() or type(error).__name__


def main(argv: list[str] | None, job: Callable, default_recipe: str | None = None, default_output_dir: str | None = None) -> int:
    """Parse ``argv`` (recipe + overrides), then run ``job(model_args, data_args, training_args, info)``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    from .recipe import parse_recipe

    try:
        parsed = parse_recipe(argv, default_recipe=default_recipe, default_output_dir=default_output_dir)
    except SystemExit as done:  # --help, --print_recipe (0) or argparse's own usage errors (2)
        return done.code if isinstance(done.code, int) else 2
    except USAGE_ERRORS as error:
        if debug:
            raise
        print(f"error: {_message(error)}", file=sys.stderr)
        return 2
    output_dir = parsed[2].output_dir
    return reported(lambda: (job(*parsed), _end_process_group()), debug=debug, output_dir=output_dir)


def reported(action: Callable[[], object], *, debug: bool, usage_errors: tuple[type[BaseException], ...] = (),
             output_dir: str | None = None) -> int:
    """Run ``action`` and turn what it raises into one message on stderr and the exit code of this module's docstring
    (a traceback only with ``debug``). ``usage_errors``: what counts as the user's input error (exit 2) besides
    :class:`~r2kd_hf.messages.UsageError`; ``output_dir``: the folder a failed write names."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    from ..faults import Preempted, is_write_failure, write_failure
    from ..messages import UsageError

    try:
        action()
    except (UsageError, *usage_errors) as error:  # an input mistake found before the work (data, a stale teacher, a checkpoint)
        if debug:
            raise
        print(f"error: {_message(error)}", file=sys.stderr)
        return 2
    except Preempted as stopped:  # SIGTERM/SIGINT: a checkpoint was written (save_on_signal)
        print(f"{stopped}", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the command line reports every failure the same way
        if debug:
            raise
        if output_dir is not None and is_write_failure(error):
            print(f"error: {write_failure(error, output_dir)}", file=sys.stderr)
            return 1
        print(f"error: {type(error).__name__}: {_message(error)}\n(run again with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


def _end_process_group() -> None:
    """Leave a multi-process run in step: every rank reaches a barrier, then tears the process group down itself,
    instead of leaving gloo's sockets to interpreter shutdown (where one rank can abort while another still talks)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
