"""Convert a prepared tfds dataset into the project's TFRecord shards and their spec.json.

Images: each record is a tf.train.Example with the image as raw bytes and the label as int64:
fixed-length features, so a whole batch parses in one `tf.io.parse_example` call and one
`decode_raw`. Tables (a dict of scalar features, as sklearn_breast_cancer has): each record holds
every column with its type (float32 -> float_list, integers -> int64_list, text -> bytes_list)
and the label. spec.json records the feature spec (`image` or `columns`, and `label`), the
examples and sha256 of every shard, and the source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds

from workflow.data.download import damaged_file, load_builder
from workflow.data.records import check_label, serialize, write_split
from workflow.data.shards import SPEC_NAME, Label, Shard, Spec, Split
from workflow.infra.atomic import atomic_path, read_json, write_json

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


def convert(*, manifest_path: str, output_dir: str, shards: dict[str, int], validation_percent: int) -> Spec:
    """Write N shards per split and spec.json into `output_dir`, atomically as one folder."""
    manifest = read_json(manifest_path)
    builder = load_builder(manifest)
    input_key, label_key = _supervised_keys(builder)
    sources = source_splits(set(builder.info.splits), validation_percent)
    input_feature = builder.info.features[input_key]
    label_feature = builder.info.features[label_key]
    columns = _columns(input_feature) if isinstance(input_feature, tfds.features.FeaturesDict) else None
    splits = {}
    with atomic_path(output_dir) as temporary:
        temporary.mkdir()
        for split, source in sources.items():
            started = time.monotonic()
            examples = _examples(builder, source, input_key, label_key)
            records = (
                serialize_row(row, label, columns) if columns else serialize(row, label) for row, label in examples
            )
            try:
                files = write_split(temporary, split, records, shards[split])
            except tf.errors.DataLossError as error:
                _raise_for_damaged_file(builder, source, manifest_path, error)
                raise  # no file of the split is damaged on its own: tfds's error as it is
            count = sum(entry["examples"] for entry in files)
            splits[split] = Split(source, count, tuple(Shard(**entry) for entry in files))
            log.info(
                "%s: %d examples from %s in %d shards, %.1f s",
                split,
                count,
                source,
                len(files),
                time.monotonic() - started,
            )
        spec = Spec(
            source={key: manifest[key] for key in ("name", "version", "full_name")},
            label=_label(label_feature, tables=columns is not None),
            splits=splits,
            image_shape=() if columns else tuple(input_feature.shape),
            columns=columns or {},
        )
        write_json(temporary / SPEC_NAME, spec.to_json())
    return spec


class DamagedDatasetError(RuntimeError):
    """A file of the prepared tfds dataset is corrupted; the message names it and the folder to delete."""


def _raise_for_damaged_file(
    builder: tfds.core.DatasetBuilder, split: str, manifest_path: str, error: tf.errors.DataLossError
) -> None:
    """Raise DamagedDatasetError naming the damaged prepared file of `split`, if one is (tfds names none)."""
    found = damaged_file(builder, split)
    if found is None:
        return
    path, reason = found
    raise DamagedDatasetError(
        f"{path}: {reason}: this file of the prepared dataset {builder.info.full_name} is damaged. To prepare "
        f"it again, delete the prepared dataset folder {builder.data_dir} and its manifest {manifest_path} "
        "(tfds reuses a prepared folder as it is); the next run's download step then prepares it again."
    ) from error


def source_splits(available: set[str], validation_percent: int) -> dict[str, str]:
    """The tfds split expression each of our splits reads; carve validation off train if absent."""
    if "train" not in available or "test" not in available:
        raise ValueError(f"dataset needs train and test splits, has: {', '.join(sorted(available))}")
    if "validation" in available:
        return {"train": "train", "validation": "validation", "test": "test"}
    if validation_percent == 0:  # train on the whole train split (as LeNet-5's paper does); no validation
        return {"train": "train", "test": "test"}
    keep = 100 - validation_percent
    return {"train": f"train[:{keep}%]", "validation": f"train[{keep}%:]", "test": "test"}


def _supervised_keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    if not keys and set(builder.info.features) == {"features", "label"}:  # a CSV's table (stored without keys)
        keys = ("features", "label")
    if not keys or len(keys) != 2 or not all(isinstance(key, str) for key in keys):
        raise ValueError(
            f"{builder.info.full_name}: needs (image, label) or (features, label) supervised_keys, has {keys}"
        )
    return keys[0], keys[1]


def _label(feature: Any, tables: bool) -> Label:
    """The label's spec: classes (a ClassLabel), or a float32 regression target (a float Scalar, tables only)."""
    if isinstance(feature, tfds.features.ClassLabel):
        return Label("int64", feature.num_classes, tuple(feature.names))
    if tables and feature.shape == () and feature.np_dtype.kind == "f":
        return Label("float32", task="regression")
    raise ValueError(f"label: a ClassLabel, or a float scalar for a table's regression target, got {feature!r}")


COLUMN_DTYPES = {"float32": "float32", "float64": "float32", "int32": "int64", "int64": "int64", "bool": "int64",
                 "string": "string"}  # fmt: skip


def _columns(features: tfds.features.FeaturesDict) -> dict[str, dict[str, str]]:
    """Name -> {"dtype": float32 | int64 | string} of a table's scalar features, sorted by name."""
    columns = {}
    for name, feature in sorted(features.items()):
        dtype = feature.np_dtype.name if feature.np_dtype.kind != "O" else "string"
        if name == "label":  # the record's own label key
            raise ValueError("a table column may not be called 'label'; rename it in the dataset")
        if feature.shape != () or dtype not in COLUMN_DTYPES:
            raise ValueError(
                f"feature {name!r}: tables need scalar numbers or text, got {dtype} of shape {feature.shape}"
            )
        columns[name] = {"dtype": COLUMN_DTYPES[dtype]}
    return columns


def serialize_row(row: dict[str, Any], label: int | float, columns: dict[str, dict[str, str]]) -> bytes:
    """One tf.train.Example of a table row: each column typed as spec.json says, and the label
    (int64 class, or float32 regression target)."""
    if isinstance(label, float):
        feature = {"label": tf.train.Feature(float_list=tf.train.FloatList(value=[label]))}
    else:
        check_label(label)
        feature = {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    for name, column in columns.items():
        value = row[name]
        if column["dtype"] == "float32":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        elif column["dtype"] == "int64":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            text = value if isinstance(value, bytes) else str(value).encode()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def _examples(
    builder: tfds.core.DatasetBuilder, split: str, input_key: str, label_key: str, batch_size: int = 1024
) -> Iterator[tuple[Any, int | float]]:
    """(image or table row, label) in the split's order, read from tfds a batch at a time.

    Per-example `tfds.as_numpy` on MNIST's train split takes 2.5 times the whole step of today;
    batches of 1024 read it 3.7 times faster (benchmarks/tfrecord_write.py, docs/performance.md).
    """
    dataset = builder.as_dataset(split=split, shuffle_files=False, batch_size=batch_size)
    for batch in tfds.as_numpy(dataset.prefetch(tf.data.AUTOTUNE)):
        inputs, labels = batch[input_key], batch[label_key]
        for index in range(len(labels)):
            label = labels[index].item()  # a Python int (class) or float (regression target)
            if isinstance(inputs, dict):
                yield {name: values[index] for name, values in inputs.items()}, label
            else:
                yield inputs[index], label
