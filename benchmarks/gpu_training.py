"""GPU training: determinism against XLA, and the project's train step against plain `model.fit`.

    python benchmarks/gpu_training.py prepare build/gpu     # here: the train params of each variant
    python benchmarks/gpu_training.py run build/gpu [VARIANT ...]   # with a GPU: shards, runs, table

ResNet-20 (configs/papers/resnet20_cifar10.yaml) at batch 512 with mixed precision, on shards of
CIFAR-10's shape and size (50,000 + 10,000 random 32x32x3 images: the real files cannot be fetched
on the GPU machine; the speed does not depend on the pixels). `prepare` runs the config loader (it
needs the project's environment) and writes each variant's params; `run` needs only TensorFlow and
the `workflow` package: it writes the shards with the tfrecord step's record writer
(workflow/records.py), then trains each variant in a fresh process, twice with the
same seed, and compares the two runs' weights bit for bit.

Variants:
- deterministic, XLA: `train.deterministic: true` with `jit_compile: true`: the train step uses XLA's
  deterministic mode (--xla_gpu_deterministic_ops, workflow/train.py `determinism`).
- op determinism, no XLA: `deterministic: true`, `jit_compile: false`: TensorFlow's op determinism
  (with which Keras 3 would turn XLA off: "Model doesn't support jit_compile=True").
- XLA, not deterministic: `deterministic: false`, `jit_compile: true`.
- XLA, no augmentation: as the last without the pad-crop-flip augmentation, the same work as plain.
- plain model.fit: build and compile the same model (XLA, mixed precision, the project's
  steps_per_execution), one `model.fit` on the images already in memory as float32.
Figures: steady-state examples/s (epochs after the first; train.json's `steady_examples_per_second`),
the first epoch's seconds (compilation and warm-up), and whether two runs gave identical weights.
Target (issue "Fast and honest on a real GPU"): project/plain >= 1.0 at steady state.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# TFL_GPU_BENCH_TRAIN / _EPOCHS shrink a smoke run on a CPU; the figures are from the defaults.
TRAIN = int(os.environ.get("TFL_GPU_BENCH_TRAIN", 50_000))
TEST, SHAPE, CLASSES, SHARDS = TRAIN // 5, (32, 32, 3), 10, 8
BATCH, EPOCHS = 512, int(os.environ.get("TFL_GPU_BENCH_EPOCHS", 6))
VARIANTS = {
    "deterministic, XLA": {"deterministic": True, "jit_compile": True},
    "op determinism, no XLA": {"deterministic": True, "jit_compile": False},
    "XLA, not deterministic": {"deterministic": False, "jit_compile": True},
    "XLA, no augmentation": {"deterministic": False, "jit_compile": True, "augment": None},
    "plain model.fit": {"deterministic": False, "jit_compile": True, "augment": None},
}
REPEATED = ("deterministic, XLA", "op determinism, no XLA", "XLA, not deterministic")  # twice: same weights?


def prepare(folder: pathlib.Path) -> None:
    from workflow import config as cfg

    config = cfg.load_config(cfg.load_yaml(REPO / "configs" / "papers" / "resnet20_cifar10.yaml"))
    experiment = next(iter(config["experiments"]))
    base = cfg.train_params(config, experiment)
    base["train"].update(batch_size=BATCH, epochs=EPOCHS, mixed_precision=True, in_memory=True)
    variants = {}
    for name, changes in VARIANTS.items():
        params = copy.deepcopy(base)
        for key, value in changes.items():
            if key == "augment":  # none: the same work as plain model.fit
                params["train"]["augment"].update(pad_crop=0, horizontal_flip=False)
            else:
                params["train"][key] = value
        variants[name] = params
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "variants.json").write_text(json.dumps(variants, indent=1))
    print(f"wrote {folder / 'variants.json'}: {', '.join(variants)}")


def write_shards(folder: pathlib.Path) -> None:
    """Random CIFAR-shaped shards and the spec.json the train step reads, written by the tfrecord step's own
    record writer (workflow/records.py: TensorFlow alone, as the GPU machine has no tfds)."""
    import numpy as np

    from workflow.records import serialize, write_split

    if (folder / "spec.json").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    spec = {"source": {"name": "random_cifar_shaped", "version": "0", "full_name": "random_cifar_shaped/0"},
            "features": {"image": {"dtype": "uint8", "shape": list(SHAPE)},
                         "label": {"dtype": "int64", "num_classes": CLASSES,
                                   "names": [str(i) for i in range(CLASSES)]}},
            "splits": {}}  # fmt: skip
    for split, count in (("train", TRAIN), ("test", TEST)):
        images = rng.integers(0, 256, size=(count, *SHAPE), dtype=np.uint8)
        labels = rng.integers(0, CLASSES, size=count)
        records = (serialize(image, int(label)) for image, label in zip(images, labels, strict=True))
        files = write_split(folder, split, records, SHARDS if split == "train" else 2)
        spec["splits"][split] = {"source_split": split, "examples": count, "shards": files}
    (folder / "spec.json").write_text(json.dumps(spec))


def worker(variant: str, params: dict, shards: str, out: str) -> dict:
    """One run in this process: the project's train step, or plain model.fit."""
    if variant != "plain model.fit":
        from workflow.train import train

        folder = pathlib.Path(out)
        info = train(shards_dir=shards, model_path=str(folder / "model.keras"),
                     history_path=str(folder / "history.json"), info_path=str(folder / "train.json"),
                     tensorboard_dir=str(folder / "tensorboard"), checkpoint_root=str(folder / "checkpoints"),
                     params=params, seed=0)  # fmt: skip
        return {"steady": info["steady_examples_per_second"], "first_epoch_s": info["first_epoch_seconds"],
                "weights": weights_digest(folder / "model.keras")}  # fmt: skip
    import keras

    from workflow.models import build_model
    from workflow.pipeline import load_arrays
    from workflow.train import TrainConfig, compile_model, set_up

    settings = TrainConfig.of(params)
    set_up(settings, 0)
    arrays = load_arrays(shards, "train")
    images, labels = (arrays["images"].astype("float32") / 255.0), arrays["labels"]
    model = build_model(params["model"], SHAPE, CLASSES)
    compile_model(model, settings, -(-len(labels) // settings.batch_size))
    seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)

    model.fit(images, labels, batch_size=settings.batch_size, epochs=settings.epochs, shuffle=True, verbose=0,
              callbacks=[Timer()])  # fmt: skip
    steady = len(labels) * (len(seconds) - 1) / sum(seconds[1:])
    return {"steady": steady, "first_epoch_s": seconds[0], "weights": None}


def weights_digest(path: pathlib.Path) -> str:
    import keras

    model = keras.saving.load_model(path, compile=False)
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def run(folder: pathlib.Path, only: list[str]) -> None:
    variants = json.loads((folder / "variants.json").read_text())
    variants = {name: params for name, params in variants.items() if not only or name in only}
    shards = folder / "shards"
    write_shards(shards)
    results: dict[str, list[dict]] = {}
    for name, params in variants.items():
        for attempt in range(2 if name in REPEATED else 1):
            out = folder / "runs" / f"{name.replace(' ', '_').replace(',', '').replace('+', 'and')}-{attempt}"
            out.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            (out / "params.json").write_text(json.dumps(params))
            started = time.monotonic()
            completed = subprocess.run([sys.executable, __file__, "worker", name, str(out / "params.json"), str(shards),
                                        str(out)], capture_output=True, text=True, env=env)  # fmt: skip
            (out / "log.txt").write_text(completed.stdout + completed.stderr)
            if completed.returncode != 0:
                print(f"{name} (run {attempt + 1}) failed:\n{completed.stderr[-3000:]}", flush=True)
                continue
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            result["wall_s"] = time.monotonic() - started
            result["xla_off_warning"] = "support `jit_compile=True`" in completed.stderr + completed.stdout
            results.setdefault(name, []).append(result)
            print(f"{name} (run {attempt + 1}): {result}", flush=True)
    plain = results.get("plain model.fit", [{}])[0].get("steady")
    print(f"\n## GPU training: ResNet-20, {TRAIN:,} random 32x32x3 images, batch {BATCH}, mixed precision, "
          f"{EPOCHS} epochs\n")  # fmt: skip
    print("| variant | steady examples/s | first epoch s | / plain | XLA turned off | same weights twice |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        first = runs[0]
        ratio = f"{first['steady'] / plain:.2f}" if plain else "-"
        same = "-" if len(runs) < 2 else ("yes" if runs[0]["weights"] == runs[1]["weights"] else "no")
        print(f"| {name} | {first['steady']:,.0f} | {first['first_epoch_s']:.1f} | {ratio} | "
              f"{'yes' if first['xla_off_warning'] else 'no'} | {same} |")  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["prepare", "run", "worker"])
    parser.add_argument("args", nargs="+")
    arguments = parser.parse_args()
    if arguments.action == "prepare":
        prepare(pathlib.Path(arguments.args[0]))
    elif arguments.action == "run":
        run(pathlib.Path(arguments.args[0]), arguments.args[1:])  # optional: the variants to run
    else:
        name, params_path, shards, out = arguments.args
        print(json.dumps(worker(name, json.loads(pathlib.Path(params_path).read_text()), shards, out)))


if __name__ == "__main__":
    main()
