"""Preemption-safe training: killed (SIGKILL) or stopped (SIGTERM) at several points and rerun, a run
ends with the same weights, bit for bit, and the same metrics.json as an uninterrupted one."""

from __future__ import annotations

import copy
import json
import pathlib
import re
import signal
import subprocess
import time

import keras
import numpy as np
import pytest
from helpers import runtime_params, train_command, train_params

from workflow.evaluate.metrics import evaluate
from workflow.train.checkpoint import Checkpoint, Progress

# An MLP with dropout, so the dropout seed-generator state must be restored too; 81 batches per
# epoch and a checkpoint every 10 batches, so kills land between checkpoints.
PARAMS = train_params(
    deterministic=True,
    epochs=8,
    batch_size=16,
    optimizer={"name": "adam", "learning_rate": 0.003},
)
RUNTIME = runtime_params(checkpoint={"every_epochs": 1, "every_steps": 10})
PARAMS["model"] = {"name": "mlp", "hidden_units": [32], "dropout": 0.3}


def start_training(folder: pathlib.Path, shards: str, params: dict = PARAMS, **extra: str) -> subprocess.Popen:
    command = train_command(folder, shards, params, seed=3, runtime_settings=RUNTIME, **extra)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint_state(folder: pathlib.Path) -> dict | None:
    states = list((folder / "checkpoints").glob("*/state.json"))
    return json.loads(states[0].read_text()) if states else None


def interrupt_when(
    folder: pathlib.Path, shards: str, epoch: int, batch: int, sig: signal.Signals, **training: object
) -> tuple[int, str]:
    """Start training, wait until its checkpoint has reached (epoch, batch), send `sig`; exit code and stderr."""
    process = start_training(folder, shards, **training)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        state = checkpoint_state(folder)
        if state and (state["epoch"], state["batch"]) >= (epoch, batch):
            break
        time.sleep(0.05)
    assert process.poll() is None, (
        f"training ended before reaching epoch {epoch} batch {batch}: {process.stderr.read()}"
    )
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def finish(folder: pathlib.Path, shards: str, **training: object) -> dict:
    process = start_training(folder, shards, **training)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    evaluate(model_path=str(folder / "model.keras"), shards_dir=shards, metrics_path=str(folder / "metrics.json"),
             batch_size=100, target=None)  # fmt: skip
    return json.loads((folder / "train.json").read_text())


def weights(folder: pathlib.Path) -> list[np.ndarray]:
    model = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=True)
    return [np.asarray(weight) for weight in model.get_weights()]


@pytest.fixture(scope="module")
def uninterrupted(digits_shards, tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    info = finish(folder, digits_shards)
    assert info["attempts"] == 1 and info["resumed_from"] is None
    return folder


def test_killed_three_times_and_stopped_once_ends_bitwise_equal(uninterrupted, digits_shards, tmp_path, reliability):
    """SIGKILL in epochs 1, 3 and 6 (between checkpoints) and SIGTERM in epoch 5, each followed by a rerun."""
    folder = tmp_path / "interrupted"
    folder.mkdir()
    faults = []
    for epoch, batch, sig in [(0, 30, signal.SIGKILL), (2, 50, signal.SIGKILL), (4, 20, signal.SIGTERM),
                              (5, 70, signal.SIGKILL)]:  # fmt: skip
        code, stderr = interrupt_when(folder, digits_shards, epoch, batch, sig)
        state = checkpoint_state(folder)
        faults.append((sig.name, code, state["epoch"], state["batch"]))
        assert not (folder / "model.keras").exists(), "an interrupted run left a model file"
        if sig == signal.SIGTERM:
            assert code not in (0, -signal.SIGTERM), f"SIGTERM must save and exit non-zero: {code}"
            assert "stopped by SIGTERM" in stderr and "the rerun resumes from it" in stderr, stderr[-2000:]
        else:
            assert code == -signal.SIGKILL

    info = finish(folder, digits_shards)

    print("faults (signal, exit code, checkpoint epoch, batch):", faults)
    assert info["attempts"] == 5
    assert info["resumed_from"]["epoch"] >= 5
    for mine, theirs in zip(weights(folder), weights(uninterrupted), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert (folder / "metrics.json").read_bytes() == (uninterrupted / "metrics.json").read_bytes()
    history = json.loads((folder / "history.json").read_text())
    assert len(history["loss"]) == len(history["seconds"]) == 8
    assert not list((folder / "checkpoints").glob("*/state.json")), "the checkpoint of a finished run remains"
    for name, _, epoch, batch in faults:
        reliability(f"{name} during training (checkpoint at epoch {epoch}, batch {batch})", "step train",
                    "rerun resumed; final weights bitwise equal to an uninterrupted run", 0)  # fmt: skip


def test_sigterm_checkpoint_is_taken_at_the_batch_it_arrived(digits_shards, tmp_path):
    """A SIGTERM saves where training stands when the current batch ends, and the message says where."""
    code, stderr = interrupt_when(tmp_path, digits_shards, 1, 10, signal.SIGTERM)

    state = checkpoint_state(tmp_path)
    stopped = re.search(r"stopped by SIGTERM (at epoch (\d+), batch (\d+)|after epoch (\d+))", stderr)
    assert code != 0 and stopped, stderr[-2000:]
    if stopped.group(2):
        assert (state["epoch"], state["batch"]) == (int(stopped.group(2)) - 1, int(stopped.group(3)))
    else:
        assert (state["epoch"], state["batch"]) == (int(stopped.group(4)), 0)
    assert (state["epoch"], state["batch"]) >= (1, 10)


def test_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    """A checkpoint folder whose variables do not match the model fails with the folder and the first difference."""
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="a")])
    large = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")])
    for model in (small, large):
        model.compile(optimizer="adam", loss="mse")
        model.optimizer.build(model.trainable_variables)
    Checkpoint(tmp_path).save(small, Progress(epoch=1))

    with pytest.raises(ValueError, match=f"{tmp_path}: the checkpoint does not match this model"):
        Checkpoint(tmp_path).restore(large)


def test_resume_across_the_unfreeze_epoch_ends_bitwise_equal(digits_shards, tmp_path, reliability):
    """A fine-tune that unfreezes its copied layer at epoch 2, killed before, at and after that epoch's
    start: each rerun freezes as the checkpoint's position says, and the end is bitwise equal."""
    source = tmp_path / "source"
    source.mkdir()
    finish(source, digits_shards, params={**PARAMS, "train": {**PARAMS["train"], "epochs": 1}})
    params = copy.deepcopy(PARAMS)
    params["train"]["epochs"] = 4
    params["model"]["hidden_units"] = [32, 16]
    params["model"]["init_from"] = {"experiment": "source", "seed": None, "path": None,
                                    "freeze": "transferred", "unfreeze_at_epoch": 2}  # fmt: skip
    training = {"params": params, "init_model_path": str(source / "model.keras")}
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir()
    interrupted.mkdir()
    expected = finish(straight, digits_shards, **training)
    assert expected["init_from"]["copied"] == ["hidden_0"]

    faults = []
    for epoch, batch, sig in [(1, 20, signal.SIGKILL), (2, 0, signal.SIGKILL), (2, 40, signal.SIGTERM),
                              (3, 30, signal.SIGKILL)]:  # fmt: skip
        code, _ = interrupt_when(interrupted, digits_shards, epoch, batch, sig, **training)
        state = checkpoint_state(interrupted)
        faults.append((sig.name, state["epoch"], state["batch"]))
        assert code != 0
    info = finish(interrupted, digits_shards, **training)

    print("faults (signal, checkpoint epoch, batch):", faults)
    assert info["attempts"] == 5
    for mine, theirs in zip(weights(interrupted), weights(straight), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert (interrupted / "metrics.json").read_bytes() == (straight / "metrics.json").read_bytes()
    for name, epoch, batch in faults:
        reliability(
            f"{name} during a fine-tune around its unfreeze epoch (checkpoint at epoch {epoch}, batch {batch})",
            "step train",
            "rerun resumed with the freeze state of its position; weights bitwise equal",
            0,
        )
