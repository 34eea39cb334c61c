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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from workflow.config import usercode
from workflow.data.augment import augment_batch
from workflow.data.features import DTYPES, scale_images
from workflow.data.shards import Spec, read_spec, shard_paths

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
    verify: bool = True,
) -> tf.data.Dataset:
    """Batches of (images, labels) of one split; images scaled to [0, 1] unless `raw_images`.

    For a table, batches of ({column: [batch, 1] tensor}, labels): what the table models take.

    `augment` (train.augment of the config) adds seeded shifts and flips after scaling.
    With `epoch`, the shuffle order and augmentation of that epoch depend only on (seed, epoch),
    not on how many epochs this process iterated before: a resumed run sees the same batches.
    `verify` checks each shard's sha256 against spec.json first (it reads the whole split): a
    caller making a dataset per epoch verifies once, not every epoch.
    """
    reshuffle = epoch is None
    if epoch is not None:
        seed = epoch_seed(seed, epoch)
    spec = read_spec(shards_dir)
    files = shard_paths(shards_dir, spec, split, verify=verify)
    records = read_records(files, shuffle, seed, reshuffle, shuffle_buffer, limit)
    batches = records.batch(batch_size).map(batch_parser(spec, raw_images), num_parallel_calls=AUTOTUNE)
    return finish_batches(batches, seed, augment)


def read_records(
    files: list[str], shuffle: bool, seed: int, reshuffle: bool, shuffle_buffer: int, limit: int | None = None
) -> tf.data.Dataset:
    """The serialized records of `files` (the first `limit` of them), in order, or shuffled by file and
    through a seeded buffer."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=reshuffle)
    # Blocks of 64 records per file, not 1: switching files at every record held the streamed
    # pipeline back on a 16-core GPU node (docs/performance.md "GPU training"); the shuffle buffer
    # after it mixes the blocks.
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        block_length=64,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if limit is not None:
        dataset = dataset.take(limit)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle)
    return dataset


def batch_parser(spec: Spec, raw_images: bool = False) -> Callable[[tf.Tensor], tuple[Any, tf.Tensor]]:
    """Parses a batch of serialized records: (images scaled unless `raw_images`, labels), or a table's columns.

    One map, not two (parse, then scale): half the per-batch overhead.
    """
    if spec.is_table:
        columns, label_dtype = spec.columns, spec.label.dtype
        return lambda records: parse_table_batch(records, columns, label_dtype)
    shape = spec.image_shape

    def parse(records: tf.Tensor) -> tuple[Any, tf.Tensor]:
        images, labels = parse_batch(records, shape)
        return (images if raw_images else scale_images(images)), labels

    return parse


def make_in_memory_dataset(
    arrays: dict[str, Any],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    augment: dict[str, Any] | None = None,
) -> tf.data.Dataset:
    """Batches of (scaled images, labels) of arrays from `load_arrays`, shuffled for (seed, epoch).

    For a table's arrays ({"columns": {name: [n]}, "labels"}), batches of ([batch, 1] columns, labels).
    The whole split is permuted (no shuffle buffer), by NumPy's PCG64 seeded with
    `epoch_seed(seed, epoch)`: the order of epoch k does not depend on earlier epochs, so a resumed
    run skipping the batches it already did sees what an uninterrupted run sees.
    """
    seed = epoch_seed(seed, epoch)
    order = np.random.default_rng(seed).permutation(len(arrays["labels"]))
    batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    table = "columns" in arrays
    # from_tensors(...).repeat() hands the arrays to each batch by reference; capturing them in the
    # map function would copy them into its graph.
    whole = tf.data.Dataset.from_tensors((arrays["columns" if table else "images"], arrays["labels"])).repeat()

    def gather(indices: tf.Tensor, split: tuple[Any, tf.Tensor]) -> tuple[Any, tf.Tensor]:
        if table:
            return {name: tf.gather(values, indices)[:, None] for name, values in split[0].items()}, tf.gather(
                split[1], indices
            )
        return scale_images(tf.gather(split[0], indices)), tf.gather(split[1], indices)

    return finish_batches(tf.data.Dataset.zip(batches, whole).map(gather, num_parallel_calls=AUTOTUNE), seed, augment)


def augmentations(augment: dict[str, Any] | None) -> list[tuple[Callable[..., tf.Tensor], dict[str, Any]]]:
    """(function, options) of each configured augmentation, in order: the built-in shifts and flips, then the
    user's own function (`train.augment.code`, called as function(images, seed, **options))."""
    augment = augment or {}
    steps: list[tuple[Callable[..., tf.Tensor], dict[str, Any]]] = []
    if augment.get("pad_crop") or augment.get("horizontal_flip"):
        steps.append((augment_batch, {key: augment.get(key) for key in ("pad_crop", "horizontal_flip")}))
    if augment.get("code"):
        steps.append((usercode.load(augment["code"]), dict(augment.get("options") or {})))
    return steps


def finish_batches(dataset: tf.data.Dataset, seed: int, augment: dict[str, Any] | None) -> tf.data.Dataset:
    """Seeded augmentation of (images, labels) batches, if configured, then prefetch.

    With `augment.on_device` the batches leave unaugmented as (images, labels, seeds), a copy of the
    batch's seed per example, for the compiled train step to augment (`augment_in_train_step`): the
    third element is what Keras's fit carries through to train_step untouched, and copied per example
    it is split with the batch across replicas.
    """
    steps = augmentations(augment)
    if steps:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        batches = tf.data.Dataset.zip(dataset, seeds)
        if augments_on_device(augment):

            def with_seeds(batch: tuple[tf.Tensor, tf.Tensor], batch_seed: tf.Tensor) -> tuple[tf.Tensor, ...]:
                return batch[0], batch[1], tf.broadcast_to(batch_seed, [tf.shape(batch[1])[0], 2])

            dataset = batches.map(with_seeds)
        else:

            def apply(batch: tuple[tf.Tensor, tf.Tensor], batch_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                return augment_images(batch[0], batch_seed, steps), batch[1]

            dataset = batches.map(apply, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def augments_on_device(augment: dict[str, Any] | None) -> bool:
    """Whether the train step augments (`train.augment.on_device` with an augmentation to run), not tf.data."""
    return bool(augmentations(augment)) and bool((augment or {}).get("on_device"))


def augment_images(
    images: tf.Tensor, batch_seed: tf.Tensor, steps: list[tuple[Callable[..., tf.Tensor], dict[str, Any]]]
) -> tf.Tensor:
    """Each augmentation step in turn, each with its own stateless seed (the first keeps the batch's)."""
    for index, (function, options) in enumerate(steps):
        images = function(images, batch_seed + tf.constant([0, 1000], batch_seed.dtype) * index, **options)
    return images


def augment_in_train_step(model: Any, augment: dict[str, Any] | None) -> None:
    """With `train.augment.on_device`, the model's train step augments each batch first: on the GPU or
    TPU, inside the XLA program with jit_compile, instead of in tf.data on the host's cores.

    The batches come as (images, labels, seeds) from `finish_batches`; the model's own step gets
    (augmented images, labels), so the seeds never weight the loss. Each replica adds its index to
    the seed, so that replicas do not shift and flip their parts of a batch alike (several replicas
    are not tested with it). Instance-level: the saved model.keras holds no trace of it.
    """
    if not augments_on_device(augment):
        return
    steps, model_step = augmentations(augment), model.train_step

    def train_step(data: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> Any:
        images, labels, seeds = data
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        batch_seed = seeds[0] + tf.cast(tf.stack([0, replica * 7919]), seeds.dtype)
        return model_step((augment_images(images, batch_seed, steps), labels))

    model.train_step = train_step


def split_bytes(spec: Spec, split: str) -> int:
    """Bytes of a split's decoded uint8 images, or of its table's columns (what `load_arrays` holds)."""
    if spec.is_table:  # an upper estimate: 8 bytes per number, strings of a CSV rarely pass 56 bytes
        return spec.examples(split) * 64 * len(spec.columns)
    return spec.examples(split) * int(np.prod(spec.image_shape))


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct data seed per (seed, epoch)."""
    return seed * 1_000_003 + epoch


def parse_batch(records: tf.Tensor, shape: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
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


def parse_table_batch(
    records: tf.Tensor, columns: Mapping[str, Mapping[str, str]], label_dtype: str = "int64"
) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """A batch of serialized Examples of a table -> ({column: [batch, 1] of its dtype}, labels: int64
    classes or float32 regression targets)."""
    features = tf.io.parse_example(
        records,
        {
            **{name: tf.io.FixedLenFeature([1], DTYPES[column["dtype"]]) for name, column in columns.items()},
            "label": tf.io.FixedLenFeature([], DTYPES[label_dtype]),
        },
    )
    labels = features.pop("label")
    return features, labels


def load_arrays(shards_dir: str, split: str, limit: int | None = None) -> dict[str, Any]:
    """A split (or its first `limit` examples) in memory as NumPy: raw uint8 images and labels.

    A table's split: {"columns": {name: [n] array (strings as bytes objects)}, "labels"}.
    """
    parts, labels = [], []
    for batch_inputs, batch_labels in make_dataset(shards_dir, split, 1024, raw_images=True, limit=limit):
        parts.append(tf.nest.map_structure(lambda tensor: tensor.numpy(), batch_inputs))
        labels.append(batch_labels.numpy())
    if isinstance(parts[0], dict):
        columns = {name: np.concatenate([part[name][:, 0] for part in parts]) for name in parts[0]}
        return {"columns": columns, "labels": np.concatenate(labels)}
    return {"images": np.concatenate(parts), "labels": np.concatenate(labels)}


def load_inputs(shards_dir: str, split: str, limit: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A split as served inputs ({"images": uint8} or {column: [n]}, see workflow/data/features.py) and labels."""
    arrays = load_arrays(shards_dir, split, limit)
    inputs = arrays["columns"] if "columns" in arrays else {"images": arrays["images"]}
    return inputs, arrays["labels"]
