"""What a model takes, by kind of data: images or a table of typed columns.

spec.json (workflow/data/tfrecord.py) says which: `features.image` (uint8, a fixed shape) or
`features.columns` ({name: {dtype: float32 | int64 | string}}). Everything after the shards
(train, evaluate, export, the conversions, parity) moves examples as *inputs*: a dict of arrays
keyed by the served signature's input names, {"images": uint8 [n, *shape]} or one [n] array per
column, so one code path serves both kinds.

Served signatures take inputs as stored (uint8 pixels, raw column values: [batch] each); the Keras
models take them prepared by `model_inputs`: images scaled to [0, 1], columns as [batch, 1] tensors
of the Keras input's dtype (what keras.utils.FeatureSpace's inputs are).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from workflow.data.shards import Spec

IMAGE_INPUT = "images"
# The served models' main output: class probabilities [batch, classes], or a regression's prediction [batch].
MAIN_OUTPUTS = ("probabilities", "prediction")
DTYPES = {"uint8": tf.uint8, "float32": tf.float32, "int64": tf.int64, "string": tf.string}


def main_output(outputs: dict[str, Any]) -> Any:
    """The probabilities or prediction among a served model's outputs."""
    return next(outputs[name] for name in MAIN_OUTPUTS if name in outputs)


def input_signature(spec: Spec) -> dict[str, dict[str, Any]]:
    """The served inputs: name -> {"dtype", "shape"} (shape with None for the batch)."""
    if spec.is_table:
        return {name: {"dtype": column["dtype"], "shape": [None]} for name, column in spec.columns.items()}
    return {IMAGE_INPUT: {"dtype": "uint8", "shape": [None, *spec.image_shape]}}


def tensor_specs(spec: Spec) -> dict[str, tf.TensorSpec]:
    """`input_signature` as tf.TensorSpecs, for a tf.function's input_signature."""
    return {
        name: tf.TensorSpec(entry["shape"], DTYPES[entry["dtype"]], name=name)
        for name, entry in input_signature(spec).items()
    }


def scale_images(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1]: the one image preprocessing step, for training and serving."""
    return tf.cast(images, tf.float32) / 255.0


def model_inputs(spec: Spec, inputs: dict[str, Any], keras_dtypes: dict[str, str] | None = None) -> Any:
    """Served inputs -> what the Keras model takes: scaled images, or a dict of [batch, 1] columns.

    `keras_dtypes` (a table model's input name -> dtype) casts columns where the model's input
    differs from the stored type (FeatureSpace's integer inputs are int32; columns are int64).
    """
    if not spec.is_table:
        return scale_images(inputs[IMAGE_INPUT])
    prepared = {}
    for name, value in sorted(inputs.items()):
        column = tf.expand_dims(tf.convert_to_tensor(value), -1)
        wanted = (keras_dtypes or {}).get(name)
        prepared[name] = tf.cast(column, wanted) if wanted and wanted != column.dtype.name else column
    return prepared


def keras_input_dtypes(model: Any) -> dict[str, str]:
    """Input name -> dtype of a Keras model's inputs."""
    return {tensor.name: tensor.dtype for tensor in model.inputs}


def take(inputs: dict[str, np.ndarray], start: int, stop: int | None = None) -> dict[str, np.ndarray]:
    """Examples [start, stop) of every input."""
    return {name: values[start:stop] for name, values in inputs.items()}


def count(inputs: dict[str, np.ndarray]) -> int:
    """Number of examples in `inputs`."""
    return len(next(iter(inputs.values())))


def as_numpy(value: Any) -> np.ndarray:
    """A tensor as NumPy; strings as bytes objects (what LiteRT and tf.constant take)."""
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return array.astype(object) if array.dtype.kind in "SU" else array
