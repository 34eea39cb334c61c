"""Size and single-example latency of every deployable format of one finished run, side by side.

    python benchmarks/deploy_formats.py [results/runs/digits_cnn/seed0] [--repeats 5]

Each latency is the median of `--repeats` measurements, each itself the median of 30 single-example
runs after a warm-up (workflow/deploy/latency.py): the SavedModel in TensorFlow, each TFLite file in LiteRT
with 1 thread, the TF.js model in Node.js. Ratios are against the SavedModel measured in the same
run, so a busy machine shifts the milliseconds more than the ratios. Needs a finished run
(`make run`) and, for TF.js, its Node environment (results/envs/node.json).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from workflow.data.pipeline import load_arrays  # noqa: E402
from workflow.deploy.converted import bytes_on_disk  # noqa: E402
from workflow.deploy.formats import FORMATS, converted_models  # noqa: E402
from workflow.deploy.latency import saved_model_latency_ms  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", default="results/runs/digits_cnn/seed0")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shards", default=None, help="shards folder (default: from the run's dataset)")
    args = parser.parse_args()
    run = pathlib.Path(args.run)
    if not (run / "saved_model").is_dir():
        sys.exit(f"{run}/saved_model not found: finish a run first (make run)")
    shards = args.shards or str(next(pathlib.Path("results/datasets").glob("*/shards")))
    example = {"images": load_arrays(shards, "test", limit=1)["images"]}
    node = pathlib.Path("results/envs/node.json")

    measures = {
        "saved_model": (
            bytes_on_disk(str(run / "saved_model")),
            lambda: saved_model_latency_ms(str(run / "saved_model"), example),
        )
    }
    folders = {fmt.name: str(run / fmt.name) for fmt in FORMATS if (run / fmt.name).is_dir()}
    if "tfjs" in folders and not node.is_file():
        del folders["tfjs"]  # its runtime needs the Node environment
    for model in converted_models({**folders, "node_env": str(node)}, example):
        measures[model.name] = (model.bytes, model.latency_ms)

    latencies = {name: [] for name in measures}
    for _ in range(args.repeats):  # interleaved, so drift on the machine hits every format alike
        for name, (_, measure) in measures.items():
            latencies[name].append(measure())
    reference_bytes, reference_ms = measures["saved_model"][0], statistics.median(latencies["saved_model"])
    print(f"run: {run}  repeats: {args.repeats} (each the median of 30 single-example runs)")
    print(f"{'format':<14}{'bytes':>12}{'size ratio':>12}{'latency ms':>12}{'latency ratio':>15}")
    for name, (size, _) in measures.items():
        median = statistics.median(latencies[name])
        print(f"{name:<14}{size:>12,}{size / reference_bytes:>12.3f}{median:>12.3f}{median / reference_ms:>15.3f}")


if __name__ == "__main__":
    main()
