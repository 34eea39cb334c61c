"""Start training: one process, or one process per worker of a multi-worker cluster.

One worker trains in this process (under Slurm the plugin already runs the job in an `srun -n1`
job step). With `train.workers` > 1 the train job starts its workers itself:
- in a Slurm job (snakemake --profile slurm), with `srun -n <workers>` (the rule's `mpi` resource):
  each task resolves the cluster with SlurmClusterResolver;
- elsewhere, as local processes with a TF_CONFIG each (127.0.0.1, free ports): the same code path
  as a cluster, runnable on one machine.
Workers get their arguments from a JSON file, so no config value passes through a shell.

Worker entry point: python -m workflow.launch <arguments.json>
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
from typing import Any

log = logging.getLogger(__name__)


def run_training(*, launcher: str, cpus_per_task: int = 1, **arguments: Any) -> dict[str, Any] | None:
    """Train in this process, or start `train.workers` processes and wait for all of them."""
    workers = int(arguments["params"]["train"]["workers"])
    in_slurm = bool(launcher and os.environ.get("SLURM_JOB_ID"))
    if workers == 1:
        from workflow.train import train

        return train(**arguments)
    folder = pathlib.Path(arguments["checkpoint_root"])
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="launch-", dir=folder, delete=False) as handle:
        json.dump(arguments, handle)
    try:
        if in_slurm:
            _run_srun(launcher, workers, cpus_per_task, handle.name)
        else:
            _run_local(workers, handle.name)
    finally:
        os.unlink(handle.name)
    return None


def worker_command(arguments_path: str) -> list[str]:
    """The command one worker runs."""
    return [sys.executable, "-m", "workflow.launch", arguments_path]


def _run_srun(launcher: str, workers: int, cpus_per_task: int, arguments_path: str) -> None:
    # --kill-on-bad-exit: if one worker dies, stop the others instead of leaving them in a collective.
    # -c: the jobstep executor drops SLURM_CPUS_PER_TASK, and a step would otherwise get 1 CPU per task.
    command = [launcher, "-n", str(workers), "-c", str(cpus_per_task), "--kill-on-bad-exit=1",
               *worker_command(arguments_path)]  # fmt: skip
    log.info("starting %d workers: %s", workers, " ".join(command))
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{launcher} of {workers} training workers failed with exit code {result.returncode}")


def local_cluster(workers: int) -> list[str]:
    """Addresses of `workers` free ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(workers)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run_local(workers: int, arguments_path: str) -> None:
    addresses = local_cluster(workers)
    processes = []
    for index in range(workers):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(worker_command(arguments_path), env=env))
    log.info("started %d local workers on %s", workers, ", ".join(addresses))
    codes = [process.wait() for process in processes]
    failed = [f"worker {index}: exit code {code}" for index, code in enumerate(codes) if code != 0]
    if failed:
        raise RuntimeError("training workers failed: " + "; ".join(failed))


def main() -> None:
    """Worker entry point: train with the arguments in the JSON file named on the command line."""
    from workflow.logs import log_to_file

    log_to_file(None)
    with open(sys.argv[1], encoding="utf-8") as handle:
        arguments = json.load(handle)
    from workflow.train import train

    train(**arguments)


if __name__ == "__main__":
    main()
