"""The model registry: Keras 3 Functional models for image classification, by name.

Every builder takes images scaled to [0, 1] (see `scale_images`) and returns class probabilities in
float32, also under a mixed-precision policy. Export wraps the model with the same scaling so the
served model takes raw uint8 images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf


def scale_images(images: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [0, 1]: the one preprocessing step, for training and serving."""
    return tf.cast(images, tf.float32) / 255.0


def build_mlp(
    input_shape: Sequence[int], num_classes: int, hidden_units: Sequence[int] = (128,), dropout: float = 0.0
) -> keras.Model:
    """A multilayer perceptron: flatten, then Dense+ReLU (+dropout) per hidden layer."""
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = keras.layers.Flatten()(inputs)
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="mlp")


def build_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: Sequence[int] = (32, 64),
    dropout: float = 0.5,
) -> keras.Model:
    """The Keras "Simple MNIST convnet": per block a valid 3x3 conv + ReLU and a 2x2 max-pool.

    A pool is skipped when the map is already smaller than 2x2, so the model also fits 8x8 digits.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = inputs
    for index, count in enumerate(filters):
        x = keras.layers.Conv2D(count, 3, activation="relu", name=f"conv_{index}")(x)
        if min(x.shape[1], x.shape[2]) >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
    x = keras.layers.Flatten()(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="cnn")


def build_lenet5(input_shape: Sequence[int], num_classes: int, activation: str = "tanh") -> keras.Model:
    """LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, section II.B) on a 32x32 field.

    Smaller images are zero-padded to 32x32, as the paper centres 28x28 MNIST digits in 32x32.
    Two simplifications, as in common re-implementations: C3 connects to all S2 maps (the paper uses
    a fixed sparse table) and the output is a softmax Dense layer instead of Euclidean RBF units.
    Trainable parameters: 61,706 for 10 classes.
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height > 32 or width > 32:
        raise ValueError(f"lenet5 takes images up to 32x32, got {height}x{width}")
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    pad_h, pad_w = 32 - height, 32 - width
    x = keras.layers.ZeroPadding2D(((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)))(inputs)
    x = keras.layers.Conv2D(6, 5, activation=activation, name="c1")(x)
    x = keras.layers.AveragePooling2D(2, name="s2")(x)
    x = keras.layers.Conv2D(16, 5, activation=activation, name="c3")(x)
    x = keras.layers.AveragePooling2D(2, name="s4")(x)
    x = keras.layers.Conv2D(120, 5, activation=activation, name="c5")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(84, activation=activation, name="f6")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5")


def _classifier(x: Any, num_classes: int) -> Any:
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    # float32 probabilities also under mixed precision, for a stable loss and comparable exports.
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


REGISTRY: dict[str, Callable[..., keras.Model]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "lenet5": build_lenet5,
}


def build_model(options: dict[str, Any], input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """Build the model named by `options["name"]` with the rest of `options` as its arguments."""
    kwargs = {key: value for key, value in options.items() if key != "name"}
    name = options.get("name")
    if name not in REGISTRY:
        raise ValueError(f"model.name: unknown model {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name](input_shape, num_classes, **kwargs)
