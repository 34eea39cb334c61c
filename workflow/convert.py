"""Convert the SavedModel to TFLite variants and run them with LiteRT.

Variants: float32; float16 (weights stored as float16); dynamic_range (int8 weights, float
activations); int8 (full integer: activations calibrated on train examples). Conversion goes
through `TFLiteConverter.from_saved_model`: `from_concrete_functions` on a Keras 3 model writes a
model without weights that outputs NaN. Models run with LiteRT (`ai_edge_litert`), not the
deprecated `tf.lite.Interpreter`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from workflow.atomic import atomic_path
from workflow.export import INPUT_NAME, SIGNATURE, check_saved_model
from workflow.pipeline import load_arrays

log = logging.getLogger(__name__)


def convert_tflite(
    *, saved_model_dir: str, shards_dir: str, output_path: str, variant: str, representative_examples: int = 0
) -> int:
    """Write one TFLite variant atomically; return its size in bytes."""
    check_saved_model(saved_model_dir)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        images = load_arrays(shards_dir, "train", limit=representative_examples)["images"]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif variant != "float32":
        raise ValueError(f"tflite variant {variant!r} is not one of float32, float16, dynamic_range, int8")
    flatbuffer = converter.convert()
    with atomic_path(output_path) as temporary:
        temporary.write_bytes(flatbuffer)
    log.info("%s: %d bytes", output_path, len(flatbuffer))
    return len(flatbuffer)


def _representative(images: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for image in images:
        yield {INPUT_NAME: image[np.newaxis]}


def predict_tflite(path: str, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Probabilities from a TFLite model's serving signature, run by LiteRT."""
    interpreter = Interpreter(model_path=path, num_threads=threads)
    runner = interpreter.get_signature_runner(SIGNATURE)
    outputs = runner(**{INPUT_NAME: np.ascontiguousarray(images, dtype=np.uint8)})
    return np.asarray(outputs["probabilities"], dtype=np.float32)


def describe_tflite(path: str) -> dict[str, Any]:
    """Input and output tensors of a TFLite model's serving signature."""
    interpreter = Interpreter(model_path=path)
    return interpreter.get_signature_list()[SIGNATURE]
