"""The example's own augmentation: random brightness and pixel noise, seeded and per example.

The contract (docs/your-own-code.md): function(images, seed, **options) takes a [batch, height,
width, channels] float32 batch scaled to [0, 1] and an int64 [2] seed for stateless random ops, and
returns a batch of the same shape. Stateless ops keep a seeded run repeatable.
"""

from __future__ import annotations

import tensorflow as tf


def brightness_and_noise(images, seed, max_delta=0.1, noise=0.02):
    batch = tf.shape(images)[0]
    delta = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seed, minval=-max_delta, maxval=max_delta)
    jitter = tf.random.stateless_normal(tf.shape(images), seed=seed + tf.constant([0, 1], seed.dtype), stddev=noise)
    return tf.clip_by_value(images + delta + jitter, 0.0, 1.0)
