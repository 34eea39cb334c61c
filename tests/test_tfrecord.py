"""TFRecord shards: round trip against the tfds source, spec.json, split carving, and damage detection."""

from __future__ import annotations

import json
import pathlib
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from workflow.data.download import load_builder
from workflow.data.pipeline import load_arrays, make_dataset, make_in_memory_dataset, parse_batch
from workflow.data.shards import ShardError, Spec, read_spec, shard_paths
from workflow.data.tfrecord import convert, serialize, source_splits
from workflow.infra.atomic import read_json


def tfds_split(manifest_path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    builder = load_builder(read_json(manifest_path))
    examples = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
    return np.stack([e["image"] for e in examples]), np.array([e["label"] for e in examples])


@pytest.mark.parametrize(
    ("split", "source"), [("train", "train[:90%]"), ("validation", "train[90%:]"), ("test", "test")]
)
def test_records_equal_the_source_examples(digits_prepared, digits_shards, split, source):
    """Every split read back from the shards holds exactly the tfds examples, as a multiset per shard order."""
    expected_images, expected_labels = tfds_split(digits_prepared["manifest"], source)

    arrays = load_arrays(digits_shards, split)

    assert len(arrays["labels"]) == len(expected_labels)

    # Shards are filled round-robin and read interleaved; compare order-independently by sorting on bytes.
    def key(images, labels):
        return sorted(zip((image.tobytes() for image in images), labels.tolist(), strict=True))

    assert key(arrays["images"], arrays["labels"]) == key(expected_images, expected_labels)


def test_spec_counts_and_checksums(digits_shards):
    """spec.json counts add up to the digits splits and lists one sha256 per shard."""
    spec = read_spec(digits_shards)

    counts = {split: entry.examples for split, entry in spec.splits.items()}
    assert counts == {"train": 1293, "validation": 144, "test": 360}
    assert sum(counts.values()) == 1797
    assert [len(spec.splits[s].shards) for s in ("train", "validation", "test")] == [3, 1, 2]
    assert all(len(shard.sha256) == 64 for entry in spec.splits.values() for shard in entry.shards)
    assert spec.image_shape == (8, 8, 1) and not spec.is_table
    assert spec.source["name"] == "sklearn_digits"
    # spec.json holds what the Spec says, and reads back as it.
    written = json.loads((pathlib.Path(digits_shards) / "spec.json").read_text())
    assert written["features"]["image"] == {"dtype": "uint8", "shape": [8, 8, 1]}
    assert Spec.from_json(written) == spec and spec.to_json() == written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda spec: spec["features"]["label"].pop("num_classes"), "features.label.num_classes is missing"),
        (lambda spec: spec["splits"]["train"]["shards"][0].update(file="../x"), "splits.train.shards[0].file '../x'"),
        (lambda spec: spec["features"]["image"].update(shape=[8, "8", 1]), "features.image.shape must be positive"),
        (lambda spec: spec["features"].update(columns={"a": {"dtype": "float32"}}), "features needs exactly one of"),
        (lambda spec: spec["splits"]["test"].update(examples="360"), "splits.test.examples must be int, is str"),
        (lambda spec: spec["features"]["label"].update(task="ranking"), "features.label.task is 'ranking'"),
        (lambda spec: spec.update(source=["mnist"]), "source must be a mapping of texts"),
    ],
)
def test_a_spec_json_the_tfrecord_step_did_not_write_is_refused_naming_the_key(
    digits_shards, tmp_path, change, message
):
    """Every step reads spec.json through one typed reader: a damaged or hand-edited one is refused naming the
    file and the key, and a shard outside the folder is not read."""
    spec = json.loads((pathlib.Path(digits_shards) / "spec.json").read_text())
    change(spec)
    (tmp_path / "spec.json").write_text(json.dumps(spec))

    with pytest.raises(ShardError, match=re.escape(f"{tmp_path / 'spec.json'}: {message}")):
        read_spec(tmp_path)


def test_validation_is_carved_only_when_missing():
    """A dataset without validation gets the last percent of train; one with it keeps its own."""
    assert source_splits({"train", "test"}, 15) == {"train": "train[:85%]", "validation": "train[85%:]", "test": "test"}
    assert source_splits({"train", "validation", "test"}, 15)["validation"] == "validation"
    assert source_splits({"train", "test"}, 0) == {"train": "train", "test": "test"}  # no validation split
    with pytest.raises(ValueError, match="needs train and test splits, has: train"):
        source_splits({"train"}, 10)


def test_parsing_eagerly_equals_parsing_in_tf_data():
    """parse_batch gives the same tensors called eagerly as inside a tf.data map."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 4, 3, 2), dtype=np.uint8)
    labels = rng.integers(0, 9, 5)
    records = tf.constant([serialize(image, int(label)) for image, label in zip(images, labels, strict=True)])

    eager_images, eager_labels = parse_batch(records, [4, 3, 2])
    mapped_images, mapped_labels = next(
        iter(tf.data.Dataset.from_tensors(records).map(lambda r: parse_batch(r, [4, 3, 2])))
    )

    np.testing.assert_array_equal(eager_images.numpy(), images)
    np.testing.assert_array_equal(mapped_images.numpy(), eager_images.numpy())
    np.testing.assert_array_equal(mapped_labels.numpy(), eager_labels.numpy())


def test_shuffled_order_is_seeded(digits_shards):
    """The same seed gives the same first batch; another seed gives another one."""

    def first_labels(seed):
        batch = next(iter(make_dataset(digits_shards, "train", 64, shuffle=True, seed=seed, shuffle_buffer=2000)))
        return batch[1].numpy().tolist()

    assert first_labels(3) == first_labels(3)
    assert first_labels(3) != first_labels(4)


def test_a_streamed_epoch_is_the_whole_split_in_one_order_per_seed_and_epoch(digits_shards):
    """Every batch of a streamed epoch, not only the first, is fixed by (seed, epoch), with the shards verified
    or not (the trainer verifies once, then makes each epoch's dataset with verify=False)."""

    def epoch_batches(seed, epoch, verify=True):
        dataset = make_dataset(digits_shards, "train", 64, shuffle=True, seed=seed, epoch=epoch, verify=verify)
        batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])

    images, labels = epoch_batches(3, 1)
    assert len(labels) == read_spec(digits_shards).examples("train")
    again_images, again_labels = epoch_batches(3, 1, verify=False)
    np.testing.assert_array_equal(again_images, images)
    np.testing.assert_array_equal(again_labels, labels)
    assert not np.array_equal(epoch_batches(3, 2)[1], labels)
    assert sorted(epoch_batches(3, 2)[1].tolist()) == sorted(labels.tolist())


def test_in_memory_epochs_are_seeded_permutations(digits_shards):
    """In memory, an epoch is a permutation of the split fixed by (seed, epoch); skipping k batches drops exactly k."""
    arrays = load_arrays(digits_shards, "train")

    def labels(seed, epoch, skip=0):
        dataset = make_in_memory_dataset(arrays, 64, seed=seed, epoch=epoch).skip(skip)
        return np.concatenate([batch[1].numpy() for batch in dataset])

    first = labels(3, 0)
    assert sorted(first.tolist()) == sorted(arrays["labels"].tolist())
    np.testing.assert_array_equal(first, labels(3, 0))
    assert not np.array_equal(first, labels(3, 1))
    assert not np.array_equal(first, labels(4, 0))
    np.testing.assert_array_equal(labels(3, 0, skip=5), first[5 * 64 :])
    images = next(iter(make_in_memory_dataset(arrays, 64, seed=3, epoch=0)))[0].numpy()
    assert images.dtype == np.float32 and images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_named(digits_shards, tmp_path, damage):
    """A truncated or altered shard is refused with its path, before any record is read."""
    copy = tmp_path / "shards"
    shutil.copytree(digits_shards, copy)
    victim = pathlib.Path(shard_paths(copy, read_spec(copy), "train", verify=False)[1])
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    with pytest.raises(ShardError, match=f"{victim}: sha256 differs"):
        make_dataset(str(copy), "train", 32)


@pytest.mark.parametrize(("shape", "label"), [((2, 2, 1), 0), ((8, 8, 1), 9), ((28, 28, 1), 127), ((32, 32, 3), 300)])
def test_direct_encoding_equals_the_protobuf_serialization(shape, label):
    """serialize() writes the bytes tf.train.Example would (sorted keys), and parse_example reads them back."""
    image = np.random.default_rng(label).integers(0, 256, size=shape, dtype=np.uint8)
    proto = tf.train.Example(
        features=tf.train.Features(
            feature={
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
            }
        )
    )

    encoded = serialize(image, label)

    assert encoded == proto.SerializeToString(deterministic=True)
    assert tf.train.Example.FromString(encoded) == proto
    parsed = tf.io.parse_single_example(
        encoded, {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    )
    assert parsed["image"].numpy() == image.tobytes() and int(parsed["label"]) == label


def test_negative_label_is_refused():
    with pytest.raises(ValueError, match="label -1"):
        serialize(np.zeros((2, 2, 1), np.uint8), -1)


def test_a_table_becomes_shards_with_typed_columns(tmp_path):
    """sklearn_breast_cancer through the real tfds path and the tfrecord step: 30 float32 columns,
    each record parses with its typed spec and equals the source row, labels named."""
    from sklearn.datasets import load_breast_cancer

    from workflow.data.datasets.csv_table import column_name
    from workflow.data.download import prepare

    manifest = tmp_path / "prepared.json"
    prepare(tfds_name="sklearn_breast_cancer", manual_dir=None, data_dir=str(tmp_path / "tfds"), manifest=str(manifest))
    spec = convert(manifest_path=str(manifest), output_dir=str(tmp_path / "shards"),
                   shards={"train": 2, "validation": 1, "test": 1}, validation_percent=10)  # fmt: skip

    bundle = load_breast_cancer()
    names = [column_name(name) for name in bundle.feature_names]
    assert list(spec.columns) == sorted(names) and len(names) == 30
    assert {column["dtype"] for column in spec.columns.values()} == {"float32"}
    assert spec.label.names == ("malignant", "benign")
    # tfds rounds train[:90%] of 455 examples to 410
    counts = {split: entry.examples for split, entry in spec.splits.items()}
    assert counts == {"train": 410, "validation": 45, "test": 114}
    parse = {name: tf.io.FixedLenFeature([], tf.float32) for name in names}
    parse["label"] = tf.io.FixedLenFeature([], tf.int64)
    files = shard_paths(str(tmp_path / "shards"), read_spec(str(tmp_path / "shards")), "test")
    rows = [tf.io.parse_single_example(record, parse) for record in tf.data.TFRecordDataset(files)]
    test_rows = {tuple(np.float32(bundle.data[index])): bundle.target[index] for index in range(0, 569, 5)}
    for row in rows:
        key = tuple(np.float32(row[name].numpy()) for name in names)
        assert test_rows[key] == row["label"].numpy()
    assert len(rows) == len(test_rows) == 114
