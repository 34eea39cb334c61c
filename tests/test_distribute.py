"""Strategy choice: what `auto` resolves to, and mirrored training on two logical CPU devices."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import train_params

from workflow.evaluate.metrics import evaluate
from workflow.train.distribute import (
    mirrored_replicas,
    resolve_strategy_name,
    slurm_port_base,
    slurm_tasks,
    tpu_resolver_arguments,
)


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


@pytest.mark.parametrize(
    ("name", "devices", "gpus", "expected"),
    [("auto", 1, 2, 2), ("auto", 1, 8, 8), ("auto", 2, 8, 2), ("mirrored", 1, 2, 1), ("mirrored", 2, 2, 2),
     ("auto", 2, 0, 2), ("mirrored", 2, 0, 2)],
)  # fmt: skip
def test_auto_mirrors_over_every_gpu_unless_devices_says_how_many(name, devices, gpus, expected):
    """auto on a job with several GPUs takes them all; an explicit `mirrored` (or devices > 1) keeps train.devices."""
    assert mirrored_replicas(name, devices, gpus) == expected


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
            "import json, sys; from workflow.train.launch import run_training; "
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


def test_each_local_worker_gets_a_gpu_of_its_own(tmp_path):
    """The local launcher's GPU per worker: from CUDA_VISIBLE_DEVICES where set, else nvidia-smi's list (a
    stand-in script here: what is tested is the assignment, not the driver); none on a CPU machine."""
    from workflow.train.launch import visible_gpus, worker_gpus

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-aa)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-bb)'\n")
    smi.chmod(0o755)

    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3", "PATH": str(tmp_path)}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}) == ["GPU-aa", "GPU-bb"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1", "PATH": str(tmp_path)}) == []
    assert visible_gpus({"PATH": str(tmp_path)}) == ["0", "1"]
    assert visible_gpus({"PATH": str(tmp_path / "nowhere")}) == []
    assert worker_gpus(2, ["0", "1"]) == ["0", "1"]
    assert worker_gpus(2, ["0", "1", "2"]) == ["0", "1"]
    assert worker_gpus(2, []) == [None, None]
    with pytest.raises(ValueError, match=r"train.workers: 3 local workers need a GPU each, and this machine shows 2"):
        worker_gpus(3, ["0", "1"])


def test_mixed_precision_is_bfloat16_where_the_gpu_has_it_and_float16_keeps_xla_only_on_one_replica():
    """bfloat16 on CPUs and Ampere-or-later GPUs (no loss scaling); float16 on older ones, where XLA is turned
    off under a strategy (Keras 3.15's loss scaling fails there with XLA, measured on the H200 with float16)."""
    from workflow.train.trainer import precision_policy, use_xla

    assert precision_policy([]) == "mixed_bfloat16"
    assert precision_policy([(9, 0)]) == precision_policy([(8, 0), (9, 0)]) == "mixed_bfloat16"
    assert (
        precision_policy([(7, 0)]) == precision_policy([(9, 0), (7, 5)]) == precision_policy([None]) == "mixed_float16"
    )
    assert use_xla(True, "mixed_bfloat16", distributed=True) and use_xla(True, "mixed_float16", distributed=False)
    assert not use_xla(True, "mixed_float16", distributed=True) and not use_xla(False, "float32", distributed=False)
