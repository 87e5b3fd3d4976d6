#!/usr/bin/env python
"""Launch a tiny 2-process CPU distillation N times in a row and count how each launch ended.

    python benchmarks/check_launch_teardown.py --launches 20            # ~7 min on 2 cores

Every launch must exit 0 within the time limit; a SIGABRT of a rank, another non-zero code or a hang (timeout) is
counted and its last stderr lines printed. This is a check script, not a test: it takes minutes and measures a
property of the machine's gloo stack as much as of r2kd_hf.
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=180, help="Seconds before a launch counts as hung.")
    args = parser.parse_args(argv)
    outcomes = collections.Counter()
    durations = []
    for index in range(args.launches):
        with tempfile.TemporaryDirectory() as out:
            command = [
                sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                os.path.join(ROOT, "scripts", "distill.py"), "--use_cpu", "true", "--output_dir", out, "--loss_name", "none",
                "--second_view", "none", "--prune_teacher", "false", "--num_train_epochs", "1", "--max_train_samples", "256",
                "--dataloader_num_workers", "0",
            ]
            began = time.time()
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                                        env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"))
                outcome = "exit 0" if result.returncode == 0 else f"exit {result.returncode}"
                if result.returncode != 0:
                    print("\n".join(result.stderr.strip().splitlines()[-6:]), file=sys.stderr)
            except subprocess.TimeoutExpired:
                outcome = "hung"
            durations.append(time.time() - began)
            outcomes[outcome] += 1
            print(f"launch {index + 1}/{args.launches}: {outcome} ({durations[-1]:.1f} s)", flush=True)
    print(f"\n{dict(outcomes)} over {args.launches} launches; median {sorted(durations)[len(durations) // 2]:.1f} s per launch")
    return 0 if outcomes == {"exit 0": args.launches} else 1


if __name__ == "__main__":
    sys.exit(main())
