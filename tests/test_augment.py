"""Augmentation: shifts are crops of the zero-padded image, flips mirror, and both are seeded per example."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from workflow.data.augment import augment_batch, random_shift


def batch(size: int = 16, height: int = 8, width: int = 8, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).random((size, height, width, channels), dtype=np.float32) + 0.5


def test_shift_is_a_crop_of_the_padded_image():
    """Each output equals a window of the zero-padded input, and shapes are kept."""
    images = batch()
    shifted = random_shift(tf.constant(images), 4, tf.constant([1, 2], tf.int64)).numpy()

    assert shifted.shape == images.shape
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    for original, result in zip(padded, shifted, strict=True):
        windows = [original[r : r + 8, c : c + 8] for r in range(9) for c in range(9)]
        assert any(np.array_equal(window, result) for window in windows)


def test_examples_get_different_shifts():
    """Within one batch the offsets differ between examples (not one shift for the whole batch)."""
    images = np.repeat(batch(1), 32, axis=0)

    shifted = random_shift(tf.constant(images), 4, tf.constant([3, 4], tf.int64)).numpy()

    distinct = {result.tobytes() for result in shifted}
    assert len(distinct) > 8


def test_flip_mirrors_about_half_the_batch():
    """horizontal_flip alone leaves each image as it was or mirrored left-right, roughly half each."""
    images = batch(200)

    flipped = augment_batch(tf.constant(images), tf.constant([5, 6], tf.int64), horizontal_flip=True).numpy()

    mirrored = [np.array_equal(out, img[:, ::-1]) for out, img in zip(flipped, images, strict=True)]
    kept = [np.array_equal(out, img) for out, img in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 60 < sum(mirrored) < 140


def test_same_seed_same_augmentation():
    """The same per-batch seed gives the same result; another seed gives another one."""
    images = tf.constant(batch())

    first = augment_batch(images, tf.constant([7, 8], tf.int64), pad_crop=4, horizontal_flip=True).numpy()
    again = augment_batch(images, tf.constant([7, 8], tf.int64), pad_crop=4, horizontal_flip=True).numpy()
    other = augment_batch(images, tf.constant([9, 9], tf.int64), pad_crop=4, horizontal_flip=True).numpy()

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_augmentation_inside_tf_data_equals_eager():
    """The same seed gives the same batch eagerly and inside a tf.data map."""
    images = tf.constant(batch())
    seed = tf.constant([11, 12], tf.int64)

    eager = augment_batch(images, seed, pad_crop=2, horizontal_flip=True).numpy()
    mapped = next(iter(tf.data.Dataset.from_tensors((images, seed)).map(
        lambda x, s: augment_batch(x, s, pad_crop=2, horizontal_flip=True))))  # fmt: skip

    np.testing.assert_array_equal(eager, mapped.numpy())
