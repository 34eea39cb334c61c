"""Training options end to end on real shards: determinism, mixed precision, XLA, eager mode, schedules."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers import runtime_params, train_params

from workflow.evaluate.metrics import evaluate
from workflow.train.trainer import TrainConfig, learning_rate_schedule


def weights_of(folder):
    model = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=True)
    return [np.asarray(weight) for weight in model.get_weights()]


def test_same_seed_gives_identical_weights_history_and_metrics(train_in_subprocess, digits_shards):
    """deterministic: true and the same seed twice give bitwise-equal weights, equal history and equal metrics.json."""
    params = train_params(deterministic=True)

    _, first = train_in_subprocess(params, seed=5, name="first")
    _, second = train_in_subprocess(params, seed=5, name="second")
    for folder in (first, second):
        evaluate(model_path=str(folder / "model.keras"), shards_dir=digits_shards,
                 metrics_path=str(folder / "metrics.json"), batch_size=100, target=None)  # fmt: skip

    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    for a, b in zip(weights_of(first), weights_of(second), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (
        json.loads((first / "history.json").read_text())["loss"]
        == json.loads((second / "history.json").read_text())["loss"]
    )


def test_steps_per_execution_does_not_change_the_arithmetic(train_in_subprocess):
    """One batch per call or 16: bitwise-equal weights and the same history (only the dispatch differs)."""
    params = train_params(deterministic=True)
    _, one = train_in_subprocess(params, seed=5, name="one", runtime_settings=runtime_params(steps_per_execution=1))
    _, sixteen = train_in_subprocess(
        params, seed=5, name="sixteen", runtime_settings=runtime_params(steps_per_execution=16)
    )

    for a, b in zip(weights_of(one), weights_of(sixteen), strict=True):
        np.testing.assert_array_equal(a, b)
    history = [json.loads((folder / "history.json").read_text()) for folder in (one, sixteen)]
    assert history[0]["loss"] == history[1]["loss"]


def test_another_seed_gives_other_weights(train_in_subprocess):
    """The seed matters: seeds 1 and 2 give different weights."""
    params = train_params(deterministic=True, epochs=1)

    _, first = train_in_subprocess(params, seed=1, name="one")
    _, second = train_in_subprocess(params, seed=2, name="two")

    assert not np.array_equal(weights_of(first)[0], weights_of(second)[0])


@pytest.mark.parametrize(
    "options",
    [{"mixed_precision": True}, {"jit_compile": True}, {"run_eagerly": True, "epochs": 1}, {"in_memory": False}],
    ids=["mixed_precision", "xla", "eager", "streamed"],
)
def test_training_options_train_a_usable_model(train_in_subprocess, options):
    """Each option trains to a model file whose history has finite losses and above-chance validation accuracy."""
    info, folder = train_in_subprocess(train_params(**options, optimizer={"name": "adam", "learning_rate": 0.01}))

    history = json.loads((folder / "history.json").read_text())
    assert np.isfinite(history["loss"]).all()
    assert history["val_accuracy"][-1] > 0.3  # 10 classes: chance is 0.1
    assert info["params"]["train"] == {**info["params"]["train"], **options}
    assert info["jit_compile"] is bool(options.get("jit_compile")), info  # what Keras compiled with


def test_a_deterministic_xla_run_keeps_xla_and_repeats_bit_for_bit(train_in_subprocess):
    """deterministic + jit_compile: XLA's deterministic mode instead of op determinism (with which Keras 3
    turns XLA off); the same seed twice gives the same weights (on a GPU: benchmarks/gpu_training.py)."""
    params = train_params(deterministic=True, jit_compile=True, epochs=1)

    info, first = train_in_subprocess(params, seed=3, name="first")
    _, second = train_in_subprocess(params, seed=3, name="second")

    assert info["jit_compile"] is True and info["determinism"] == "xla_deterministic_ops", info
    for a, b in zip(weights_of(first), weights_of(second), strict=True):
        np.testing.assert_array_equal(a, b)


def test_piecewise_schedule_steps_at_epoch_boundaries():
    """Boundaries in epochs become steps: with 10 steps per epoch, epoch 2 starts at step 20."""
    schedule = learning_rate_schedule(
        0.1, {"name": "piecewise", "boundaries": [2, 3], "factors": [0.1, 0.01]}, steps_per_epoch=10, epochs=4
    )

    rates = [float(schedule(step)) for step in (0, 20, 21, 31)]

    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_train_config_refuses_unknown_fields():
    """The frozen dataclass refuses keys it does not know, so a stale params slice fails loudly."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'epochz'"):
        TrainConfig(epochz=1)


def test_without_a_validation_split_training_uses_every_train_example(digits_prepared, tmp_path):
    """validation_percent: 0 shards train whole (1,437 examples) with no validation split; training runs
    and its history has no validation metrics."""
    import subprocess
    import sys

    from workflow.data.tfrecord import convert

    shards = tmp_path / "shards"
    spec = convert(manifest_path=digits_prepared["manifest"], output_dir=str(shards),
                   shards={"train": 2, "validation": 1, "test": 1}, validation_percent=0)  # fmt: skip
    arguments = {"shards_dir": str(shards), "model_path": str(tmp_path / "model.keras"),
                 "history_path": str(tmp_path / "history.json"), "info_path": str(tmp_path / "train.json"),
                 "tensorboard_dir": str(tmp_path / "tb"), "checkpoint_root": str(tmp_path / "ckpt"),
                 "params": train_params(epochs=2), "seed": 0}  # fmt: skip
    program = f"import json; from workflow.train.trainer import train; train(**json.loads({json.dumps(arguments)!r}))"

    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(spec.splits) == ["test", "train"] and spec.examples("train") == 1437
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["loss"]) == 2 and not any(key.startswith("val_") for key in history)


def test_a_diverging_run_fails_by_name_and_writes_no_model(train_in_subprocess):
    """A learning rate far too large drives the loss to NaN: training stops at that epoch with a message
    naming the learning rate, and no model.keras or train.json is written (nothing looks finished)."""
    params = train_params(epochs=5, optimizer={"name": "sgd", "learning_rate": 1.0e12})

    result, folder = train_in_subprocess(params, name="diverged", check=False)

    assert result.returncode != 0
    assert "training diverged: the loss is nan after epoch" in result.stderr, result.stderr[-3000:]
    assert "learning_rate (now 1000000000000.0)" in result.stderr
    assert not (folder / "model.keras").exists() and not (folder / "train.json").exists()


def test_train_json_separates_the_first_epoch_from_the_steady_speed(train_in_subprocess):
    """The first epoch pays for tracing, compilation and warm-up: train.json gives its seconds apart, and
    examples/s over the epochs after it; the overall figure stays the mean over every epoch."""
    info, folder = train_in_subprocess(train_params(epochs=3))
    seconds = json.loads((folder / "history.json").read_text())["seconds"]
    per_epoch = info["examples_per_second"] * sum(seconds) / len(seconds)  # the examples of one epoch

    assert info["first_epoch_seconds"] == pytest.approx(seconds[0], abs=1e-3)
    assert info["steady_examples_per_second"] == pytest.approx(per_epoch * 2 / sum(seconds[1:]), rel=1e-2)
    assert info["steady_examples_per_second"] > info["examples_per_second"]  # the first epoch is the slow one


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_augmenting_in_the_train_step_gives_the_same_weights_as_in_tf_data(train_in_subprocess, jit_compile):
    """train.augment.on_device moves the shifts and flips from tf.data into the compiled train step (onto
    the GPU there); with the same seeds a one-replica run makes the same images, so the weights are
    bitwise those of augmenting in tf.data, and not those of no augmentation at all."""
    runs = {}
    for name, augment in {"tf_data": {"pad_crop": 2, "horizontal_flip": True},
                          "train_step": {"pad_crop": 2, "horizontal_flip": True, "on_device": True},
                          "none": {}}.items():  # fmt: skip
        params = train_params(deterministic=True, jit_compile=jit_compile, epochs=1, augment=augment)
        _, runs[name] = train_in_subprocess(params, seed=4, name=name)

    for a, b in zip(weights_of(runs["tf_data"]), weights_of(runs["train_step"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights_of(runs["train_step"])[0], weights_of(runs["none"])[0])
