"""The tf.data input pipelines.

Streaming (any size): shards -> interleave -> shuffle (seeded buffer) -> batch -> parse -> prefetch.
Parsing after batching turns one small op per example into one op per batch; with fixed-length
raw-bytes images that is a single `parse_example` and a single `decode_raw` per batch.

In memory (a train split that fits): the shards are read once into uint8 arrays, and each epoch
gathers whole batches by a seeded permutation of the indices, as `model.fit` does for NumPy
arrays: a few ops per batch instead of per-example interleave and shuffle work, which on a
2-core machine competes with training (docs/performance.md, training overhead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from workflow.augment import augment_batch
from workflow.models import scale_images
from workflow.shards import read_spec, shard_paths

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(
    shards_dir: str,
    split: str,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    shuffle_buffer: int = 10_000,
    raw_images: bool = False,
    limit: int | None = None,
    augment: dict[str, Any] | None = None,
    epoch: int | None = None,
) -> tf.data.Dataset:
    """Batches of (images, labels) of one split; images scaled to [0, 1] unless `raw_images`.

    `augment` (train.augment of the config) adds seeded shifts and flips after scaling.
    With `epoch`, the shuffle order and augmentation of that epoch depend only on (seed, epoch),
    not on how many epochs this process iterated before: a resumed run sees the same batches.
    """
    reshuffle = epoch is None
    if epoch is not None:
        seed = epoch_seed(seed, epoch)
    spec = read_spec(shards_dir)
    files = shard_paths(shards_dir, spec, split)
    shape = spec["features"]["image"]["shape"]
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=reshuffle)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if limit is not None:
        dataset = dataset.take(limit)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle)
    dataset = dataset.batch(batch_size)

    def parse(records: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:  # one map, not two: half the per-batch overhead
        images, labels = parse_batch(records, shape)
        return (images if raw_images else scale_images(images)), labels

    return finish_batches(dataset.map(parse, num_parallel_calls=AUTOTUNE), seed, augment)


def make_in_memory_dataset(
    arrays: dict[str, Any],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    augment: dict[str, Any] | None = None,
) -> tf.data.Dataset:
    """Batches of (scaled images, labels) of arrays from `load_arrays`, shuffled for (seed, epoch).

    The whole split is permuted (no shuffle buffer), by NumPy's PCG64 seeded with
    `epoch_seed(seed, epoch)`: the order of epoch k does not depend on earlier epochs, so a resumed
    run skipping the batches it already did sees what an uninterrupted run sees.
    """
    seed = epoch_seed(seed, epoch)
    order = np.random.default_rng(seed).permutation(len(arrays["labels"]))
    batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    # from_tensors(...).repeat() hands the arrays to each batch by reference; capturing them in the
    # map function would copy them into its graph.
    whole = tf.data.Dataset.from_tensors((arrays["images"], arrays["labels"])).repeat()

    def gather(indices: tf.Tensor, split: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        return scale_images(tf.gather(split[0], indices)), tf.gather(split[1], indices)

    return finish_batches(tf.data.Dataset.zip(batches, whole).map(gather, num_parallel_calls=AUTOTUNE), seed, augment)


def finish_batches(dataset: tf.data.Dataset, seed: int, augment: dict[str, Any] | None) -> tf.data.Dataset:
    """Seeded augmentation of (images, labels) batches, if configured, then prefetch."""
    if augment and (augment["pad_crop"] or augment["horizontal_flip"]):
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda batch, batch_seed: (augment_batch(batch[0], batch_seed, **augment), batch[1]),
            num_parallel_calls=AUTOTUNE,
        )
    return dataset.prefetch(AUTOTUNE)


def split_bytes(spec: dict[str, Any], split: str) -> int:
    """Bytes of a split's decoded uint8 images (what `load_arrays` holds in memory)."""
    return spec["splits"][split]["examples"] * int(np.prod(spec["features"]["image"]["shape"]))


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct data seed per (seed, epoch)."""
    return seed * 1_000_003 + epoch


def parse_batch(records: tf.Tensor, shape: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of serialized Examples -> (uint8 images [batch, *shape], int64 labels [batch])."""
    features = tf.io.parse_example(
        records,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        },
    )
    images = tf.io.decode_raw(features["image"], tf.uint8)
    return tf.reshape(images, [-1, *shape]), features["label"]


def load_arrays(shards_dir: str, split: str, limit: int | None = None) -> dict[str, Any]:
    """A split (or its first `limit` examples) in memory as NumPy: raw uint8 images and labels."""
    images, labels = [], []
    for batch_images, batch_labels in make_dataset(shards_dir, split, 1024, raw_images=True, limit=limit):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return {"images": np.concatenate(images), "labels": np.concatenate(labels)}
