"""Training overhead: the project's training against a plain `model.fit` on in-memory NumPy arrays.

    python benchmarks/training_overhead.py [--config configs/papers/lenet5_mnist.yaml] [--epochs 2] [--repeats 5]
                                           [--variants NAME ...]

Same model, optimizer, schedule, batch size, epochs, seed and determinism setting (the config's),
on the MNIST train split. "project" is `workflow.train.trainer.train` as the train step runs it: the train
split read from its shards (into memory, train.in_memory: auto), the strategy `auto` picks, one
`fit` per epoch, checkpoints, TensorBoard scalars, the epoch logger, and saving model.keras,
history.json and train.json. "plain" is build, compile and one `model.fit(x, y, batch_size,
epochs, shuffle=True)` on float32 arrays already scaled in memory, with model.fit's default of
one batch per call; a second plain row uses the project's `steps_per_execution`, to show how much
of the difference that default makes. "project, streamed" reads the shards through the shuffle
buffer instead (in_memory: false). Each measurement is a fresh process (so op determinism, XLA
and the precision policy do not leak), timing the training call alone: interpreter and
TensorFlow start-up are the same for both and are per-step start-up's concern (step_startup.py).
Also the project with XLA (`jit_compile: true`) and with mixed precision (bfloat16 on CPU).
Target: project/plain examples/s at least 1.0. Both wall-clock examples/s and examples per CPU
second (all threads of the process) are reported: on a shared machine the wall figure of the same
work swings by a fifth between minutes, the CPU figure by a few percent.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from harness import REPO, header, interleaved, table, timed_with_cpu  # noqa: E402

TARGET = 1.0
VARIANTS = {
    "project": {},
    "plain model.fit": {},
    "plain model.fit, project's steps_per_execution": {},
    "project, streamed": {"in_memory": False},
    "project, XLA": {"jit_compile": True},
    "project, mixed precision": {"mixed_precision": True},
}


def worker(variant: str, config_path: str, epochs: int) -> dict[str, float]:
    """One measurement in this process: examples/s of the variant's training call."""
    from input_pipeline import shards_for

    from workflow.config import settings as cfg
    from workflow.data.pipeline import load_arrays
    from workflow.models.images import build_model
    from workflow.train.trainer import TrainConfig, compile_model, set_up, train

    config = cfg.load_config(cfg.load_yaml(config_path))
    experiment = next(iter(config["experiments"]))
    params = copy.deepcopy(cfg.train_params(config, experiment))
    params["train"].update(epochs=epochs, **VARIANTS[variant])
    seed = config["experiments"][experiment]["seeds"][0]
    shards, spec = shards_for(config, experiment)
    examples = spec.examples("train") * epochs
    if variant.startswith("project"):
        with tempfile.TemporaryDirectory(prefix="overhead-", dir=REPO / "build") as scratch:
            folder = pathlib.Path(scratch)
            seconds, cpu_seconds, _ = timed_with_cpu(
                lambda: train(
                    shards_dir=str(shards),
                    model_path=str(folder / "model.keras"),
                    history_path=str(folder / "history.json"),
                    info_path=str(folder / "train.json"),
                    tensorboard_dir=str(folder / "tensorboard"),
                    checkpoint_root=str(folder / "checkpoints"),
                    params=params,
                    seed=seed,
                )
            )
        return {"examples_per_s": examples / seconds, "examples_per_cpu_s": examples / cpu_seconds}
    settings = TrainConfig.of(params)
    arrays = load_arrays(str(shards), "train")
    images = (arrays["images"].astype("float32") / 255.0).copy()
    labels = arrays["labels"]
    set_up(settings, seed)

    def plain() -> None:
        model = build_model(
            params["model"], list(spec.image_shape), spec.label.classes
        )
        if "steps_per_execution" not in variant:  # model.fit's own default
            settings_here = dataclasses.replace(settings, steps_per_execution=1)
        else:
            settings_here = settings
        compile_model(model, settings_here, -(-len(labels) // settings.batch_size))
        model.fit(images, labels, batch_size=settings.batch_size, epochs=epochs, shuffle=True, verbose=0)

    seconds, cpu_seconds, _ = timed_with_cpu(plain)
    return {"examples_per_s": examples / seconds, "examples_per_cpu_s": examples / cpu_seconds}


def measure(variant: str, config_path: str, epochs: int) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--config", config_path, "--epochs", str(epochs)],
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "papers" / "lenet5_mnist.yaml"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
        help="measure only these (project and plain model.fit are always measured)",
    )  # fmt: skip
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.config, args.epochs)))
        return
    print(header(f"Training overhead: {pathlib.Path(args.config).name}, {args.epochs} epochs", args.repeats))
    medians = interleaved(
        {
            variant: lambda variant=variant: measure(variant, args.config, args.epochs)
            for variant in VARIANTS
            if variant in args.variants or variant in ("project", "plain model.fit")
        },
        args.repeats,
    )
    plain = medians["plain model.fit"]
    rows = [
        [
            name,
            figures["examples_per_s"],
            figures["examples_per_s"] / plain["examples_per_s"],
            figures["examples_per_cpu_s"],
            figures["examples_per_cpu_s"] / plain["examples_per_cpu_s"],
        ]
        for name, figures in medians.items()
    ]
    print(table(["training", "examples/s", "÷ plain", "examples per CPU s", "÷ plain (CPU)"], rows))
    wall_ratio = medians["project"]["examples_per_s"] / plain["examples_per_s"]
    cpu_ratio = medians["project"]["examples_per_cpu_s"] / plain["examples_per_cpu_s"]
    print(f"\nproject/plain: {wall_ratio:.2f} by wall time, {cpu_ratio:.2f} by CPU time (target >= {TARGET})")
    sys.exit(0 if min(wall_ratio, cpu_ratio) >= TARGET else 1)


if __name__ == "__main__":
    main()
