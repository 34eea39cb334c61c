"""Start training: one process, or one process per worker of a multi-worker cluster.

One worker trains in this process (under Slurm the plugin already runs the job in an `srun -n1`
job step). With `train.workers` > 1 the train job starts its workers itself:
- in a Slurm job (snakemake --profile slurm), with `srun -n <workers>` (the rule's `mpi` resource):
  each task resolves the cluster with SlurmClusterResolver;
- elsewhere, as local processes with a TF_CONFIG each (127.0.0.1, free ports): the same code path
  as a cluster, runnable on one machine. On a machine with GPUs each local worker gets one of its
  own (CUDA_VISIBLE_DEVICES), as SlurmClusterResolver gives each Slurm task one: two workers that
  both saw every GPU would each mirror over all of them.
Workers get their arguments from a JSON file, so no config value passes through a shell.

Worker entry point: python -m workflow.train.launch <arguments.json>
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def run_training(*, launcher: str, cpus_per_task: int = 1, **arguments: Any) -> dict[str, Any] | None:
    """Train in this process, or start `train.workers` processes and wait for all of them."""
    workers = int(arguments["params"]["train"]["workers"])
    in_slurm = bool(launcher and os.environ.get("SLURM_JOB_ID"))
    if workers == 1:
        from workflow.train.trainer import train

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
    return [sys.executable, "-m", "workflow.train.launch", arguments_path]


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


def visible_gpus(env: Mapping[str, str]) -> list[str]:
    """The GPUs this process may use, found without importing TensorFlow: CUDA_VISIBLE_DEVICES where it
    is set (indices or UUIDs), else the GPUs `nvidia-smi -L` lists; none without either."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return [device.strip() for device in env["CUDA_VISIBLE_DEVICES"].split(",") if device.strip() not in ("", "-1")]
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return []
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")] if listed.returncode == 0 else []
    return [str(index) for index in range(len(lines))]


def worker_gpus(workers: int, gpus: list[str]) -> list[str | None]:
    """Each local worker's CUDA_VISIBLE_DEVICES: one GPU of its own; None (left as it is) on a machine
    without GPUs, where the workers train on the CPU."""
    if not gpus:
        return [None] * workers
    if len(gpus) < workers:
        raise ValueError(
            f"train.workers: {workers} local workers need a GPU each, and this machine shows {len(gpus)} "
            f"({', '.join(gpus)}); ask for at most {len(gpus)} workers, or strategy mirrored to use every GPU "
            "from one process"
        )
    return list[str | None](gpus[:workers])


def _run_local(workers: int, arguments_path: str) -> None:
    addresses = local_cluster(workers)
    devices = worker_gpus(workers, visible_gpus(os.environ))
    processes = []
    for index, device in enumerate(devices):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        processes.append(subprocess.Popen(worker_command(arguments_path), env=env))
    on = f", GPUs {', '.join(str(device) for device in devices)}" if devices[0] is not None else ""
    log.info("started %d local workers on %s%s", workers, ", ".join(addresses), on)
    codes = [process.wait() for process in processes]
    failed = [f"worker {index}: exit code {code}" for index, code in enumerate(codes) if code != 0]
    if failed:
        raise RuntimeError("training workers failed: " + "; ".join(failed))


def main() -> None:
    """Worker entry point: train with the arguments in the JSON file named on the command line."""
    from workflow.infra.logs import log_to_file

    log_to_file(None)
    with open(sys.argv[1], encoding="utf-8") as handle:
        arguments = json.load(handle)
    from workflow.train.trainer import train

    train(**arguments)


if __name__ == "__main__":
    main()
