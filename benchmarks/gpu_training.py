"""GPU training: the project's train step against plain `model.fit`, determinism against XLA, the input
pipeline against the step's demand, mixed precision, the LeNet-5 reproduction, and scaling to two GPUs.

    python benchmarks/gpu_training.py prepare build/gpu [MNIST_SHARDS]  # here: each run's params
    python benchmarks/gpu_training.py run build/gpu GROUP [GROUP ...]     # with a GPU: runs and tables

`prepare` runs the config loader (it needs the project's environment) and writes every run's train
params to variants.json; with MNIST_SHARDS (the tfrecord step's output for
configs/papers/lenet5_mnist.yaml, results/datasets/mnist_lecun/shards) it packs them into
build/gpu/mnist.tar.gz, which `run` unpacks. `run` needs only TensorFlow and the `workflow` package
(the GPU machine has no tfds): it writes CIFAR-shaped shards with the tfrecord step's record writer
(workflow/data/records.py) and runs each of the group's runs in a fresh process. Groups, each printed as
its own table (and saved as results-GROUP.json):

- resnet: ResNet-20 (configs/papers/resnet20_cifar10.yaml) at batch 512, mixed precision, XLA, on 50,000
  random 32x32x3 images (CIFAR-10's shape and size; the real files cannot be fetched there and the speed
  does not depend on the pixels): plain `model.fit` on float32 arrays in memory; the project's step
  without augmentation (the same work); with the pad-crop-flip augmentation in tf.data on the CPU, and in
  the train step on the GPU (`train.augment.on_device`).
- determinism: the same, deterministic: with XLA's deterministic ops (augmenting in the train step), and
  with TensorFlow's op determinism (no XLA); each twice with the same seed: the same weights?
- pipeline: the project's input pipeline alone at batch 512 (the train split in memory, and streamed
  from the shards; with the augmentation on the CPU and without it), in images/s, against the step's
  demand: `--demand` images/s (default: the resnet group's project step without augmentation).
- precision: plain `model.fit` of ResNet-20, float32 against mixed_float16, at batch 128 and 512.
- lenet: LeNet-5 on the MNIST shards, batch 128, XLA, float32: the project's step against plain model.fit.
- reproduce: configs/papers/lenet5_mnist.yaml as it stands (its three seeds, 20 epochs, batch 32), by
  the project's train step, then the project's evaluate step on the test split: error per seed.
- scaling (issue "Two GPUs"): ResNet-20 as in resnet, 512 images per replica, through the train step's
  own entry (workflow.train.launch.run_training): 1 GPU with the default strategy, with a one-replica
  MirroredStrategy and with `auto`; 2 GPUs with `mirrored` (devices 2) and with `auto`; 2 local
  workers of one GPU each (multi_worker_mirrored, the launcher's TF_CONFIG and CUDA_VISIBLE_DEVICES);
  and 2 workers on one GPU, which the launcher refuses. Efficiency: examples/s over (GPUs x 1 GPU's).
  A run that needs more GPUs than the machine has is listed as not run.
- scaling_accuracy: LeNet-5 as configured (3 seeds) on 1 GPU, on 2 GPUs mirrored, on 2 workers x 1 GPU.

Each run's process sees the GPUs it is meant to use (CUDA_VISIBLE_DEVICES; one for every group but
the two-GPU runs), so on a bigger machine `auto` does not turn the one-GPU figures into mirrored ones.

Figures: steady-state examples/s (epochs after the first; train.json's `steady_examples_per_second`),
the first epoch's seconds (tracing, XLA compilation, warm-up) and the weights' digest.
Targets (issue "Fast and honest on a real GPU"): project/plain >= 1.0 at steady state; the input
pipeline >= 1.5 times the step's demand at batch 512.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tarfile
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# TFL_GPU_BENCH_TRAIN / _EPOCHS shrink a smoke run on a CPU; the figures are from the defaults.
TRAIN = int(os.environ.get("TFL_GPU_BENCH_TRAIN", 50_000))
TEST, SHAPE, CLASSES, SHARDS = TRAIN // 5, (32, 32, 3), 10, 8
EPOCHS = int(os.environ.get("TFL_GPU_BENCH_EPOCHS", 5))
FAST = {"deterministic": False, "jit_compile": True}
PIPELINE_EPOCHS = 6  # timed epochs of the pipeline alone, after one warm-up epoch
NO_AUGMENT = {"pad_crop": 0, "horizontal_flip": False}
# name -> (group, model, kind, changes to the paper config's train section, runs with the same seed)
# fmt: off
RUNS: dict[str, tuple[str, str, str, dict[str, Any], int]] = {
    "plain model.fit": ("resnet", "resnet20", "plain", {**FAST, "augment": NO_AUGMENT}, 1),
    "project, no augmentation": ("resnet", "resnet20", "project", {**FAST, "augment": NO_AUGMENT}, 1),
    "project, augmentation in tf.data": ("resnet", "resnet20", "project", FAST, 1),
    "project, augmentation in the train step": ("resnet", "resnet20", "project",
                                                {**FAST, "augment": {"on_device": True}}, 1),
    "project, deterministic XLA, augmentation in the train step": (
        "determinism", "resnet20", "project",
        {"deterministic": True, "jit_compile": True, "augment": {"on_device": True}}, 2
    ),
    "project, op determinism (no XLA), augmentation in tf.data": (
        "determinism", "resnet20", "project", {"deterministic": True, "jit_compile": False}, 2
    ),
    "plain, float32, batch 128": ("precision", "resnet20", "plain",
                                  {**FAST, "augment": NO_AUGMENT, "mixed_precision": False,
                                   "batch_size": 128}, 1),
    "plain, mixed_float16, batch 128": ("precision", "resnet20", "plain",
                                        {**FAST, "augment": NO_AUGMENT, "batch_size": 128}, 1),
    "plain, float32, batch 512": ("precision", "resnet20", "plain",
                                  {**FAST, "augment": NO_AUGMENT, "mixed_precision": False}, 1),
    "plain, mixed_float16, batch 512": ("precision", "resnet20", "plain", {**FAST, "augment": NO_AUGMENT}, 1),
    "lenet5 plain model.fit": ("lenet", "lenet5", "plain", {**FAST, "batch_size": 128, "mixed_precision": False}, 3),
    "lenet5 project": ("lenet", "lenet5", "project", {**FAST, "batch_size": 128, "mixed_precision": False}, 3),
    # Where the project's step loses against plain model.fit: each of its differences alone.
    "lenet5 plain, one fit call per epoch": ("lenet", "lenet5", "plain per epoch",
                                             {**FAST, "batch_size": 128, "mixed_precision": False}, 1),
    "lenet5 plain, the project's in-memory tf.data": ("lenet", "lenet5", "plain on project data",
                                                      {**FAST, "batch_size": 128, "mixed_precision": False}, 1),
    "lenet5 project, streamed": ("lenet", "lenet5", "project", {**FAST, "batch_size": 128, "mixed_precision": False,
                                                                "in_memory": False}, 3),
    "in memory, augmentation on the CPU": ("pipeline", "resnet20", "pipeline", {"in_memory": True}, 3),
    "streamed, augmentation on the CPU": ("pipeline", "resnet20", "pipeline", {"in_memory": False}, 3),
    "in memory, no augmentation (what on_device leaves to tf.data)": (
        "pipeline", "resnet20", "pipeline", {"in_memory": True, "augment": NO_AUGMENT}, 3
    ),
    "streamed, no augmentation": ("pipeline", "resnet20", "pipeline", {"in_memory": False, "augment": NO_AUGMENT}, 3),
    # Scaling (issue "Two GPUs"): 512 images per replica; the global batch grows with the replicas.
    "1 GPU, default strategy": ("scaling", "resnet20", "project", {**FAST, "augment": NO_AUGMENT,
                                "strategy": "default"}, 2),
    "1 GPU, mirrored (one replica)": ("scaling", "resnet20", "project", {**FAST, "augment": NO_AUGMENT,
                                      "strategy": "mirrored"}, 2),
    "1 GPU, auto": ("scaling", "resnet20", "project", {**FAST, "augment": NO_AUGMENT, "strategy": "auto"}, 2),
    "2 GPUs, mirrored": ("scaling", "resnet20", "project", {**FAST, "augment": NO_AUGMENT, "strategy": "mirrored",
                         "devices": 2, "batch_size": 1024}, 2),
    "2 GPUs, auto": ("scaling", "resnet20", "project", {**FAST, "augment": NO_AUGMENT, "strategy": "auto",
                     "batch_size": 1024}, 2),
    "2 workers x 1 GPU, multi_worker_mirrored": ("scaling", "resnet20", "project", {
        **FAST, "augment": NO_AUGMENT, "strategy": "multi_worker_mirrored", "workers": 2, "batch_size": 1024}, 2),
    "2 workers on 1 GPU, multi_worker_mirrored (refused)": ("scaling", "resnet20", "project", {
        **FAST, "augment": NO_AUGMENT, "strategy": "multi_worker_mirrored", "workers": 2, "batch_size": 1024}, 1),
    # The same three set-ups on LeNet-5 as configured (3 seeds, 20 epochs): accuracy within the seeds' spread?
    "lenet5, 1 GPU": ("scaling_accuracy", "lenet5", "reproduce", {"strategy": "default"}, 1),
    "lenet5, 2 GPUs, mirrored": ("scaling_accuracy", "lenet5", "reproduce", {"strategy": "mirrored", "devices": 2}, 1),
    "lenet5, 2 workers x 1 GPU": ("scaling_accuracy", "lenet5", "reproduce",
                                  {"strategy": "multi_worker_mirrored", "workers": 2}, 1),
}
# fmt: on
# GPUs a run's process may see (CUDA_VISIBLE_DEVICES 0..n-1); every other run sees one, so that on a
# machine with more, `auto` does not turn the one-GPU groups into mirrored runs.
VISIBLE_GPUS = {
    "2 GPUs, mirrored": 2,
    "2 GPUs, auto": 2,
    "2 workers x 1 GPU, multi_worker_mirrored": 2,
    "lenet5, 2 GPUs, mirrored": 2,
    "lenet5, 2 workers x 1 GPU": 2,
}  # fmt: skip
PAPERS = {"resnet20": "resnet20_cifar10.yaml", "lenet5": "lenet5_mnist.yaml"}
SHARDS_OF = {"resnet20": "cifar_shaped", "lenet5": "mnist"}


def prepare(folder: pathlib.Path, mnist_shards: str | None) -> None:
    from workflow.config import settings as cfg

    base = {}
    for model, paper in PAPERS.items():
        config = cfg.load_config(cfg.load_yaml(REPO / "configs" / "papers" / paper))
        base[model] = cfg.train_params(config, next(iter(config["experiments"])))
    variants: dict[str, Any] = {}
    for name, (group, model, kind, changes, repeats) in RUNS.items():
        params = copy.deepcopy(base[model])
        if kind != "reproduce":  # a reproduction keeps the paper's settings but for its changes
            params["train"].update(batch_size=512, epochs=EPOCHS, mixed_precision=True, in_memory=True)
        for key, value in changes.items():
            if key == "augment":
                params["train"]["augment"].update(value)
            else:
                params["train"][key] = value
        seeds = [0, 1, 2] if kind == "reproduce" else [0]
        variants[name] = {"group": group, "model": model, "kind": kind, "params": params, "repeats": repeats,
                          "seeds": seeds, "gpus": VISIBLE_GPUS.get(name, 1)}  # fmt: skip
    variants["lenet5_mnist as configured"] = {"group": "reproduce", "model": "lenet5", "kind": "reproduce",
                                              "params": base["lenet5"], "repeats": 1, "seeds": [0, 1, 2],
                                              "gpus": 1}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "variants.json").write_text(json.dumps(variants, indent=1))
    if mnist_shards:  # packed: MNIST's shards compress about 5 times, and at most 64 MiB travel per call
        with tarfile.open(folder / "mnist.tar.gz", "w:gz") as packed:
            packed.add(mnist_shards, arcname="mnist")
    print(f"wrote {folder / 'variants.json'}: {len(variants)} runs")


def write_shards(folder: pathlib.Path) -> None:
    """Random CIFAR-shaped shards and the spec.json the train step reads, written by the tfrecord step's own
    record writer (workflow/data/records.py: TensorFlow alone, as the GPU machine has no tfds)."""
    import numpy as np

    from workflow.data.records import serialize, write_split

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


def worker(variant: dict[str, Any], shards: str, out: str, seed: int) -> dict[str, Any]:
    """One run in this process."""
    kind, params = variant["kind"], variant["params"]
    if kind == "pipeline":
        return pipeline_alone(params, shards)
    if kind in ("project", "reproduce"):
        from workflow.train.launch import run_training

        folder = pathlib.Path(out)
        # The train step's own entry: one process, or (train.workers > 1) the local launcher's workers.
        run_training(launcher="", shards_dir=shards, model_path=str(folder / "model.keras"),
                     history_path=str(folder / "history.json"), info_path=str(folder / "train.json"),
                     tensorboard_dir=str(folder / "tensorboard"), checkpoint_root=str(folder / "checkpoints"),
                     params=params, seed=seed)  # fmt: skip
        info = json.loads((folder / "train.json").read_text())
        result = {"steady": info["steady_examples_per_second"], "first_epoch_s": info["first_epoch_seconds"],
                  "train_s": info["wall_seconds"], "determinism": info["determinism"],
                  "jit_compile": info["jit_compile"], "weights": weights_digest(folder / "model.keras"),
                  "strategy": info["strategy"], "replicas": info["replicas"]}  # fmt: skip
        if kind == "reproduce":
            from workflow.evaluate.metrics import evaluate

            metrics = evaluate(model_path=str(folder / "model.keras"), shards_dir=shards,
                               metrics_path=str(folder / "metrics.json"), batch_size=1000, target=None)  # fmt: skip
            result["error"] = metrics["error"]
        return result
    return plain_fit(params, shards, per_epoch=kind == "plain per epoch", project_data=kind == "plain on project data")


def plain_fit(
    params: dict[str, Any], shards: str, per_epoch: bool = False, project_data: bool = False
) -> dict[str, Any]:
    """Plain `model.fit` on float32 arrays in memory: the same model, batch, XLA, precision and batches per
    call as the project's step (set up and compiled by its own functions), nothing else of the project.

    For finding where the project's step differs: `per_epoch` calls fit once per epoch, as the project
    does; `project_data` fits on the project's in-memory tf.data pipeline (workflow.train.trainer.load_data)."""
    import keras

    from workflow.data.pipeline import load_arrays
    from workflow.data.shards import read_spec
    from workflow.models.images import build_model
    from workflow.train.trainer import TrainConfig, compile_model, load_data, set_up

    settings = TrainConfig.of(params)
    set_up(settings, 0)
    arrays = load_arrays(shards, "train")
    images, labels = (arrays["images"].astype("float32") / 255.0), arrays["labels"]
    model = build_model(params["model"], images.shape[1:], int(labels.max()) + 1)
    compile_model(model, settings, -(-len(labels) // settings.batch_size))
    seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds.append(time.perf_counter() - self.started)

    if project_data:
        train_data, _, _ = load_data(shards, settings, 0, read_spec(shards))
        for epoch in range(settings.epochs):
            model.fit(train_data(epoch), initial_epoch=epoch, epochs=epoch + 1, verbose=0, callbacks=[Timer()])
    elif per_epoch:
        for epoch in range(settings.epochs):
            model.fit(images, labels, batch_size=settings.batch_size, initial_epoch=epoch, epochs=epoch + 1,
                      shuffle=True, verbose=0, callbacks=[Timer()])  # fmt: skip
    else:
        model.fit(images, labels, batch_size=settings.batch_size, epochs=settings.epochs, shuffle=True, verbose=0,
                  callbacks=[Timer()])  # fmt: skip
    steady = len(labels) * (len(seconds) - 1) / sum(seconds[1:])
    return {"steady": steady, "first_epoch_s": seconds[0], "weights": None}


def pipeline_alone(params: dict[str, Any], shards: str) -> dict[str, Any]:
    """Images/s of the train step's own input pipeline (workflow.train.trainer.load_data), iterated with nothing
    training: PIPELINE_EPOCHS epochs' batches after a warm-up epoch, on all of the machine's cores (an epoch
    of 50,000 images takes a fifth of a second: two were too few to tell one call's rows apart)."""
    from workflow.data.shards import read_spec
    from workflow.train.trainer import TrainConfig, load_data

    settings = TrainConfig.of(params)
    train_data, _, _ = load_data(shards, settings, 0, read_spec(shards))
    timings = []
    for epoch in range(1 + PIPELINE_EPOCHS):
        started, images = time.perf_counter(), 0
        for batch in train_data(epoch):
            images += int(batch[0].shape[0])
        timings.append((images, time.perf_counter() - started))
    steady = sum(count for count, _ in timings[1:]) / sum(seconds for _, seconds in timings[1:])
    return {"steady": steady, "first_epoch_s": timings[0][1], "weights": None, "cores": os.cpu_count()}


def weights_digest(path: pathlib.Path) -> str:
    import keras

    model = keras.saving.load_model(path, compile=False)
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def run(folder: pathlib.Path, groups: list[str], demand: float | None) -> None:
    variants = json.loads((folder / "variants.json").read_text())
    write_shards(folder / "cifar_shaped")
    if (folder / "mnist.tar.gz").is_file() and not (folder / "mnist").is_dir():
        with tarfile.open(folder / "mnist.tar.gz") as packed:
            packed.extractall(folder, filter="data")
    for group in groups:
        names = [name for name, variant in variants.items() if variant["group"] == group]
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        # Round-robin over the runs: a slower spell of a shared machine hits every run alike.
        for attempt in range(max(variants[name]["repeats"] for name in names)):
            for name in names:
                variant = variants[name]
                shards = folder / SHARDS_OF[variant["model"]]
                for seed in variant["seeds"] if attempt < variant["repeats"] else []:
                    results[name].append(one_run(folder, name, variant, shards, seed, attempt))
        (folder / f"results-{group}.json").write_text(json.dumps(results, indent=1))
        TABLES[group](results, step_demand(folder) if demand is None else demand)


def step_demand(folder: pathlib.Path) -> float | None:
    """The images/s the train step takes when its data is ready: the resnet group's run without augmentation."""
    path = folder / "results-resnet.json"
    resnet = json.loads(path.read_text()) if path.is_file() else {}
    return median_steady(resnet.get("project, no augmentation", []))


def one_run(folder: pathlib.Path, name: str, variant: dict[str, Any], shards: pathlib.Path, seed: int,
            attempt: int) -> dict[str, Any]:  # fmt: skip
    slug = "".join(c if c.isalnum() else "_" for c in name)
    out = folder / "runs" / f"{slug}-seed{seed}-{attempt}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "variant.json").write_text(json.dumps(variant))
    wanted, here = variant.get("gpus", 1), machine_gpus()
    if wanted > max(len(here), 1):  # one-GPU runs also run on a CPU (a smoke test)
        print(f"{name}: needs {wanted} GPUs, this machine has {len(here)}: not run", flush=True)
        return {"failed": True, "skipped": f"needs {wanted} GPUs, {len(here)} here"}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if here:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(here[:wanted])
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, __file__, "worker", str(out / "variant.json"), str(shards), str(out), str(seed)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    (out / "log.txt").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        print(f"{name} (seed {seed}, run {attempt + 1}) failed:\n{completed.stderr[-3000:]}", flush=True)
        errors = [line for line in completed.stderr.splitlines() if "Error: " in line]
        return {"failed": True, "error": errors[-1].strip() if errors else completed.stderr[-300:]}
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["xla_off_warning"] = "support `jit_compile=True`" in completed.stderr + completed.stdout
    print(f"{name} (seed {seed}, run {attempt + 1}): {result}", flush=True)
    return result


def machine_gpus() -> list[str]:
    """The GPUs of this machine, as the local launcher finds them (CUDA_VISIBLE_DEVICES, or nvidia-smi)."""
    from workflow.train.launch import visible_gpus

    return visible_gpus(os.environ)


def ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [result for result in runs if not result.get("failed")]


def median_steady(runs: list[dict[str, Any]]) -> float | None:
    """The median steady rate of a run's repeats (the machine is shared: one run can be 10% off)."""
    rates = [result["steady"] for result in ok(runs)]
    return statistics.median(rates) if rates else None


def spread(runs: list[dict[str, Any]]) -> str:
    rates = [result["steady"] for result in ok(runs)]
    return f"{min(rates):,.0f}-{max(rates):,.0f} ({len(rates)})" if len(rates) > 1 else "(1)"


def speed_table(results: dict[str, list[dict[str, Any]]], plain_name: str, title: str) -> None:
    plain = median_steady(results.get(plain_name, []))
    print(f"\n## {title}\n")
    print("| run | steady examples/s (median) | range (runs) | first epoch s | / plain | XLA turned off "
          "| same weights twice |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        steady, runs = median_steady(runs), ok(runs)
        if steady is None:
            print(f"| {name} | failed | | | | | |")
            continue
        first = runs[0]
        ratio = f"{steady / plain:.2f}" if plain else "-"
        same = "-" if len(runs) < 2 or first["weights"] is None else (
            "yes" if len({run["weights"] for run in runs}) == 1 else "no")  # fmt: skip
        print(f"| {name} | {steady:,.0f} | {spread(runs)} | {first['first_epoch_s']:.1f} | {ratio} | "
              f"{'yes' if first['xla_off_warning'] else 'no'} | {same} |")  # fmt: skip


def resnet_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    speed_table(results, "plain model.fit", f"ResNet-20, {TRAIN:,} random 32x32x3 images, batch 512, mixed "
                f"precision, {EPOCHS} epochs")  # fmt: skip


def determinism_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    speed_table(results, "", "ResNet-20 as above, deterministic, each run twice with seed 0")


def precision_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    speed_table(results, "plain, float32, batch 512", "Plain model.fit of ResNet-20, XLA: float32 against "
                "mixed_float16 (/ plain: against float32 at batch 512)")  # fmt: skip


def lenet_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    speed_table(results, "lenet5 plain model.fit", f"LeNet-5, MNIST's 60,000 train images, batch 128, XLA, "
                f"float32, {EPOCHS} epochs")  # fmt: skip


def pipeline_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    print(f"\n## The input pipeline alone, batch 512, {os.cpu_count()} cores; the step's demand: "
          f"{demand or 0:,.0f} images/s\n")  # fmt: skip
    print("| pipeline | images/s (median) | range (runs) | / demand |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        steady = median_steady(runs)
        if steady is not None:
            ratio = f"{steady / demand:.2f}" if demand else "-"
            print(f"| {name} | {steady:,.0f} | {spread(runs)} | {ratio} |")


def reproduce_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    print("\n## LeNet-5 reproduction (configs/papers/lenet5_mnist.yaml as configured) on this GPU\n")
    print("| seed | test error | train s | steady examples/s | determinism |")
    print("|---|---|---|---|---|")
    runs = ok(next(iter(results.values()), []))
    for seed, result in enumerate(runs):
        print(f"| {seed} | {result['error']:.2%} | {result['train_s']:.0f} | {result['steady']:,.0f} | "
              f"{result['determinism']} |")  # fmt: skip
    if runs:
        errors = [result["error"] for result in runs]
        print(f"| mean | {sum(errors) / len(errors):.3%} | {sum(r['train_s'] for r in runs):.0f} (all) | | |")


def scaling_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    one = median_steady(results.get("1 GPU, default strategy", []))
    print(f"\n## Scaling: ResNet-20, {TRAIN:,} random 32x32x3 images, 512 per replica, mixed precision, XLA, "
          f"{EPOCHS} epochs; this machine: {len(machine_gpus())} GPU(s)\n")  # fmt: skip
    print("| run | strategy (train.json) | replicas | steady examples/s (median) | range | / (GPUs x 1 GPU) |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        steady, done = median_steady(runs), ok(runs)
        if steady is None:
            why = next((run.get("skipped") or run.get("error") for run in runs if run.get("failed")), "failed")
            print(f"| {name} | {why} | | | | |")
            continue
        gpus = max(len(machine_gpus()[: VISIBLE_GPUS.get(name, 1)]), 1)
        efficiency = f"{steady / (gpus * one):.2f}" if one else "-"
        print(f"| {name} | {done[0]['strategy']} | {done[0]['replicas']} | {steady:,.0f} | {spread(done)} | "
              f"{efficiency} |")  # fmt: skip


def scaling_accuracy_table(results: dict[str, list[dict[str, Any]]], demand: float | None) -> None:
    print("\n## LeNet-5 as configured (3 seeds, 20 epochs, batch 32 global), by strategy: test error\n")
    print("| run | strategy | replicas | errors per seed | mean | spread (max - min) |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        done = ok(runs)
        if not done:
            why = next((run.get("skipped") or run.get("error") for run in runs if run.get("failed")), "failed")
            print(f"| {name} | {why} | | | | |")
            continue
        errors = [run["error"] for run in done]
        print(f"| {name} | {done[0]['strategy']} | {done[0]['replicas']} | "
              f"{', '.join(f'{error:.2%}' for error in errors)} | {sum(errors) / len(errors):.3%} | "
              f"{max(errors) - min(errors):.2%} |")  # fmt: skip


TABLES = {
    "resnet": resnet_table,
    "determinism": determinism_table,
    "pipeline": pipeline_table,
    "precision": precision_table,
    "lenet": lenet_table,
    "reproduce": reproduce_table,
    "scaling": scaling_table,
    "scaling_accuracy": scaling_accuracy_table,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["prepare", "run", "worker"])
    parser.add_argument("args", nargs="+")
    parser.add_argument("--demand", type=float, help="the step's images/s for the pipeline table")
    arguments = parser.parse_args()
    if arguments.action == "prepare":
        prepare(pathlib.Path(arguments.args[0]), arguments.args[1] if len(arguments.args) > 1 else None)
    elif arguments.action == "run":
        unknown = set(arguments.args[1:]) - set(TABLES)
        if unknown or not arguments.args[1:]:
            parser.error(f"groups: one or more of {', '.join(TABLES)} (got {', '.join(arguments.args[1:]) or 'none'})")
        run(pathlib.Path(arguments.args[0]), arguments.args[1:], arguments.demand)
    else:
        variant_path, shards, out, seed = arguments.args
        print(json.dumps(worker(json.loads(pathlib.Path(variant_path).read_text()), shards, out, int(seed))))


if __name__ == "__main__":
    main()
