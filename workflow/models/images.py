"""The model registry: Keras 3 Functional models for image classification, by name.

Every builder takes images scaled to [0, 1] (workflow/data/features.py `scale_images`) and returns class
probabilities in float32, also under a mixed-precision policy. Export wraps the model with the same scaling so the
served model takes raw uint8 images.
"""

from __future__ import annotations

import json
import os
import pathlib
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from workflow.config import usercode
from workflow.models import catalog


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


def build_lenet5(
    input_shape: Sequence[int],
    num_classes: int,
    activation: str = "tanh",
    trainable_subsampling: bool = False,
) -> keras.Model:
    """LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, section II.B) on a 32x32 field.

    Smaller images are zero-padded to 32x32, as the paper centres 28x28 MNIST digits in 32x32, after
    the paper's input normalization (background -0.1, foreground 1.175).
    `activation: scaled_tanh` is the paper's squashing function 1.7159 tanh(2x/3) (appendix A).
    `trainable_subsampling` makes S2 and S4 the paper's units: the 2x2 average times a trainable
    coefficient plus a trainable bias per map, then the squashing function (+44 parameters).
    Two simplifications remain, as in common re-implementations: C3 connects to all S2 maps (the
    paper uses a fixed sparse table) and the output is a softmax Dense layer instead of Euclidean
    RBF units. Trainable parameters: 61,706 for 10 classes (61,750 with trainable subsampling).
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height > 32 or width > 32:
        raise ValueError(f"lenet5 takes images up to 32x32, got {height}x{width}")

    def squash(x: Any, name: str) -> Any:
        if activation == "scaled_tanh":
            return ScaledTanh(name=f"{name}_squash")(x)
        return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)

    def subsample(x: Any, name: str) -> Any:
        x = keras.layers.AveragePooling2D(2, name=name)(x)
        if not trainable_subsampling:
            return x
        # A 1x1 depthwise convolution is exactly one coefficient and one bias per map.
        x = keras.layers.DepthwiseConv2D(1, name=f"{name}_coefficient")(x)
        return squash(x, name)

    inputs = keras.Input(shape=tuple(input_shape), name="images")
    # Section II.A: background (0) maps to -0.1 and foreground (1) to 1.175, so inputs have mean
    # about 0 and variance about 1, which speeds up learning with tanh units.
    x = keras.layers.Rescaling(1.275, offset=-0.1, name="paper_normalization")(inputs)
    pad_h, pad_w = 32 - height, 32 - width
    x = keras.layers.ZeroPadding2D(((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)))(x)
    x = squash(keras.layers.Conv2D(6, 5, name="c1")(x), "c1")
    x = subsample(x, "s2")
    x = squash(keras.layers.Conv2D(16, 5, name="c3")(x), "c3")
    x = subsample(x, "s4")
    x = squash(keras.layers.Conv2D(120, 5, name="c5")(x), "c5")
    x = keras.layers.Flatten()(x)
    x = squash(keras.layers.Dense(84, name="f6")(x), "f6")
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5")


@keras.saving.register_keras_serializable(package="tf_lifecycle")
class ScaledTanh(keras.layers.Layer):
    """LeCun et al. 1998, appendix A: f(a) = 1.7159 tanh(2a/3), so that f(1) = 1 and f(-1) = -1.

    A named layer rather than a Lambda, so models load with `safe_mode=True`.
    """

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return 1.7159 * tf.tanh(inputs * (2.0 / 3.0))


def build_resnet(
    input_shape: Sequence[int], num_classes: int, depth: int = 20, weight_decay: float = 1e-4
) -> keras.Model:
    """The CIFAR ResNet of He, Zhang, Ren and Sun 2015, section 4.2: depth 6n+2 (20, 32, 44, 56, 110).

    A 3x3 conv with 16 filters, then three stages of n basic blocks with 16, 32 and 64 filters (the
    first block of stages 2 and 3 halves the map with stride 2), global average pooling and a
    softmax layer. Shortcuts are identities, zero-padded where the channels double (option A), so
    ResNet-20 has 0.27M parameters as in Table 6. `weight_decay` is an L2 penalty on conv and dense
    kernels, the paper's "weight decay of 0.0001".
    """
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"resnet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    blocks = (depth - 2) // 6
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None  # d/dw of wd/2*w^2 = wd*w
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv_bn(inputs, 16, 1, regularizer, name="stem")
    x = keras.layers.Activation("relu")(x)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, regularizer, name=f"stage{stage + 1}_block{block + 1}")
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=f"resnet{depth}")


@keras.saving.register_keras_serializable(package="tf_lifecycle")
class ZeroPadShortcut(keras.layers.Layer):
    """Option-A shortcut: subsample by `stride`, then zero-pad `extra` channels (no parameters).

    A named layer rather than a Lambda, so models load with `safe_mode=True`.
    """

    def __init__(self, stride: int, extra: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stride, self.extra = stride, extra

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        subsampled = inputs[:, :: self.stride, :: self.stride, :]
        before = self.extra // 2
        return tf.pad(subsampled, [[0, 0], [0, 0], [0, 0], [before, self.extra - before]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride, "extra": self.extra}


def _conv_bn(x: Any, filters: int, stride: int, regularizer: Any, name: str) -> Any:
    x = keras.layers.Conv2D(
        filters,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        name=f"{name}_conv",
    )(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def _basic_block(x: Any, filters: int, stride: int, regularizer: Any, name: str) -> Any:
    shortcut = x
    y = keras.layers.Activation("relu")(_conv_bn(x, filters, stride, regularizer, f"{name}_a"))
    y = _conv_bn(y, filters, 1, regularizer, f"{name}_b")
    if stride != 1 or shortcut.shape[-1] != filters:
        # Option A: subsample by taking every other pixel, and pad the new channels with zeros.
        shortcut = ZeroPadShortcut(stride, filters - shortcut.shape[-1], name=f"{name}_shortcut")(shortcut)
    return keras.layers.Activation("relu")(keras.layers.Add()([y, shortcut]))


def _classifier(x: Any, num_classes: int) -> Any:
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    # float32 probabilities also under mixed precision, for a stable loss and comparable exports.
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


class DamagedModelError(ValueError):
    """A model file that exists but does not read as a whole .keras archive."""


def load_trained_model(path: str | os.PathLike[str]) -> keras.Model:
    """A saved model of this project (safe_mode), its custom layers registered: this module's and DecisionForest.

    Every step that reads a model.keras loads it here. A file that is there but is not a whole .keras
    archive (cut short by a full disk or a partial copy, a flipped byte) fails naming the file, its
    size and how to rebuild it: Keras itself says "File not found" for a truncated one.
    """
    from workflow.models import forests  # noqa: F401  (registers DecisionForest with Keras)

    file = pathlib.Path(path)
    # A model built by the user's code (train.json beside it names it) needs their layers registered.
    info = file.with_name("train.json")
    code = json.loads(info.read_text()).get("model_code") if info.is_file() else None
    if code:
        usercode.load(code)
    if file.is_file() and not zipfile.is_zipfile(file):  # a .keras file is a zip, whose directory is at its end
        raise _damaged(file, "it is not a zip archive, as a .keras file is (its end is missing)")
    try:
        return keras.saving.load_model(file, compile=False, safe_mode=True)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:  # a member does not read back (CRC-32, length)
        raise _damaged(file, str(error)) from error


def _damaged(file: pathlib.Path, reason: str) -> DamagedModelError:
    return DamagedModelError(
        f"{file} ({file.stat().st_size:,} bytes) is damaged or incomplete: {reason}. If a train step of this "
        f"workflow wrote it, rerunning that step rebuilds it: snakemake -R {file}"
    )


def image_builder(options: dict[str, Any]) -> Callable[..., keras.Model]:
    """The builder of an image model: the user's function (`code`) or the catalog entry's, one way for both."""
    if options.get("code"):
        return usercode.load(options["code"])
    entry = catalog.MODELS.get(options.get("name", ""))
    if entry is None or entry.family != "image":
        known = ", ".join(catalog.IMAGE_MODELS)
        raise ValueError(
            f"model.name: {options.get('name')!r} is not an image model; known: {known}, or your own (model.code)"
        )
    return catalog.builder(options["name"])


def build_model(options: dict[str, Any], input_shape: Sequence[int], num_classes: int | None) -> keras.Model:
    """Build the image model of `options` (an experiment's `model` section) with its other keys as options."""
    kwargs = {key: value for key, value in options.items() if key not in MODEL_KEYS}
    model = image_builder(options)(tuple(input_shape), num_classes, **kwargs)
    if not isinstance(model, keras.Model):
        raise TypeError(f"model {options.get('name')}: its builder returned {type(model).__name__}, not a keras.Model")
    wanted = num_classes or 1  # None: a regression, one number
    if len(model.outputs) != 1 or model.outputs[0].shape[-1] != wanted:
        shapes = ", ".join(str(tuple(output.shape)) for output in model.outputs)
        raise ValueError(
            f"model {options.get('name')}: its builder must return one output of {wanted} values per example "
            f"(class probabilities, or one number for a regression), not {shapes}"
        )
    return model


# Keys of a `model` section that are not options of its builder.
MODEL_KEYS = ("name", "init_from", "code")
