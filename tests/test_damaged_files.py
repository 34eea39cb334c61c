"""Damaged files on disk (a red-team report): each fails or recovers with a message that names the file.

A damaged checkpoint is discarded and training resumes from the one before it (or starts over);
a train step that fails before its first save leaves no checkpoint folder; a truncated model.keras
and a corrupted prepared tfds file are each named, with what rebuilds them.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import struct
import subprocess
import zipfile

import keras
import numpy as np
import pytest
from helpers import runtime_params, train_command, train_params

from workflow.train.checkpoint import PREVIOUS, STATE, Checkpoint, Progress


def flip_middle_byte(path: pathlib.Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    path.write_bytes(bytes(data))


def middle_of_largest_array(npz: pathlib.Path) -> int:
    """The offset of the middle byte of an .npz's largest array: a flip there changes the data, where
    a flip in a header field that zipfile ignores (a time, a zip64 size placeholder) is harmless."""
    with zipfile.ZipFile(npz) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    header = npz.read_bytes()[member.header_offset : member.header_offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return member.header_offset + 30 + name_length + extra_length + member.compress_size // 2


def run_train(
    folder: pathlib.Path, shards: str, params: dict, runtime: dict | None = None, **environment: str
) -> subprocess.CompletedProcess:
    """workflow.train.trainer.train in a fresh process, logging at INFO; the finished process (not checked)."""
    command = train_command(folder, shards, params, runtime_settings=runtime)
    env = {**os.environ, **environment}
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env)


def test_corrupted_checkpoint_is_named_and_the_rerun_resumes_from_the_one_before(digits_shards, tmp_path, reliability):
    """Killed after its last checkpoint (before model.keras is renamed into place), then that checkpoint's
    .npz gets a flipped byte: the rerun warns naming it, resumes from the previous checkpoint and finishes."""
    params = train_params(epochs=2)
    runtime = runtime_params(checkpoint={"every_epochs": 1, "every_steps": 10})
    killed = run_train(tmp_path, digits_shards, params, runtime, TF_LIFECYCLE_KILL_BEFORE_RENAME="*/model.keras")
    assert killed.returncode < 0, killed.stderr[-3000:]
    (folder,) = (tmp_path / "checkpoints").iterdir()
    newest, previous = (json.loads((folder / name).read_text()) for name in (STATE, PREVIOUS))
    damaged = folder / newest["variables"]
    flip_middle_byte(damaged, middle_of_largest_array(damaged))

    rerun = run_train(tmp_path, digits_shards, params, runtime)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    info = json.loads((tmp_path / "train.json").read_text())
    print("checkpoints (epoch, batch): newest", (newest["epoch"], newest["batch"]), "damaged; resumed from",
          info["resumed_from"], "attempts", info["attempts"])  # fmt: skip
    warning = next(line for line in rerun.stderr.splitlines() if line.startswith("WARNING") and str(damaged) in line)
    print(warning)
    assert "damaged" in warning, warning
    assert info["resumed_from"] == {"epoch": previous["epoch"], "batch": previous["batch"]}
    assert info["attempts"] == 2 and len(json.loads((tmp_path / "history.json").read_text())["loss"]) == 2
    reliability("flipped byte in the newest checkpoint's variables (.npz)", "step train",
                "warned naming the file; rerun resumed from the checkpoint before it", 0)  # fmt: skip


def small_compiled_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a")], name="small")
    model.compile(optimizer=keras.optimizers.Adam(name="adam"), loss="mse")  # named: the same variable paths each time
    model.optimizer.build(model.trainable_variables)
    return model


def test_damaged_state_json_falls_back_to_the_previous_checkpoint_then_to_the_start(tmp_path, caplog, reliability):
    """A corrupted state.json: restore warns naming it and loads the checkpoint before it, variables and
    all; once that one's variables are damaged too, it warns naming them and training starts over."""
    model = small_compiled_model()
    checkpoint = Checkpoint(tmp_path / "checkpoints" / "run")
    model.layers[0].kernel.assign(np.full((4, 3), 1.0, "float32"))
    checkpoint.save(model, Progress(epoch=1, history={"loss": [0.5]}, attempts=1))
    first_kernel = np.asarray(model.layers[0].kernel)
    model.layers[0].kernel.assign(np.full((4, 3), 2.0, "float32"))
    checkpoint.save(model, Progress(epoch=2, history={"loss": [0.5, 0.4]}, attempts=1))
    state = checkpoint.folder / STATE
    state.write_text(state.read_text().replace('"epoch": 2', '"epoch": 7'))  # parses, but is not what was saved

    fresh = small_compiled_model()
    progress = Checkpoint(checkpoint.folder).restore(fresh)

    assert (progress.epoch, progress.history) == (1, {"loss": [0.5]})
    np.testing.assert_array_equal(np.asarray(fresh.layers[0].kernel), first_kernel)
    assert any(str(state) in record.getMessage() for record in caplog.records if record.levelname == "WARNING")
    variables = checkpoint.folder / json.loads(state.read_text())["variables"]
    flip_middle_byte(variables, middle_of_largest_array(variables))
    caplog.clear()

    assert Checkpoint(checkpoint.folder).restore(small_compiled_model()) == Progress()
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    print("warnings:", warnings)
    assert any("variables-e1-b0.npz" in message and "damaged" in message for message in warnings), warnings
    assert not checkpoint.folder.exists(), "a folder with no complete checkpoint was left"
    reliability("a changed number in the checkpoint's state.json", "step train",
                "warned naming it; resumed from the checkpoint before it", 0)  # fmt: skip


def test_train_that_fails_before_its_first_checkpoint_leaves_no_checkpoint_folder(digits_shards, tmp_path):
    """A train shard altered after the tfrecord step: training fails in its first epoch (naming the
    shard), before any checkpoint, and no checkpoint folder (TensorBoard files only) is left behind."""
    shards = tmp_path / "shards"
    shutil.copytree(digits_shards, shards)
    flip_middle_byte(shards / "train-00000-of-00003.tfrecord")
    params = train_params(epochs=1, in_memory=False)  # streamed: the shards are read once fit begins

    failed = run_train(tmp_path, str(shards), params)

    assert failed.returncode != 0 and "train-00000-of-00003.tfrecord: sha256 differs" in failed.stderr, failed.stderr
    left = sorted(str(path.relative_to(tmp_path)) for path in (tmp_path / "checkpoints").rglob("*"))
    print("left under checkpoints/:", left)
    assert not (tmp_path / "checkpoints").exists(), left


def test_truncated_model_keras_is_named_as_damaged_with_how_to_rebuild_it(digits_shards, tmp_path, reliability):
    """A model.keras cut to half its size: evaluate fails naming the file, its size, that it is damaged
    or incomplete, and the rerun of its train step that rebuilds it (Keras itself says "File not found")."""
    from workflow.evaluate.metrics import evaluate
    from workflow.models.images import DamagedModelError, build_model

    path = tmp_path / "model.keras"
    build_model({"name": "mlp", "hidden_units": [8]}, (8, 8, 1), 10).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(DamagedModelError) as caught:
        evaluate(model_path=str(path), shards_dir=digits_shards, metrics_path=str(tmp_path / "metrics.json"),
                 batch_size=100, target=None)  # fmt: skip

    message = str(caught.value)
    print(message)
    assert str(path) in message and f"{len(data) // 2:,} bytes" in message
    assert "damaged or incomplete" in message and f"snakemake -R {path}" in message
    reliability(
        "model.keras cut to half its size", "step evaluate", "refused naming the file, its size and the rerun", 0
    )


def test_corrupted_prepared_tfds_file_is_named_with_the_folder_to_delete(digits_prepared, tmp_path, reliability):
    """A flipped byte in a prepared tfds train file: the tfrecord step fails naming that file and the
    prepared dataset folder to delete (tfds alone says only "corrupted record at <offset>")."""
    from workflow.data.tfrecord import DamagedDatasetError, convert

    shutil.copytree(pathlib.Path(digits_prepared["folder"]) / "tfds", tmp_path / "tfds")
    manifest = json.loads(pathlib.Path(digits_prepared["manifest"]).read_text())
    manifest["data_dir"] = str(tmp_path / "tfds")
    (tmp_path / "prepared.json").write_text(json.dumps(manifest))
    prepared = tmp_path / "tfds" / manifest["full_name"]
    (damaged,) = prepared.glob("*-train.tfrecord*")
    flip_middle_byte(damaged)

    with pytest.raises(DamagedDatasetError) as caught:
        convert(manifest_path=str(tmp_path / "prepared.json"), output_dir=str(tmp_path / "shards"),
                shards={"train": 3, "validation": 1, "test": 2}, validation_percent=10)  # fmt: skip

    message = str(caught.value)
    print(message)
    assert message.startswith(f"{damaged}: ") and f"delete the prepared dataset folder {prepared}" in message
    assert not (tmp_path / "shards").exists()
    reliability("one flipped byte in a prepared tfds file", "step tfrecord",
                f"refused naming {damaged.name} and the folder to delete", 0)  # fmt: skip
