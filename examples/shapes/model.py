"""The example's own model: a tiny MobileNet-style net (depthwise-separable blocks, hard-swish,
squeeze-and-excitation), with the custom layers of layers.py, its neighbour in this folder. No batch
normalization: a net this small and a run this short do not need it.

The contract (docs/your-own-code.md): build(input_shape, num_classes, **options) returns a Keras
model taking images scaled to [0, 1] and giving float32 class probabilities.
"""

from __future__ import annotations

import keras
from layers import HardSwish, SqueezeExcite

# Read by the workflow as data (ast.literal_eval), while the DAG is built: a dry run shows the skip and its reason.
SKIP_CONVERSIONS = {
    "tfjs": "tensorflowjs_converter fuses HardSwish into the op _FusedHardSwish, which the TF.js 4.22 runtime "
    "lacks ('Unknown op', measured in Node.js)",
}


def build_tiny_mobilenet(input_shape, num_classes, widths=(16, 32), se_ratio=0.25, dropout=0.1):
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = HardSwish(name="stem_hswish")(keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")(inputs))
    for index, width in enumerate(widths):
        x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name=f"block{index}_dw")(x)
        x = HardSwish(name=f"block{index}_dw_hswish")(x)
        x = SqueezeExcite(se_ratio, name=f"block{index}_se")(x)
        x = HardSwish(name=f"block{index}_pw_hswish")(keras.layers.Conv2D(width, 1, name=f"block{index}_pw")(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="tiny_mobilenet")
