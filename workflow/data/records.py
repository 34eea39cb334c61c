"""The project's image records and shard files, with TensorFlow alone (no tfds): what the tfrecord step
writes (workflow/data/tfrecord.py) and what a benchmark on a machine without tfds writes the same way."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from workflow.data.shards import sha256_file


def serialize(image: np.ndarray, label: int | float) -> bytes:
    """One tf.train.Example {image: bytes_list [raw uint8 bytes], label: int64_list [label]}, encoded directly.

    The bytes are exactly `tf.train.Example(...).SerializeToString(deterministic=True)` (keys in
    sorted order; tests/test_tfrecord.py checks it), faster than building the proto.
    """
    check_label(label)
    image_feature = _length_delimited(1, _length_delimited(1, image.astype(np.uint8, copy=False).tobytes()))
    label_feature = _length_delimited(3, _length_delimited(1, _varint(int(label))))
    entries = _length_delimited(1, _IMAGE_KEY + _length_delimited(2, image_feature))
    entries += _length_delimited(1, _LABEL_KEY + _length_delimited(2, label_feature))
    return _length_delimited(1, entries)


def check_label(label: int | float) -> None:
    if label < 0 or not float(label).is_integer():
        raise ValueError(f"label {label}: class labels are non-negative integers")


def _varint(value: int) -> bytes:
    """Protocol buffers base-128 varint of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2): tag, length, payload."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


_IMAGE_KEY = _length_delimited(1, b"image")  # the map entry's key field
_LABEL_KEY = _length_delimited(1, b"label")


def write_split(folder: pathlib.Path, split: str, records: Iterator[bytes], num_shards: int) -> list[dict[str, Any]]:
    """Write serialized examples round-robin into `num_shards` files; return name, count and sha256 of each."""
    names = [f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord" for index in range(num_shards)]
    counts = [0] * num_shards
    writers = [tf.io.TFRecordWriter(str(folder / name)) for name in names]
    try:
        for position, record in enumerate(records):
            writers[position % num_shards].write(record)
            counts[position % num_shards] += 1
    finally:
        for writer in writers:
            writer.close()
    return [
        {"file": name, "examples": count, "sha256": sha256_file(folder / name)}
        for name, count in zip(names, counts, strict=True)
    ]
