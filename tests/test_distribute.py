"""Strategy choice: what `auto` resolves to, and mirrored training on two logical CPU devices."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import train_params

from workflow.distribute import resolve_strategy_name, slurm_port_base, slurm_tasks, tpu_resolver_arguments
from workflow.evaluate import evaluate


@pytest.mark.parametrize(
    ("env", "gpus", "tpu", "expected"),
    [
        ({}, 0, False, "default"),
        ({}, 1, False, "default"),
        ({}, 4, False, "mirrored"),
        ({}, 0, True, "tpu"),
        ({"SLURM_NTASKS": "4"}, 0, False, "multi_worker_mirrored"),
        ({"SLURM_NTASKS": "1"}, 2, False, "mirrored"),
        ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "1"}, 0, False, "multi_worker_mirrored"),
        ({"TF_CONFIG": "{}"}, 0, False, "multi_worker_mirrored"),
    ],
)
def test_auto_follows_what_the_job_sees(env, gpus, tpu, expected):
    """auto: several Slurm tasks -> multi-worker; several GPUs -> mirrored; a TPU -> tpu; else default."""
    assert resolve_strategy_name("auto", env, gpus, tpu) == expected


def test_explicit_names_are_kept_and_unknown_ones_refused():
    """A named strategy is used as is; an unknown name lists the known ones."""
    assert resolve_strategy_name("one_device", {"SLURM_NTASKS": "8"}, 8, True) == "one_device"
    with pytest.raises(ValueError, match="unknown strategy 'horovod'; known: auto, default"):
        resolve_strategy_name("horovod", {}, 0, False)


def test_slurm_tasks_ignores_garbage():
    """Non-numeric Slurm variables count as one task."""
    assert slurm_tasks({"SLURM_NTASKS": "x"}) == 1
    assert slurm_tasks({"SLURM_NTASKS": "3"}) == 3


def test_mirrored_trains_on_two_logical_cpu_devices(train_in_subprocess):
    """strategy mirrored with devices 2 trains with 2 replicas on CPU."""
    info, folder = train_in_subprocess(train_params(strategy="mirrored", devices=2, epochs=1))

    assert info["strategy"] == "MirroredStrategy"
    assert info["replicas"] == 2
    assert (folder / "model.keras").is_file()


def test_two_local_workers_form_one_cluster_and_match_one_worker(digits_shards, tmp_path):
    """workers 2 outside Slurm: two real processes in one MultiWorkerMirroredStrategy cluster (TF_CONFIG);
    test accuracy within 5 points of one worker with the same global batch (seen: within 1 point)."""
    results = {}
    for workers in (1, 2):
        folder = tmp_path / f"workers{workers}"
        params = train_params(
            workers=workers, epochs=8, batch_size=64, optimizer={"name": "adam", "learning_rate": 0.01}
        )
        program = (
            "import json, sys; from workflow.launch import run_training; "
            "run_training(launcher='', **json.loads(sys.argv[1]))"
        )
        arguments = {
            "shards_dir": digits_shards, "model_path": str(folder / "model.keras"),
            "history_path": str(folder / "history.json"), "info_path": str(folder / "train.json"),
            "tensorboard_dir": str(folder / "tensorboard"), "checkpoint_root": str(folder / "checkpoints"),
            "params": params, "seed": 0,
        }  # fmt: skip
        result = subprocess.run([sys.executable, "-c", program, json.dumps(arguments)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        evaluate(model_path=str(folder / "model.keras"), shards_dir=digits_shards,
                 metrics_path=str(folder / "metrics.json"), batch_size=256, target=None)  # fmt: skip
        results[workers] = (json.loads((folder / "train.json").read_text()),
                            json.loads((folder / "metrics.json").read_text()))  # fmt: skip

    info, metrics = results[2]
    assert info["replicas"] == 2
    assert sorted(worker["task_id"] for worker in info["workers"]) == [0, 1]
    assert len({worker["pid"] for worker in info["workers"]}) == 2
    assert abs(metrics["accuracy"] - results[1][1]["accuracy"]) < 0.05
    assert not list((tmp_path / "workers2").glob(".worker*.json"))


def test_tpu_resolution_reads_config_then_environment():
    """strategy tpu resolves name, zone and project from train.tpu, the name falling back to TPU_NAME."""
    assert tpu_resolver_arguments({"name": "v3-8", "zone": "us-central1-a", "project": "p"}, {}) == {
        "tpu": "v3-8",
        "zone": "us-central1-a",
        "project": "p",
    }
    assert tpu_resolver_arguments({}, {"TPU_NAME": "grpc://10.0.0.2:8470"})["tpu"] == "grpc://10.0.0.2:8470"
    with pytest.raises(ValueError, match="runtime.tpu.name"):
        tpu_resolver_arguments({}, {})


def test_slurm_ports_differ_between_jobs():
    """Two jobs on one node get disjoint port ranges for their workers."""
    first, second = slurm_port_base({"SLURM_JOB_ID": "41"}), slurm_port_base({"SLURM_JOB_ID": "42"})

    assert abs(first - second) >= 16
    assert min(first, second) >= 20_000 and max(first, second) + 16 < 65_536
