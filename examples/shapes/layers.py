"""Custom layers of the example model. Registered with Keras, so a saved model.keras loads them by name."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="shapes_example")
class HardSwish(keras.layers.Layer):
    """x * relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3)."""

    def call(self, inputs):
        return inputs * ops.relu6(inputs + 3.0) / 6.0


@keras.saving.register_keras_serializable(package="shapes_example")
class SqueezeExcite(keras.layers.Layer):
    """Channel attention (Hu et al. 2018): scale each channel by a gate computed from its mean."""

    def __init__(self, ratio: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.ratio = ratio

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(1, int(channels * self.ratio))
        self.reduce = keras.layers.Dense(hidden, activation="relu", name="reduce")
        self.expand = keras.layers.Dense(channels, activation="sigmoid", name="expand")
        self.reduce.build((None, channels))
        self.expand.build((None, hidden))

    def call(self, inputs):
        gate = self.expand(self.reduce(ops.mean(inputs, axis=(1, 2))))
        return inputs * gate[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}
