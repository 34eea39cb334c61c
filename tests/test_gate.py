"""The deployment gate on real conversions: a model that int8 calibration ruins is measured on the whole
test split by LiteRT and refused by the gate with the reason; its float32 conversion passes."""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

from workflow.data.features import scale_images
from workflow.data.pipeline import load_arrays
from workflow.deploy.export import write_saved_model
from workflow.deploy.gate import gate, publish
from workflow.deploy.parity import measure_parity
from workflow.deploy.tflite import FlexOpsError, convert_tflite, flex_ops_in

BUDGETS = {  # the defaults of configs/schema.yaml
    "float32": {"max_abs_diff": 1e-4, "min_top1_agreement": 1.0, "max_accuracy_drop": None},
    "int8": {"max_abs_diff": None, "min_top1_agreement": None, "max_accuracy_drop": 0.005},
}


def int8_hostile_model(shards: str) -> keras.Model:
    """A digits MLP whose hidden activations share one tensor with a constant unit of 3000.

    The constant has no weight into the output, so the float model is the trained MLP exactly; but
    int8 quantizes that tensor with one scale for [0, 3000] (about 12 per step), which rounds the
    real activations (0 to about 10) to one or two levels.
    """
    keras.utils.set_random_seed(0)
    train = load_arrays(shards, "train")
    images = scale_images(train["images"]).numpy()
    inputs = keras.Input(images.shape[1:], name="images")
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(hidden)
    trained = keras.Model(inputs, outputs)
    trained.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    trained.fit(images, train["labels"], epochs=15, batch_size=64, verbose=0)

    outlier = keras.layers.Dense(
        1, name="outlier", kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(3000.0)
    )
    joined = keras.layers.Concatenate(name="joined")([hidden, outlier(keras.layers.Flatten()(inputs))])
    head = keras.layers.Dense(10, activation="softmax", name="head")
    model = keras.Model(inputs, head(joined))
    kernel, bias = trained.get_layer("probabilities").get_weights()
    head.set_weights([np.vstack([kernel, np.zeros((1, 10), "float32")]), bias])
    return model


@pytest.fixture(scope="module")
def hostile(digits_shards, tmp_path_factory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("hostile")
    write_saved_model(int8_hostile_model(digits_shards), folder / "saved_model")
    (folder / "tflite").mkdir()
    for variant in ("float32", "int8"):
        convert_tflite(saved_model_dir=str(folder / "saved_model"), shards_dir=digits_shards,
                       output_path=str(folder / f"tflite/{variant}.tflite"), variant=variant,
                       representative_examples=200)  # fmt: skip
    measure_parity(saved_model_dir=str(folder / "saved_model"), formats={"tflite": str(folder / "tflite")},
                   shards_dir=digits_shards,
                   parity_path=str(folder / "parity.json"), batch_size=128)  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps({"verdict": None}))
    return folder


def test_int8_conversion_that_loses_accuracy_is_refused_with_the_reason(hostile, reliability):
    """Full-split accuracy: the SavedModel is good, int8 loses more than half a point; the gate says so."""
    parity = json.loads((hostile / "parity.json").read_text())

    verdict = gate(parity_path=str(hostile / "parity.json"), metrics_path=str(hostile / "metrics.json"),
                   verdict_path=str(hostile / "verdict.json"), budgets=BUDGETS, publish_anyway=False,
                   reason=None)  # fmt: skip

    print({name: round(entry["test_accuracy"], 4) for name, entry in parity["formats"].items()},
          "SavedModel", parity["saved_model"]["test_accuracy"])  # fmt: skip
    assert parity["test_examples"] == 360 and parity["saved_model"]["test_accuracy"] > 0.9
    assert parity["formats"]["float32"]["accuracy_drop"] == 0.0
    assert parity["formats"]["int8"]["accuracy_drop"] > 0.05
    assert not verdict["blessed"]
    assert verdict["formats"]["float32"] == {"within_budget": True, "reason": "float32: within budget"}
    drop = 100 * parity["formats"]["int8"]["accuracy_drop"]
    assert verdict["formats"]["int8"]["reason"] == (
        f"int8: test accuracy {parity['formats']['int8']['test_accuracy']:.4f} is {drop:.2f} points below the "
        "SavedModel's, more than the 0.50 allowed"
    )
    reliability("int8 conversion that loses accuracy", "gate", f"refused: int8 {drop:.1f} points below", 0)


def test_publish_anyway_publishes_and_records_the_reason(hostile, tmp_path):
    """The override publishes a run that is not blessed, in the TF Serving layout, and the verdict says why."""
    reason = "int8 is not shipped; float32 only, see ticket 12"
    gate(parity_path=str(hostile / "parity.json"), metrics_path=str(hostile / "metrics.json"),
         verdict_path=str(tmp_path / "verdict.json"), budgets=BUDGETS, publish_anyway=True, reason=reason)  # fmt: skip

    record = publish(verdict_path=str(tmp_path / "verdict.json"), saved_model_dir=str(hostile / "saved_model"),
                     format_dirs={"tflite": str(hostile / "tflite")},
                     output_dir=str(tmp_path / "deploy"), model_name="digits", version=3, run="x/seed0")  # fmt: skip

    assert record["published"] and not record["verdict"]["blessed"]
    assert record["verdict"]["override"] == {"publish_anyway": True, "reason": reason}
    assert (tmp_path / "deploy/digits/3/saved_model.pb").is_file()
    assert (tmp_path / "deploy/tflite/float32.tflite").is_file()


@pytest.fixture(scope="module")
def determinant_model(tmp_path_factory) -> pathlib.Path:
    """A SavedModel whose serving signature uses MatrixDeterminant, which the LiteRT builtins lack."""
    import tensorflow as tf

    class Determinant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.uint8, name="images")])
        def serve(self, images):
            matrices = tf.reshape(tf.cast(images, tf.float32), [-1, 2, 2])
            return {"probabilities": tf.expand_dims(tf.linalg.det(matrices), -1)}

    folder = tmp_path_factory.mktemp("flex") / "saved_model"
    module = Determinant()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_flex_ops_fail_conversion_early_naming_the_ops(determinant_model, tmp_path, reliability):
    """Without allow_flex the conversion stops with the op names; nothing is written."""
    with pytest.raises(FlexOpsError, match=r"needs TF Select \(Flex\) ops the LiteRT builtins lack: MatrixDeterminant"):
        convert_tflite(saved_model_dir=str(determinant_model), shards_dir="unused",
                       output_path=str(tmp_path / "m.tflite"), variant="float32")  # fmt: skip

    assert not (tmp_path / "m.tflite").exists()
    reliability("a model needing Flex ops, Flex not allowed", "step tflite", "refused naming MatrixDeterminant", 0)


def test_allowed_flex_ops_are_converted_and_listed(determinant_model, tmp_path):
    """With allow_flex the model converts, and the file is reported as needing FlexMatrixDeterminant."""
    convert_tflite(saved_model_dir=str(determinant_model), shards_dir="unused",
                   output_path=str(tmp_path / "m.tflite"), variant="float32", allow_flex=True)  # fmt: skip

    assert flex_ops_in(str(tmp_path / "m.tflite")) == ["FlexMatrixDeterminant"]
