"""Export a trained Keras model as a SavedModel that takes raw inputs: uint8 images or a table's columns.

The `serving_default` signature takes the inputs as stored (workflow/data/features.py): one named input
`images` (uint8, [batch, *image shape]), or for a table one input per column ([batch] of float32,
int64 or string), and has two named outputs, `probabilities` (float32) and `class_id` (int32).
Preprocessing happens inside (image scaling; a table model's FeatureSpace layers), so a client
sends pixels or raw column values as they are. Written with Keras 3's ExportArchive, then verified: loaded back
and compared with the Keras model on test images, and described by `saved_model_cli show`.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workflow.data.features import (
    IMAGE_INPUT,
    as_numpy,
    count,
    input_signature,
    keras_input_dtypes,
    main_output,
    model_inputs,
    tensor_specs,
)
from workflow.data.pipeline import load_inputs
from workflow.data.shards import Label, Spec, read_spec
from workflow.infra.atomic import atomic_path, write_json
from workflow.models.images import load_trained_model
from workflow.models.task import task_of

log = logging.getLogger(__name__)
SIGNATURE = "serving_default"
INPUT_NAME = IMAGE_INPUT  # the image models' one input


class ExportVerificationError(RuntimeError):
    """The exported SavedModel does not reproduce the Keras model."""


def export(
    *, model_path: str, shards_dir: str, saved_model_dir: str, info_path: str, tolerance: float = 1e-5
) -> dict[str, Any]:
    """Write the SavedModel atomically, verify it, and record the check in export.json."""
    model = load_trained_model(model_path)
    spec = read_spec(shards_dir)
    sample, _ = load_inputs(shards_dir, "test", limit=64)
    with atomic_path(saved_model_dir) as temporary:
        write_saved_model(model, temporary, spec)
        max_diff = verify(model, temporary, spec, sample, tolerance)
        description = describe(temporary)
    info = {
        "signature": SIGNATURE,
        "inputs": input_signature(spec),
        "outputs": task_of(spec).served_outputs,
        "verified_examples": count(sample),
        "max_abs_diff_vs_keras": max_diff,
        "saved_model_cli": description,
    }
    write_json(info_path, info)
    return info


def write_saved_model(model: keras.Model, path: pathlib.Path, spec: Spec | None = None) -> None:
    """The model behind a `serving_default` signature of raw inputs, through keras.export.ExportArchive.

    Without `spec` (spec.json of the shards), the model is an image model and its input shape says the rest.
    """
    spec = spec or Spec(source={}, label=Label("int64"), splits={}, image_shape=tuple(model.input_shape[1:]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    keras_dtypes = keras_input_dtypes(model)

    task = task_of(spec)

    @tf.function(input_signature=[tensor_specs(spec)])
    def serve(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return task.serve(model(model_inputs(spec, inputs, keras_dtypes), training=False))

    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(str(path), verbose=False)


def predict_saved_model(path: str | pathlib.Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities (a regression: predictions) from the SavedModel's serving signature, for served inputs."""
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[SIGNATURE]
    outputs = signature(**{name: tf.constant(as_numpy(values)) for name, values in inputs.items()})
    return main_output(outputs).numpy()


def verify(
    model: keras.Model, path: pathlib.Path, spec: Spec, inputs: dict[str, np.ndarray], tolerance: float
) -> float:
    """Largest |SavedModel - Keras| over `inputs`; raise when above `tolerance`."""
    outputs = model(model_inputs(spec, inputs, keras_input_dtypes(model)), training=False)
    expected = task_of(spec).prediction(np.asarray(outputs))
    actual = predict_saved_model(path, inputs)
    max_diff = float(np.abs(actual - expected).max())
    if max_diff > tolerance:
        raise ExportVerificationError(
            f"{path}: SavedModel differs from the Keras model by {max_diff:.3g} > {tolerance}"
        )
    return max_diff


def describe(path: pathlib.Path) -> str:
    """`saved_model_cli show` of the serving signature (from this environment's TensorFlow)."""
    cli = shutil.which("saved_model_cli") or str(pathlib.Path(sys.executable).parent / "saved_model_cli")
    command = [cli, "show", "--dir", str(path), "--tag_set", "serve", "--signature_def", SIGNATURE]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or "inputs[" not in result.stdout:
        raise ExportVerificationError(f"{path}: saved_model_cli show failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip()
