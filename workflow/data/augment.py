"""Batched, seeded image augmentation for training: pad-and-crop shifts and horizontal flips.

The CIFAR recipe of He et al. 2015 (section 4.2, after Lee et al.): pad 4 pixels on each side and
take a random crop of the original size, or of its horizontal flip. Every example in a batch gets
its own shift and coin, from stateless ops keyed by a per-batch seed, so a seeded run is repeatable.
"""

from __future__ import annotations

import tensorflow as tf


def augment_batch(images: tf.Tensor, seed: tf.Tensor, pad_crop: int = 0, horizontal_flip: bool = False) -> tf.Tensor:
    """Shift each image of a [batch, height, width, channels] batch by up to `pad_crop` pixels; maybe flip it."""
    seed = tf.cast(seed, tf.int64)
    if pad_crop:
        images = random_shift(images, pad_crop, seed)
    if horizontal_flip:
        # An integer draw: XLA turns random bits into floats otherwise than TensorFlow's kernels do, so a
        # float coin would flip other images inside the compiled train step (train.augment.on_device).
        coins = tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed + [0, 1], maxval=2, dtype=tf.int32) > 0
        images = tf.where(coins[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return images


def random_shift(images: tf.Tensor, pad: int, seed: tf.Tensor) -> tf.Tensor:
    """Zero-pad by `pad` on every side, then crop the original size at a random offset per example."""
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([shape[0], 2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(shape[1])[None, :]
    columns = offsets[:, 1:] + tf.range(shape[2])[None, :]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, columns, axis=2, batch_dims=1)
