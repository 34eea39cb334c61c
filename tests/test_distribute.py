"""Strategy choice: what `auto` resolves to, and mirrored training on two logical CPU devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

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


def test_mirrored_trains_on_two_logical_cpu_devices(digits_shards, tmp_path):
    """strategy mirrored with devices 2 trains with 2 replicas on CPU (a fresh process: devices are set at start-up)."""
    params = {
        "model": {"name": "mlp", "hidden_units": [16], "dropout": 0.0},
        "train": {
            "epochs": 1,
            "batch_size": 64,
            "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
            "schedule": {"name": "constant", "boundaries": [], "factors": [], "alpha": 0.0, "decay_rate": 0.9},
            "shuffle_buffer": 100,
            "strategy": "mirrored",
            "devices": 2,
            "deterministic": False,
            "mixed_precision": False,
            "jit_compile": False,
            "run_eagerly": False,
        },
    }
    program = textwrap.dedent(f"""
        import json
        from workflow.train import train
        info = train(shards_dir={digits_shards!r}, model_path={str(tmp_path / "model.keras")!r},
                     history_path={str(tmp_path / "history.json")!r}, info_path={str(tmp_path / "train.json")!r},
                     tensorboard_dir={str(tmp_path / "tb")!r}, checkpoint_root={str(tmp_path / "ckpt")!r},
                     params=json.loads({json.dumps(params)!r}), seed=0)
    """)

    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "train.json").read_text())
    assert info["strategy"] == "MirroredStrategy"
    assert info["replicas"] == 2
    assert (tmp_path / "model.keras").is_file()
