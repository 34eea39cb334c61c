"""Fine-tuning: start a model from another model's weights, and freeze what was copied for a while.

`model.init_from` names the source: another experiment's model.keras (the DAG trains it first),
a local .keras / .weights.h5 file, or a SavedModel folder (its variables keep their Keras paths,
`layer/kernel`, so they match by name too). Layers are matched by name (every model in workflow/models/images.py
names its weighted layers) and copied only when every weight has the same shape, so a classifier
head for other classes, or a Dense layer after a Flatten of another image size, keeps its fresh
weights. With `freeze: transferred` the copied layers do not train until `unfreeze_at_epoch`.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import keras

from workflow.data.shards import sha256_path
from workflow.deploy.savedmodel import check_saved_model
from workflow.models.images import load_trained_model

log = logging.getLogger(__name__)


def transfer_weights(model: keras.Model, source_path: str) -> dict[str, Any]:
    """Copy the matching layers of the model at `source_path` into `model`; say what was copied and what not."""
    path = pathlib.Path(source_path)
    if not path.exists():
        raise FileNotFoundError(f"model.init_from: {path} does not exist")
    report: dict[str, Any] = {"source": str(path), "sha256": sha256_path(path), "copied": [], "kept_fresh": {}}
    if path.name.endswith(".weights.h5"):
        try:
            model.load_weights(str(path))
        except ValueError as error:
            raise ValueError(
                f"{path}: its weights do not fit this model ({error}); use a .keras file to copy by layer"
            ) from None
        report["copied"] = [layer.name for layer in model.layers if layer.weights]
        return _logged(report)
    if path.is_dir():
        source_weights = saved_model_weights(path)
    elif path.suffix == ".keras":
        source = load_trained_model(str(path))
        source_weights = {weight.path: weight.numpy() for weight in source.weights}
    else:
        raise ValueError(f"{path}: model.init_from.path must be a .keras or .weights.h5 file or a SavedModel folder")
    for layer in model.layers:
        if not layer.weights:
            continue
        theirs = [source_weights.get(weight.path) for weight in layer.weights]
        if any(value is None for value in theirs):
            report["kept_fresh"][layer.name] = "no layer of that name (and weights) in the source"
            continue
        ours, their_shapes = (
            [tuple(w.shape) for w in layer.weights],
            [value.shape for value in theirs if value is not None],
        )
        if ours != their_shapes:
            report["kept_fresh"][layer.name] = f"weight shapes {their_shapes} in the source, {ours} here"
            continue
        layer.set_weights(theirs)
        report["copied"].append(layer.name)
    if not report["copied"]:
        raise ValueError(f"{path}: no layer matches this model by name and weight shapes ({report['kept_fresh']})")
    return _logged(report)


def saved_model_weights(path: pathlib.Path) -> dict[str, Any]:
    """Variables of a SavedModel folder by their Keras path (`conv_0/kernel`), as NumPy arrays.

    Keras 3 cannot rebuild layers from a SavedModel, but a Keras model exported there (as the
    export step does) names each variable by its path, which is what layers are matched by.
    """
    import tensorflow as tf

    check_saved_model(path)
    loaded = tf.saved_model.load(str(path))
    return {variable.name.removesuffix(":0"): variable.numpy() for variable in loaded.variables}


def _logged(report: dict[str, Any]) -> dict[str, Any]:
    log.info("initialised from %s: copied %s", report["source"], ", ".join(report["copied"]))
    for name, why in report["kept_fresh"].items():
        log.info("kept fresh weights in %s: %s", name, why)
    return report


def frozen_layers(init_from: dict[str, Any] | None, copied: list[str], epoch: int) -> set[str]:
    """Layers that do not train during `epoch` (0-based; -1 before the first) under the freeze schedule."""
    if init_from is None or init_from["freeze"] == "none":
        return set()
    unfreeze = init_from["unfreeze_at_epoch"]
    return set() if unfreeze is not None and epoch >= unfreeze else set(copied)


def set_frozen(model: keras.Model, frozen: set[str]) -> bool:
    """Make exactly the `frozen` layers untrainable; True when that changed anything."""
    changed = False
    for layer in model.layers:
        trainable = layer.name not in frozen
        if layer.trainable != trainable:
            layer.trainable, changed = trainable, True
    return changed


def require_something_trains(model: keras.Model, copied: list[str]) -> None:
    """Refuse to start with every weighted layer copied and frozen: the first epochs would train nothing."""
    if not any(layer.trainable and layer.weights for layer in model.layers):
        raise ValueError(
            f"model.init_from: every weighted layer was copied and frozen ({', '.join(copied)}), so nothing "
            "would train; set unfreeze_at_epoch, or freeze: none"
        )
