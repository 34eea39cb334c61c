"""Input pipeline: examples/s through the project's tf.data pipeline from its shards, against memory.

    python benchmarks/input_pipeline.py [--config configs/papers/lenet5_mnist.yaml] [--repeats 5]

One epoch of the train split with the config's batch size is read four ways, in turn:
the project's pipeline (`workflow.data.pipeline.make_dataset`: shards, interleave, seeded shuffle,
batch, parse, scale, prefetch), the project's in-memory path that training takes for splits that
fit (`make_in_memory_dataset`: a seeded permutation, gather per batch, scale; shown, not judged),
the same arrays from memory (`from_tensor_slices`, batch, then
map the same scaling), and what training consumes: the config's model taking optimizer steps on
batches from memory. Targets: pipeline/memory at least 0.5; pipeline/training at least 10.
The shards come from the tfrecord benchmark's prepared dataset (build/bench/<dataset>/).
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import tensorflow as tf  # noqa: E402
from harness import REPO, header, interleaved, table, timed  # noqa: E402
from tfrecord_write import prepared_manifest  # noqa: E402

from workflow.config import settings as cfg  # noqa: E402
from workflow.data.features import scale_images  # noqa: E402
from workflow.data.pipeline import load_arrays, make_dataset, make_in_memory_dataset  # noqa: E402
from workflow.data.shards import Spec, read_spec  # noqa: E402
from workflow.data.tfrecord import convert  # noqa: E402
from workflow.models.images import build_model  # noqa: E402
from workflow.train.trainer import TrainConfig, compile_model  # noqa: E402

TARGET_MEMORY, TARGET_TRAINING = 0.5, 10.0


def shards_for(config: dict, experiment: str) -> tuple[pathlib.Path, dict]:
    """The experiment's dataset as shards under build/bench/ (made once)."""
    dataset = config["datasets"][config["experiments"][experiment]["dataset"]]
    folder = REPO / "build" / "bench" / dataset["tfds_name"]
    shards = folder / f"shards-{'-'.join(f'{k}{v}' for k, v in sorted(dataset['shards'].items()))}"
    if not shards.exists():
        manual_dir = dataset["manual_dir"] and str((REPO / dataset["manual_dir"]).resolve())
        manifest = prepared_manifest(dataset["tfds_name"], manual_dir)
        convert(
            manifest_path=str(manifest),
            output_dir=str(shards),
            shards=dataset["shards"],
            validation_percent=dataset["validation_percent"],
        )
    return shards, read_spec(shards)


def examples_per_second(dataset: tf.data.Dataset) -> dict[str, float]:
    def drain() -> int:
        return sum(int(labels.shape[0]) for _, labels in dataset)

    seconds, count = timed(drain)
    return {"examples_per_s": count / seconds}


def training_rate(params: dict, spec: Spec, memory: tf.data.Dataset, steps: int) -> dict[str, float]:
    """Examples/s of the config's model taking `steps` optimizer steps (after a traced warm-up)."""
    train = TrainConfig.of(params)
    model = build_model(params["model"], list(spec.image_shape), spec.label.classes)
    compile_model(model, train, steps)
    batches = memory.repeat()
    model.fit(batches, steps_per_epoch=5, epochs=1, verbose=0)
    seconds, _ = timed(lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0))
    return {"examples_per_s": steps * train.batch_size / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "papers" / "lenet5_mnist.yaml"))
    parser.add_argument("--experiment", help="default: the config's first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=300)
    args = parser.parse_args()
    config = cfg.load_config(cfg.load_yaml(args.config))
    experiment = args.experiment or next(iter(config["experiments"]))
    params = cfg.train_params(copy.deepcopy(config), experiment)
    batch = params["train"]["batch_size"]
    shards, spec = shards_for(config, experiment)
    arrays = load_arrays(str(shards), "train")
    memory = (
        tf.data.Dataset.from_tensor_slices((arrays["images"], arrays["labels"]))
        .batch(batch)
        .map(lambda images, labels: (scale_images(images), labels), num_parallel_calls=tf.data.AUTOTUNE)
    )
    title = f"Input pipeline: {experiment}, train split ({len(arrays['labels']):,} examples), batch {batch}"
    print(header(title, args.repeats))
    medians = interleaved(
        {
            "project pipeline (shards)": lambda: examples_per_second(
                make_dataset(str(shards), "train", batch, shuffle=True, seed=0, epoch=0)
            ),
            "project, split held in memory (train.in_memory)": lambda: examples_per_second(
                make_in_memory_dataset(arrays, batch, seed=0, epoch=0)
            ),
            "from_tensor_slices (memory)": lambda: examples_per_second(memory),
            "training consumes": lambda: training_rate(params, spec, memory, args.train_steps),
        },
        args.repeats,
    )
    ours = medians["project pipeline (shards)"]["examples_per_s"]
    rows = [[name, figures["examples_per_s"], ours / figures["examples_per_s"]] for name, figures in medians.items()]
    print(table(["what", "examples/s", "pipeline ÷ this"], rows))
    memory_ratio = ours / medians["from_tensor_slices (memory)"]["examples_per_s"]
    training_ratio = ours / medians["training consumes"]["examples_per_s"]
    print(
        f"\npipeline/memory {memory_ratio:.2f} (target >= {TARGET_MEMORY}); "
        f"pipeline/training {training_ratio:.1f} (target >= {TARGET_TRAINING})"
    )
    sys.exit(0 if memory_ratio >= TARGET_MEMORY and training_ratio >= TARGET_TRAINING else 1)


if __name__ == "__main__":
    main()
