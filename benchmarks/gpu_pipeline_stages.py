"""Which stage limits the streamed input pipeline: each prefix of it alone, and alternatives, in images/s.

    python benchmarks/gpu_pipeline_stages.py build/gpu   # after benchmarks/gpu_training.py prepare

Uses the CIFAR-shaped shards of benchmarks/gpu_training.py (50,000 random 32x32x3 images, 8 shards;
written if absent) and, when `run` unpacked them there, the MNIST shards. Each row: mean of epochs 2
and 3 of iterating the dataset with nothing training. Rows are measured one after another in one
process; compare them with each other, not with another call's (docs/performance.md "GPU training").
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> None:
    import gpu_training
    import numpy as np
    import tensorflow as tf

    from workflow.features import scale_images
    from workflow.pipeline import load_arrays, make_dataset, make_in_memory_dataset, parse_batch
    from workflow.shards import read_spec, shard_paths

    folder = pathlib.Path(sys.argv[1])
    cifar = folder / "cifar_shaped"
    gpu_training.write_shards(cifar)
    spec = read_spec(str(cifar))
    files, shape = shard_paths(str(cifar), spec, "train"), spec["features"]["image"]["shape"]
    rates: dict[str, float] = {}

    def measure(
        name: str, make: Callable[[int], Any], size: Callable[[Any], int] = lambda b: int(b[0].shape[0])
    ) -> None:
        per_epoch = []
        for epoch in range(3):
            started, count = time.perf_counter(), 0
            for batch in make(epoch):
                count += size(batch)
            per_epoch.append(count / (time.perf_counter() - started))
        rates[name] = sum(per_epoch[1:]) / 2
        print(f"| {name} | {rates[name]:,.0f} |", flush=True)

    def records(block: int = 1, cycle: int = 8) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=cycle, block_length=block, num_parallel_calls=tf.data.AUTOTUNE
        )

    def parsed(dataset: tf.data.Dataset) -> tf.data.Dataset:
        def parse(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            images, labels = parse_batch(batch, shape)
            return scale_images(images), labels

        return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    count = lambda batch: int(batch.shape[0])  # noqa: E731
    print(f"\n## Streamed pipeline stages, batch 512, {os.cpu_count()} cores\n\n| pipeline | images/s |\n|---|---|")
    measure("the project's streamed pipeline (workflow.pipeline.make_dataset)",
            lambda epoch: make_dataset(str(cifar), "train", 512, shuffle=True, seed=0, epoch=epoch))  # fmt: skip
    measure("interleave + batch", lambda epoch: records().batch(512), count)
    measure("interleave + shuffle + batch", lambda epoch: records().shuffle(10_000, seed=epoch).batch(512), count)
    measure("interleave + shuffle + batch + parse + scale",
            lambda epoch: parsed(records().shuffle(10_000, seed=epoch).batch(512)))  # fmt: skip
    measure("the same, interleave block length 64",
            lambda epoch: parsed(records(block=64).shuffle(10_000, seed=epoch).batch(512)))  # fmt: skip
    measure("the same, block length 1, cycle 16",
            lambda epoch: parsed(records(cycle=16).shuffle(10_000, seed=epoch).batch(512)))  # fmt: skip
    measure("no shuffle: interleave + batch + parse + scale", lambda epoch: parsed(records().batch(512)))
    mnist = folder / "mnist"
    if mnist.is_dir():
        arrays = load_arrays(str(mnist), "train")
        measure("MNIST in memory, batch 128 (workflow.pipeline.make_in_memory_dataset)",
                lambda epoch: make_in_memory_dataset(arrays, 128, seed=0, epoch=epoch))  # fmt: skip
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

        floats = arrays["images"].astype(np.float32) / 255.0
        adapter = lambda epoch: ArrayDataAdapter(floats, arrays["labels"], batch_size=128, shuffle=True)  # noqa: E731
        measure("MNIST, Keras's own array adapter (what plain model.fit iterates), batch 128",
                lambda epoch: adapter(epoch).get_tf_dataset())  # fmt: skip
    (folder / "results-pipeline-stages.json").write_text(json.dumps(rates, indent=1))


if __name__ == "__main__":
    main()
