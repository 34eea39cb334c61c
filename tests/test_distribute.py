"""Strategy choice: what `auto` resolves to, and mirrored training on two logical CPU devices."""

from __future__ import annotations

import pytest
from helpers import train_params

from workflow.distribute import resolve_strategy_name, slurm_tasks


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
