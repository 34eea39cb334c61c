"""Which stage limits the streamed input pipeline: each prefix of it alone, and alternatives, in images/s.

    python benchmarks/gpu_pipeline_stages.py build/gpu   # after benchmarks/gpu_training.py prepare

Uses the CIFAR-shaped shards of benchmarks/gpu_training.py (50,000 random 32x32x3 images, 8 shards;
written if absent) and, when `run` unpacked them there, the MNIST shards. A row's rate: the mean of
the epochs after the first (gpu_training.PIPELINE_EPOCHS of them) of iterating the dataset with nothing
training. The rows run round-robin, ROUNDS times, in one process, and the table gives each row's
median and range: the first rows of a process run slower, and a shared machine has slow spells.
Compare rows with each other, not with another call's (docs/performance.md "GPU training").
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

ROUNDS = 3


def main() -> None:
    import gpu_training
    import numpy as np
    import tensorflow as tf

    from workflow.data.features import scale_images
    from workflow.data.pipeline import epoch_seed, load_arrays, make_dataset, make_in_memory_dataset, parse_batch
    from workflow.data.shards import read_spec, shard_paths
    from workflow.train.trainer import TrainConfig, load_data

    folder = pathlib.Path(sys.argv[1])
    cifar = folder / "cifar_shaped"
    gpu_training.write_shards(cifar)
    spec = read_spec(str(cifar))
    files, shape = shard_paths(str(cifar), spec, "train"), list(spec.image_shape)
    images = lambda batch: int(batch[0].shape[0])  # noqa: E731
    records_in = lambda batch: int(batch.shape[0])  # noqa: E731
    rows: dict[str, tuple[Callable[[int], Any], Callable[[Any], int]]] = {}

    def rate(make: Callable[[int], Any], size: Callable[[Any], int]) -> float:
        per_epoch = []
        for epoch in range(1 + gpu_training.PIPELINE_EPOCHS):
            started, count = time.perf_counter(), 0
            for batch in make(epoch):
                count += size(batch)
            per_epoch.append(count / (time.perf_counter() - started))
        return sum(per_epoch[1:]) / len(per_epoch[1:])

    def records(
        block: int = 1, cycle: int = 8, file_seed: int | None = None, deterministic: bool | None = None
    ) -> tf.data.Dataset:
        names = tf.data.Dataset.from_tensor_slices(files)
        if file_seed is not None:  # as make_dataset: the file order shuffled per epoch
            names = names.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=False)
        return names.interleave(
            tf.data.TFRecordDataset,
            cycle_length=cycle,
            block_length=block,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )

    def parsed(dataset: tf.data.Dataset) -> tf.data.Dataset:
        def parse(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            images, labels = parse_batch(batch, shape)
            return scale_images(images), labels

        return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    streamed = TrainConfig.of(json.loads((folder / "variants.json").read_text())["streamed, no augmentation"]["params"])
    train_data = load_data(str(cifar), streamed, 0, spec)[0]
    # fmt: off
    rows["the project's streamed pipeline (data.pipeline.make_dataset, shards verified once, as load_data)"] = (
        lambda epoch: make_dataset(str(cifar), "train", 512, shuffle=True, seed=0, epoch=epoch, verify=False), images)
    rows["the same, each epoch verifying every shard's sha256 (the trainer until 2026-12-03)"] = (
        lambda epoch: make_dataset(str(cifar), "train", 512, shuffle=True, seed=0, epoch=epoch, verify=True), images)
    rows["train.trainer.load_data, streamed, no augmentation (the pipeline group's row)"] = (train_data, images)
    rows["interleave + batch"] = (lambda epoch: records().batch(512), records_in)
    rows["interleave + shuffle + batch"] = (lambda epoch: records().shuffle(10_000, seed=epoch).batch(512), records_in)
    rows["interleave + shuffle + batch + parse + scale"] = (
        lambda epoch: parsed(records().shuffle(10_000, seed=epoch).batch(512)), images)
    rows["the same, interleave block length 64"] = (
        lambda epoch: parsed(records(block=64).shuffle(10_000, seed=epoch).batch(512)), images)
    rows["the same, block 64, files shuffled per epoch (make_dataset written out)"] = (
        lambda epoch: parsed(records(block=64, file_seed=epoch_seed(0, epoch))
                             .shuffle(10_000, seed=epoch_seed(0, epoch), reshuffle_each_iteration=False)
                             .batch(512)), images)
    rows["the same, interleave deterministic=True given (not left to tf.data.Options, which default to it)"] = (
        lambda epoch: parsed(records(block=64, file_seed=epoch_seed(0, epoch), deterministic=True)
                             .shuffle(10_000, seed=epoch_seed(0, epoch), reshuffle_each_iteration=False)
                             .batch(512)), images)
    rows["the same, interleave block length 256"] = (
        lambda epoch: parsed(records(block=256).shuffle(10_000, seed=epoch).batch(512)), images)
    rows["no shuffle: interleave + batch + parse + scale"] = (lambda epoch: parsed(records().batch(512)), images)
    # fmt: on
    mnist = folder / "mnist"
    if mnist.is_dir():
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

        arrays = load_arrays(str(mnist), "train")
        floats = arrays["images"].astype(np.float32) / 255.0
        rows["MNIST in memory, batch 128 (workflow.data.pipeline.make_in_memory_dataset)"] = (
            lambda epoch: make_in_memory_dataset(arrays, 128, seed=0, epoch=epoch),
            images,
        )
        rows["MNIST, Keras's own array adapter (what plain model.fit iterates), batch 128"] = (
            lambda epoch: ArrayDataAdapter(floats, arrays["labels"], batch_size=128, shuffle=True).get_tf_dataset(),
            images,
        )
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for round_ in range(ROUNDS):
        for name, (make, size) in rows.items():
            rates[name].append(rate(make, size))
            print(f"{name} (round {round_ + 1}): {rates[name][-1]:,.0f}", flush=True)
    print(f"\n## Streamed pipeline stages, batch 512, {os.cpu_count()} cores, {ROUNDS} rounds\n")
    print("| pipeline | images/s (median) | range |\n|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |")
    (folder / "results-pipeline-stages.json").write_text(json.dumps(rates, indent=1))


if __name__ == "__main__":
    main()
