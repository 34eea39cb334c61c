"""TFRecord conversion: the tfrecord step's examples/s and MB/s against plain writes of the same bytes.

    python benchmarks/tfrecord_write.py [--dataset mnist] [--manual-dir ../shared/datasets/mnist] [--repeats 5]

The dataset is prepared once with tfds into build/bench/<dataset>/ (offline from `--manual-dir`).
Each repetition runs the whole step (`workflow.data.tfrecord.convert`: read from tfds, encode, write
the shards, sha256 them, spec.json) and then writes the bytes of the shards it produced to new
files with plain `open().write()`. The phase table splits the step into its parts on the train
split, with the way each was done before (per-example `tfds.as_numpy`, `tf.train.Example`
protos) next to the way it is done now (batches of 1024, direct wire encoding).
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from harness import REPO, header, interleaved, table, timed  # noqa: E402

from workflow.data.download import load_builder, prepare  # noqa: E402
from workflow.data.tfrecord import _examples, _supervised_keys, convert, serialize  # noqa: E402
from workflow.infra.atomic import read_json  # noqa: E402


def prepared_manifest(dataset: str, manual_dir: str | None) -> pathlib.Path:
    """tfds-prepare the dataset once into build/bench/<dataset>/ and return its manifest."""
    folder = REPO / "build" / "bench" / dataset
    manifest = folder / "prepared.json"
    if not manifest.exists():
        folder.mkdir(parents=True, exist_ok=True)
        prepare(tfds_name=dataset, manual_dir=manual_dir, data_dir=str(folder / "tfds"), manifest=str(manifest))
    return manifest


def step(manifest: pathlib.Path, scratch: pathlib.Path, shards: dict[str, int]) -> dict[str, float]:
    output = scratch / "shards"
    shutil.rmtree(output, ignore_errors=True)
    seconds, spec = timed(
        lambda: convert(manifest_path=str(manifest), output_dir=str(output), shards=shards, validation_percent=0)
    )
    examples = sum(split.examples for split in spec.splits.values())
    size = sum(path.stat().st_size for path in output.glob("*.tfrecord"))
    return {"seconds": seconds, "examples": examples, "bytes": size}


def plain_writes(scratch: pathlib.Path) -> dict[str, float]:
    """The step's shard bytes (read into memory first, not timed) written to new files."""
    contents = {path.name: path.read_bytes() for path in sorted((scratch / "shards").glob("*.tfrecord"))}
    target = scratch / "plain"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()

    def write() -> None:
        for name, data in contents.items():
            with open(target / name, "wb") as handle:
                handle.write(data)

    seconds, _ = timed(write)
    return {"seconds": seconds, "bytes": sum(map(len, contents.values()))}


def phases(builder: tfds.core.DatasetBuilder, keys: tuple[str, str], arrays: list) -> dict[str, dict]:
    """The parts of the step on the train split, the way before and the way now."""

    def read_per_example() -> dict[str, float]:
        dataset = builder.as_dataset(split="train", shuffle_files=False)
        seconds, _ = timed(lambda: sum(1 for _ in tfds.as_numpy(dataset.prefetch(tf.data.AUTOTUNE))))
        return {"seconds": seconds}

    def read_batched() -> dict[str, float]:
        seconds, _ = timed(lambda: sum(1 for _ in _examples(builder, "train", *keys)))
        return {"seconds": seconds}

    def encode_proto() -> dict[str, float]:
        def run() -> None:
            for image, label in arrays:
                feature = {
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

        return {"seconds": timed(run)[0]}

    def encode_direct() -> dict[str, float]:
        return {"seconds": timed(lambda: [serialize(image, label) for image, label in arrays])[0]}

    return {
        "read: per-example as_numpy (before)": read_per_example,
        "read: batches of 1024 (now)": read_batched,
        "encode: tf.train.Example (before)": encode_proto,
        "encode: direct wire format (now)": encode_direct,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--manual-dir", default=str(REPO.parent / "shared" / "datasets" / "mnist"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    manifest = prepared_manifest(args.dataset, args.manual_dir)
    builder = load_builder(read_json(manifest))
    keys = _supervised_keys(builder)
    arrays = list(_examples(builder, "train", *keys))
    shards = {"train": 8, "test": 2}
    print(
        header(
            f"TFRecord conversion of {builder.info.full_name} (train {shards['train']}, test {shards['test']} shards)",
            args.repeats,
        )
    )
    with tempfile.TemporaryDirectory(prefix="tfrecord-bench-", dir=REPO / "build") as scratch_name:
        scratch = pathlib.Path(scratch_name)
        step(manifest, scratch, shards)  # warm-up: page cache and tfds metadata
        medians = interleaved(
            {"tfrecord step": lambda: step(manifest, scratch, shards), "plain writes": lambda: plain_writes(scratch)}
            | phases(builder, keys, arrays),
            args.repeats,
        )
    ours, plain = medians["tfrecord step"], medians["plain writes"]
    examples, megabytes = ours["examples"], ours["bytes"] / 1e6
    rows = [
        [name, figures["seconds"], examples / figures["seconds"], megabytes / figures["seconds"]]
        for name, figures in (("tfrecord step", ours), ("plain writes of the same bytes", plain))
    ]
    print(table(["what", "seconds", "examples/s", "MB/s"], rows))
    print(f"\nratio step/plain (examples/s): {plain['seconds'] / ours['seconds']:.4f}")
    print(f"{int(examples):,} examples, {megabytes:.1f} MB of shards\n")
    phase_rows = [
        [name, medians[name]["seconds"], len(arrays) / medians[name]["seconds"]]
        for name in phases(builder, keys, arrays)
    ]
    print(table([f"phase ({len(arrays):,} train examples)", "seconds", "examples/s"], phase_rows))


if __name__ == "__main__":
    main()
