"""Export a trained Keras model as a SavedModel that takes raw uint8 images.

The `serving_default` signature has one named input, `images` (uint8, [batch, *image shape]), and
two named outputs, `probabilities` (float32) and `class_id` (int32). Scaling happens inside, so a
client sends pixels as they are. Written with Keras 3's ExportArchive, then verified: loaded back
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

from workflow.atomic import atomic_path, write_json
from workflow.models import scale_images
from workflow.pipeline import load_arrays

log = logging.getLogger(__name__)
SIGNATURE = "serving_default"
INPUT_NAME = "images"


class ExportVerificationError(RuntimeError):
    """The exported SavedModel does not reproduce the Keras model."""


def export(
    *, model_path: str, shards_dir: str, saved_model_dir: str, info_path: str, tolerance: float = 1e-5
) -> dict[str, Any]:
    """Write the SavedModel atomically, verify it, and record the check in export.json."""
    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    sample = load_arrays(shards_dir, "test", limit=64)
    with atomic_path(saved_model_dir) as temporary:
        write_saved_model(model, temporary)
        max_diff = verify(model, temporary, sample["images"], tolerance)
        description = describe(temporary)
    info = {
        "signature": SIGNATURE,
        "inputs": {INPUT_NAME: {"dtype": "uint8", "shape": [None, *model.input_shape[1:]]}},
        "outputs": {"probabilities": "float32", "class_id": "int32"},
        "verified_examples": int(len(sample["images"])),
        "max_abs_diff_vs_keras": max_diff,
        "saved_model_cli": description,
    }
    write_json(info_path, info)
    return info


def check_saved_model(path: str | pathlib.Path) -> None:
    """Refuse a SavedModel folder with a missing part, naming it, before a converter fails obscurely."""
    folder = pathlib.Path(path)
    needed = [folder / "saved_model.pb", folder / "variables" / "variables.index"]
    missing = [str(part.relative_to(folder)) for part in needed if not part.is_file()]
    if not folder.is_dir() or missing:
        what = "the folder does not exist" if not folder.is_dir() else f"missing: {', '.join(missing)}"
        raise ValueError(f"{folder}: not a complete SavedModel ({what}); rerun the export step")


def write_saved_model(model: keras.Model, path: pathlib.Path) -> None:
    """The model behind a uint8 `serving_default` signature, through keras.export.ExportArchive."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.uint8, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(scale_images(images), training=False)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}

    archive.add_endpoint(SIGNATURE, serve)
    archive.write_out(str(path), verbose=False)


def predict_saved_model(path: str | pathlib.Path, images: np.ndarray) -> np.ndarray:
    """Probabilities from the SavedModel's serving signature."""
    loaded = tf.saved_model.load(str(path))
    outputs = loaded.signatures[SIGNATURE](**{INPUT_NAME: tf.constant(images, tf.uint8)})
    return outputs["probabilities"].numpy()


def verify(model: keras.Model, path: pathlib.Path, images: np.ndarray, tolerance: float) -> float:
    """Largest |SavedModel - Keras| over `images`; raise when above `tolerance`."""
    expected = np.asarray(model(scale_images(images), training=False))
    actual = predict_saved_model(path, images)
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
    if result.returncode != 0 or INPUT_NAME not in result.stdout:
        raise ExportVerificationError(f"{path}: saved_model_cli show failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip()
