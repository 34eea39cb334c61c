"""Train one experiment and seed: set-up, data, model, fit, save.

Reads top to bottom like a Keras example. Writes model.keras, history.json (per epoch),
train.json (resolved config, versions, host, strategy, wall time, examples/s) and TensorBoard logs.
Checkpoints for resume (workflow/train/checkpoint.py) go to a folder keyed by a hash of the training
config and the data, outside the declared outputs, so Snakemake's clean-up of a failed job keeps
them and a changed config never resumes from a stale one. A resumed run ends with the same
weights, bit for bit, as an uninterrupted one (deterministic mode, CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from workflow.data.pipeline import augment_in_train_step, load_arrays, make_dataset, make_in_memory_dataset, split_bytes
from workflow.data.shards import Spec, read_spec, sha256_path, shard_paths
from workflow.infra import runtime
from workflow.infra.atomic import atomic_path, read_json, write_json
from workflow.models.catalog import FOREST_MODELS, TABLE_MODELS, builder, family
from workflow.models.images import build_model
from workflow.models.task import CLASSIFICATION, Task, task_of
from workflow.train import distribute, finetune
from workflow.train.checkpoint import (
    Checkpoint,
    CheckpointCallback,
    PreemptionGuard,
    Progress,
    TrainingInterruptedError,
    config_hash,
)

log = logging.getLogger(__name__)

IN_MEMORY_LIMIT_BYTES = 2 << 30  # in_memory: auto holds a train split up to this size of decoded images


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """An experiment's `train` section (what the weights depend on) and `runtime` section (how it runs:
    checkpoints, batches per call, the TPU), as one record for the trainer (configs/schema.yaml)."""

    epochs: int
    batch_size: int  # Global: split across replicas by tf.distribute.
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    shuffle_buffer: int
    in_memory: bool | str  # auto, true, false: see IN_MEMORY_LIMIT_BYTES and configs/schema.yaml
    augment: dict[str, Any]  # pad_crop, horizontal_flip, code: train batches only; on_device: in the train step
    strategy: str
    workers: int  # Processes of a multi-worker cluster; started by workflow/train/launch.py.
    devices: int
    deterministic: bool
    mixed_precision: bool
    jit_compile: bool
    run_eagerly: bool
    # runtime: changing these reruns nothing (they are not the train step's params)
    steps_per_execution: int  # batches per call of the compiled train step
    checkpoint: dict[str, int]  # every_epochs, every_steps (0: never within an epoch)
    tpu: dict[str, Any]

    @classmethod
    def of(cls, params: dict[str, Any], runtime_settings: dict[str, Any] | None = None) -> TrainConfig:
        """From the train step's params and the experiment's runtime section (None: the schema's defaults)."""
        runtime = copy.deepcopy(RUNTIME_DEFAULTS) if runtime_settings is None else runtime_settings
        return cls(**params["train"], **runtime)


# configs/schema.yaml's defaults of `runtime` (tests/test_train.py holds them equal), for calls without
# a loaded config (tests, benchmarks). Written here, not read through workflow/config/settings.py: the train
# step's code digest would then take in the whole config loader, and an edit there would rerun training.
RUNTIME_DEFAULTS: dict[str, Any] = {
    "steps_per_execution": 16,
    "checkpoint": {"every_epochs": 1, "every_steps": 0},
    "tpu": {"name": None, "zone": None, "project": None},
}


def train(
    *,
    shards_dir: str,
    model_path: str,
    history_path: str,
    info_path: str,
    tensorboard_dir: str,
    checkpoint_root: str,
    params: dict[str, Any],
    seed: int,
    init_model_path: str | None = None,
    runtime_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the model described by `params` (model and train sections) and write the outputs.

    `runtime_settings` (the experiment's `runtime`: checkpoints, batches per call, TPU; None: the
    defaults) changes how it runs, not the result.

    With `init_model_path` (model.init_from) training starts from that model's matching layers,
    frozen as the schedule says (workflow/train/finetune.py).

    In a multi-worker cluster every worker runs this; only the chief (worker 0) writes the declared
    outputs, the others write to a scratch folder that is removed, and report themselves to the chief.
    """
    config = TrainConfig.of(params, runtime_settings)
    spec = read_spec(shards_dir)
    check_model_fits_data(params["model"], spec, shards_dir)
    if family(params["model"]) == "forest":
        return train_forest(params, seed, spec, shards_dir, model_path, history_path, info_path, tensorboard_dir)
    set_up(config, seed)
    run = start_run(config, params, seed, spec, shards_dir, checkpoint_root, init_model_path)
    started = time.monotonic()
    fit_epochs(run)
    return finish_run(run, time.monotonic() - started, model_path, history_path, info_path, tensorboard_dir)


@dataclasses.dataclass
class Run:
    """What the sections of one training run share: `start_run` sets it up, `fit_epochs` trains,
    `finish_run` writes the outputs."""

    config: TrainConfig
    params: dict[str, Any]
    seed: int
    spec: Spec
    strategy: tf.distribute.Strategy
    identity: distribute.TaskIdentity  # task_id, workers
    scratch: pathlib.Path | None  # where a worker other than the chief writes the outputs nobody reads
    train_data: Callable[[int], tf.data.Dataset]
    validation_data: tf.data.Dataset | None
    steps: dict[str, Any]
    checkpoint: Checkpoint
    model: Any = None  # keras.Model, built by build_and_compile
    transfer: dict[str, Any] | None = None  # what model.init_from copied (workflow/train/finetune.py)
    progress: Progress = dataclasses.field(default_factory=Progress)
    resumed_from: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def chief(self) -> bool:
        return self.identity["task_id"] == 0

    @property
    def init_from(self) -> dict[str, Any] | None:
        return self.params["model"].get("init_from")

    @property
    def copied(self) -> list[str]:
        return self.transfer["copied"] if self.transfer else []

    @property
    def examples_per_epoch(self) -> int:
        if self.steps["fixed"]:
            return int(self.steps["train"] * self.config.batch_size)
        return self.spec.examples("train")

    @property
    def tensorboard_work(self) -> pathlib.Path:
        """Where TensorBoard logs go while training (the checkpoint folder keeps them across a resume)."""
        return self.checkpoint.folder / "tensorboard" if self.scratch is None else self.scratch / "tensorboard"


def start_run(
    config: TrainConfig,
    params: dict[str, Any],
    seed: int,
    spec: Spec,
    shards_dir: str,
    checkpoint_root: str,
    init_model_path: str | None,
) -> Run:
    """The strategy, the data, the checkpoint folder of this run's identity, and the model (build_and_compile)."""
    strategy = distribute.build_strategy(config.strategy, config.devices, tpu=config.tpu)
    identity = distribute.task_identity(strategy)
    chief = identity["task_id"] == 0
    scratch = None if chief else pathlib.Path(tempfile.mkdtemp(prefix=f"worker{identity['task_id']}-"))
    train_data, validation_data, steps = load_data(shards_dir, config, seed, spec, identity["workers"])
    identity_of_run = {"params": params, "seed": seed, "data": spec.to_json()}
    if init_model_path:  # a changed source model must not resume from a checkpoint of the old one
        identity_of_run["init_sha256"] = sha256_path(init_model_path)
    # Every worker resumes from the chief's checkpoint: the variables are the same on all of them.
    checkpoint = Checkpoint(pathlib.Path(checkpoint_root) / config_hash(identity_of_run), owner=chief)
    run = Run(config, params, seed, spec, strategy, identity, scratch, train_data, validation_data, steps, checkpoint)
    with strategy.scope():
        build_and_compile(run, shards_dir, init_model_path)
    return run


def build_and_compile(run: Run, shards_dir: str, init_model_path: str | None) -> None:
    """Build the model (from init_from's weights if set), freeze and compile it, and restore the checkpoint."""
    model = build_any_model(run.params["model"], run.spec, shards_dir)
    run.transfer = finetune.transfer_weights(model, init_model_path) if init_model_path else None
    # Freeze as when the checkpoint was saved: mid-epoch e as in epoch e, at its end as in e - 1.
    saved_epoch, saved_batch = run.checkpoint.position()
    finetune.set_frozen(model, finetune.frozen_layers(run.init_from, run.copied, saved_epoch - (saved_batch == 0)))
    if run.transfer:
        finetune.require_something_trains(model, run.copied)
    compile_model(model, run.config, run.steps["train"], task_of(run.spec))
    augment_in_train_step(model, run.config.augment)
    run.model, run.progress = model, run.checkpoint.restore(model)
    run.progress.attempts += 1
    run.resumed_from = {"epoch": run.progress.epoch, "batch": run.progress.batch}
    if run.identity["workers"] > 1:
        distribute.work_around_keras_multi_worker(model)


def fit_epochs(run: Run) -> None:
    """Fit epoch by epoch from where the checkpoint left off, saving checkpoints as runtime.checkpoint says.

    One model.fit call per epoch, so that a resume can start mid-epoch (skipping the batches done)
    and fine-tuning can refreeze between epochs. A SIGTERM saves a checkpoint and raises
    TrainingInterruptedError, which the train job reports as resumable.
    """
    config, model, progress = run.config, run.model, run.progress
    epoch_log = EpochLogger(config.epochs, run.examples_per_epoch)

    def save(epoch: int, batch: int) -> None:
        if run.chief:
            run.checkpoint.save(model, dataclasses.replace(progress, epoch=epoch, batch=batch))

    # A failure before the first save removes the checkpoint folder the TensorBoard writers create.
    with run.checkpoint.removed_unless_saved(), PreemptionGuard(enabled=run.chief) as guard, run.strategy.scope():
        summaries = EpochSummaries(run.tensorboard_work)
        for epoch in range(progress.epoch, config.epochs):
            refreeze(run, epoch)
            done_before, progress.batch = progress.batch, 0
            saver = CheckpointCallback(save, guard, config.checkpoint["every_steps"], first_batch=done_before)
            history = fit_epoch(run, epoch, done_before, [saver, summaries, epoch_log])
            if saver.interrupted_at:
                raise TrainingInterruptedError(
                    f"stopped by SIGTERM at epoch {epoch + 1}, batch {saver.interrupted_at[1]}; checkpoint in "
                    f"{run.checkpoint.folder}; the rerun resumes from it"
                )
            for key, values in history.items():
                progress.history.setdefault(key, []).extend(float(value) for value in values)
            check_finite_loss(progress.history, epoch, config)
            progress.seconds.append(round(epoch_log.seconds[-1], 3))
            progress.epoch = epoch + 1
            if guard.requested.is_set() or progress.epoch % config.checkpoint["every_epochs"] == 0:
                save(progress.epoch, 0)
            if guard.requested.is_set():
                raise TrainingInterruptedError(
                    f"stopped by SIGTERM after epoch {progress.epoch}; checkpoint in {run.checkpoint.folder}; "
                    "the rerun resumes from it"
                )


def refreeze(run: Run, epoch: int) -> None:
    """Fine-tuning: freeze and unfreeze as the schedule says for `epoch`; recompile when that changed."""
    if finetune.set_frozen(run.model, finetune.frozen_layers(run.init_from, run.copied, epoch)):
        recompile(run.model, run.config, run.steps["train"], epoch, task_of(run.spec))
        if run.identity["workers"] > 1:
            distribute.work_around_keras_multi_worker(run.model)


def fit_epoch(run: Run, epoch: int, done_before: int, callbacks: list[Any]) -> dict[str, list[float]]:
    """One model.fit call for `epoch`, skipping its first `done_before` batches (done before a resume)."""
    data = run.train_data(epoch).skip(done_before) if done_before else run.train_data(epoch)
    fixed = run.steps["fixed"]
    history = run.model.fit(
        data,
        validation_data=run.validation_data,
        initial_epoch=epoch,
        epochs=epoch + 1,
        steps_per_epoch=run.steps["train"] - done_before if fixed else None,
        validation_steps=run.steps["validation"] if fixed and run.validation_data is not None else None,
        verbose=0,
        shuffle=False,  # the datasets are shuffled per (seed, epoch); Keras warns when asked to
        callbacks=callbacks,
    )
    return dict(history.history)


def finish_run(
    run: Run, wall_seconds: float, model_path: str, history_path: str, info_path: str, tensorboard_dir: str
) -> dict[str, Any]:
    """The chief writes model.keras, history.json, train.json and the TensorBoard logs, and removes the
    checkpoint; another worker writes to its scratch folder, reports itself to the chief, and cleans up."""
    me = {**run.identity, "host": runtime.host()["hostname"], "pid": os.getpid()}
    progress = run.progress
    if run.scratch is not None:  # not the chief
        save_outputs(run.model, progress.history, progress.seconds, {}, *(str(run.scratch / n) for n in OUTPUT_NAMES))
        write_json(worker_report(model_path, run.identity["task_id"]), me)
        shutil.rmtree(run.scratch, ignore_errors=True)
        return me
    info = train_info(run, wall_seconds, [me] + collect_worker_reports(model_path, run.identity["workers"]))
    with atomic_path(tensorboard_dir) as tensorboard_tmp:
        shutil.copytree(run.tensorboard_work, tensorboard_tmp)
    save_outputs(run.model, progress.history, progress.seconds, info, model_path, history_path, info_path)
    run.checkpoint.remove()
    return info


def train_info(run: Run, wall_seconds: float, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """train.json: what ran (config, data, code, versions, host, strategy) and how fast."""
    model = run.model
    return {
        "params": run.params,
        "seed": run.seed,
        "data": dict(run.spec.source),
        "versions": runtime.versions(),
        "code": runtime.git_commit(),
        "host": runtime.host(),
        "strategy": type(run.strategy).__name__,
        "determinism": determinism(run.config),
        "jit_compile": bool(model.jit_compile),  # what Keras compiled with, not only what was asked
        "replicas": run.strategy.num_replicas_in_sync,
        "steps_per_execution": model.steps_per_execution,
        "workers": workers,
        "parameters": model.count_params(),
        "init_from": run.transfer,
        "model_code": run.params["model"].get("code"),  # load_trained_model imports it for the custom layers
        "steps_per_epoch": run.steps["train"],
        "wall_seconds": round(wall_seconds, 3),
        **throughput(run.examples_per_epoch, run.progress.seconds),
        "checkpoint_dir": str(run.checkpoint.folder),
        "attempts": run.progress.attempts,
        "resumed_from": run.resumed_from if run.progress.attempts > 1 else None,
    }


OUTPUT_NAMES = ("model.keras", "history.json", "train.json")


def train_forest(
    params: dict[str, Any], seed: int, spec: Spec, shards_dir: str,
    model_path: str, history_path: str, info_path: str, tensorboard_dir: str,
) -> dict[str, Any]:  # fmt: skip
    """A decision forest: its catalog builder fits it with YDF in one process and returns the Keras model
    (workflow/models/forests.py); it is saved as every model is."""
    fitted = builder(params["model"]["name"])(params["model"], params["train"], shards_dir, spec, seed)
    info = {
        "params": params,
        "seed": seed,
        "data": dict(spec.source),
        "versions": {**runtime.versions(), **fitted.versions},
        "code": runtime.git_commit(),
        "host": runtime.host(),
        "strategy": "ydf (one process)",
        "replicas": 1,
        **fitted.info,
        "wall_seconds": round(fitted.seconds, 3),
        "attempts": 1,
        "resumed_from": None,
    }
    with atomic_path(tensorboard_dir) as folder:
        folder.mkdir()  # YDF writes no TensorBoard logs; the folder is a declared output
    save_outputs(fitted.model, fitted.history, [fitted.seconds], info, model_path, history_path, info_path)
    return info


def check_model_fits_data(model: dict[str, Any], spec: Spec, shards_dir: str) -> None:
    """An image model needs images and a table model a table; say which, naming the model and the data."""
    name, table_model = model["name"], family(model) != "image"
    if table_model != spec.is_table:
        has = f"a table ({len(spec.columns)} columns)" if spec.is_table else "images"
        wants = f"a table ({', '.join(TABLE_MODELS + FOREST_MODELS)} are the table models)" if table_model else "images"
        raise ValueError(f"model.name {name}: takes {wants}, but {shards_dir} holds {has}")


def build_any_model(options: dict[str, Any], spec: Spec, shards_dir: str) -> keras.Model:
    """The configured Keras model for the data: an image model, or a table model adapted on the train split."""
    classes = task_of(spec).classes(spec)
    if not spec.is_table:
        return build_model(options, list(spec.image_shape), classes)
    train_features = make_dataset(shards_dir, "train", 1024).map(lambda features, labels: features)
    return builder(options["name"])(options, spec.columns, classes, train_features)


def worker_report(model_path: str, task_id: int) -> pathlib.Path:
    """Where worker `task_id` reports itself: a hidden file next to the chief's outputs."""
    return pathlib.Path(model_path).parent / f".worker{task_id}.json"


def collect_worker_reports(model_path: str, workers: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    """The reports of workers 1..N-1 (they finish fit together with the chief), removed once read."""
    reports, deadline = [], time.monotonic() + timeout
    for task_id in range(1, workers):
        path = worker_report(model_path, task_id)
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not path.exists():
            raise RuntimeError(f"worker {task_id} did not report in {timeout:.0f} s ({path})")
        reports.append(read_json(path))
        path.unlink()
    return reports


def throughput(examples_per_epoch: int, seconds: list[float]) -> dict[str, float | None]:
    """Examples per second over all epochs, and at steady state apart from the first epoch's set-up.

    The first epoch also pays for tracing the train step, XLA compilation and input warm-up (on a
    GPU with jit_compile, most of a short run), so a speed to compare runs or frameworks by is the
    steady one; None with a single epoch.
    """
    steady = seconds[1:]
    return {
        "examples_per_second": round(examples_per_epoch * len(seconds) / max(sum(seconds), 1e-9), 1),
        "first_epoch_seconds": round(seconds[0], 3) if seconds else None,
        "steady_examples_per_second": round(examples_per_epoch * len(steady) / max(sum(steady), 1e-9), 1)
        if steady
        else None,
    }


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite: the weights are garbage, so no model is written."""


def check_finite_loss(history: dict[str, list[float]], epoch: int, config: TrainConfig) -> None:
    """Stop at the first epoch whose loss is not a finite number, instead of training on to a NaN model."""
    loss = (history.get("loss") or [0.0])[-1]
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"training diverged: the loss is {loss} after epoch {epoch + 1}; no model is written. A smaller "
            f"train.optimizer.learning_rate (now {config.optimizer['learning_rate']}) usually fixes it"
        )


# XLA's own deterministic mode for GPUs (scatter and reductions in a fixed order); CPU XLA is deterministic.
XLA_DETERMINISTIC_OPS = "--xla_gpu_deterministic_ops=true"


def determinism(config: TrainConfig) -> str | None:
    """How a deterministic run is made repeatable: TensorFlow's op determinism, or, with XLA, XLA's own.

    Keras 3 turns XLA off when op determinism is on ("Model doesn't support jit_compile=True"). On an
    H200 (benchmarks/gpu_training.py, ResNet-20, batch 512) op determinism ran 18,600 images/s with XLA
    off; XLA with --xla_gpu_deterministic_ops 70,000, the same weights bit for bit in both twice.
    """
    if not config.deterministic:
        return None
    return "xla_deterministic_ops" if config.jit_compile else "op_determinism"


def set_up(config: TrainConfig, seed: int) -> None:
    """Seeds, determinism (`determinism`) and precision policy, before any model exists (XLA reads its
    flags when it first compiles)."""
    keras.utils.set_random_seed(seed)
    if determinism(config) == "op_determinism":
        tf.config.experimental.enable_op_determinism()
    elif determinism(config) == "xla_deterministic_ops":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {XLA_DETERMINISTIC_OPS}".strip()
    if config.mixed_precision:
        gpus = tf.config.list_physical_devices("GPU")
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") for gpu in gpus]
        keras.mixed_precision.set_global_policy(precision_policy(capabilities))


def precision_policy(compute_capabilities: list[tuple[int, int] | None]) -> str:
    """The mixed-precision policy for the GPUs' compute capabilities (none: a CPU).

    mixed_bfloat16 on CPUs and on GPUs of compute capability 8.0 or more (Ampere, Hopper and later):
    there it is as fast as float16 (H200, ResNet-20 at batch 512 with XLA: 73,107 against 69,529
    images/s) and needs no loss scaling, which Keras 3.15 cannot run under a tf.distribute strategy
    with XLA (keras-team/keras#21366, docs/performance.md). mixed_float16 on older GPUs, whose
    bfloat16 is emulated."""
    if not compute_capabilities:
        return "mixed_bfloat16"
    return "mixed_bfloat16" if all((cc or (0, 0)) >= (8, 0) for cc in compute_capabilities) else "mixed_float16"


def use_xla(asked: bool, policy: str, distributed: bool) -> bool:
    """XLA as asked, except float16 loss scaling under a strategy (a GPU older than Ampere with several
    replicas): Keras 3.15's LossScaleOptimizer fails there with XLA ("merge_call called while defining a
    new graph", keras-team/keras#21366), so that case compiles without it (train.json: jit_compile)."""
    return asked and not (distributed and policy == "mixed_float16")


def load_data(
    shards_dir: str, config: TrainConfig, seed: int, spec: Spec, workers: int = 1
) -> tuple[Callable[[int], tf.data.Dataset], tf.data.Dataset | None, dict[str, Any]]:
    """Per epoch, the shuffled train split; the validation split; both batched to the global batch size; step counts.

    The train data of epoch k depends only on (seed, k), so a run resumed at epoch k sees what an
    uninterrupted run sees. Several workers must run the same number of steps, or the collectives of
    the last step hang: with more than one worker both splits repeat and each epoch is a fixed number
    of whole batches.
    """
    files = len(spec.splits["train"].shards)
    arrays = load_arrays(shards_dir, "train") if holds_in_memory(config, spec, workers) else None
    if arrays is None:  # streamed: verify the shards once here, not in every epoch's dataset
        shard_paths(shards_dir, spec, "train")

    def train_data(epoch: int) -> tf.data.Dataset:
        if arrays is not None:
            return make_in_memory_dataset(arrays, config.batch_size, seed=seed, epoch=epoch, augment=config.augment)
        dataset = make_dataset(
            shards_dir,
            "train",
            config.batch_size,
            shuffle=True,
            seed=seed,
            shuffle_buffer=config.shuffle_buffer,
            augment=config.augment,
            epoch=epoch,
            verify=False,  # re-reading a whole split to hash it each epoch cost 40% of a GPU's input rate
        )
        return dataset.repeat().with_options(shard_options(files, workers)) if workers > 1 else dataset

    has_validation = "validation" in spec.splits  # none with validation_percent: 0
    validation_data = make_dataset(shards_dir, "validation", config.batch_size) if has_validation else None
    train_examples = spec.examples("train")
    steps = {"train": math.ceil(train_examples / config.batch_size), "validation": None, "fixed": workers > 1}
    if workers > 1:
        steps["train"] = max(1, train_examples // config.batch_size)
    if workers > 1 and validation_data is not None:
        steps["validation"] = max(1, spec.examples("validation") // config.batch_size)
        validation_files = len(spec.splits["validation"].shards)
        validation_data = validation_data.repeat().with_options(shard_options(validation_files, workers))
    return train_data, validation_data, steps


def holds_in_memory(config: TrainConfig, spec: Spec, workers: int) -> bool:
    """Whether the train split is held in memory (train.in_memory; auto: one worker, split <= the limit)."""
    if config.in_memory == "auto":
        return workers == 1 and split_bytes(spec, "train") <= IN_MEMORY_LIMIT_BYTES
    return bool(config.in_memory)


def shard_options(files: int, workers: int) -> tf.data.Options:
    """Shard by file when every worker gets one; otherwise each worker takes every N-th example."""
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.FILE if files >= workers else policy.DATA
    return options


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Optimizer and learning-rate schedule from config; schedule boundaries are in epochs."""
    settings = config.optimizer
    rate = learning_rate_schedule(settings["learning_rate"], config.schedule, steps_per_epoch, config.epochs)
    name = settings["name"]
    # Named explicitly: Keras would call a second optimizer in the process "adam_1", and its variables
    # (adam_1/iteration, ...) would not match a checkpoint saved by the first (after a recompile, or
    # a resume in another process).
    if name == "sgd":
        return keras.optimizers.SGD(
            rate,
            momentum=settings["momentum"],
            nesterov=settings["nesterov"],
            weight_decay=settings["weight_decay"] or None,
            name=name,
        )
    if name == "rmsprop":
        return keras.optimizers.RMSprop(rate, momentum=settings["momentum"], name=name)
    if name == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=settings["weight_decay"], name=name)
    return keras.optimizers.Adam(rate, name=name)


def learning_rate_schedule(
    initial: float, schedule: dict[str, Any], steps_per_epoch: int, epochs: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A Keras schedule stepping per batch, from a schedule section counted in epochs."""
    name = schedule["name"]
    if name == "piecewise":
        boundaries = [epoch * steps_per_epoch for epoch in schedule["boundaries"]]
        values = [initial] + [initial * factor for factor in schedule["factors"]]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(initial, epochs * steps_per_epoch, alpha=schedule["alpha"])
    if name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(initial, steps_per_epoch, schedule["decay_rate"])
    return initial


def recompile(
    model: keras.Model, config: TrainConfig, steps_per_epoch: int, epoch: int, task: Task = CLASSIFICATION
) -> None:
    """Compile again after the trainable layers changed: a fresh optimizer that keeps the step count.

    Keras 3 fixes the trainable variables at compile time. The new optimizer's slots start at zero
    (as after a resume at this epoch, so resumed runs stay bitwise equal); its step count carries
    over, so the learning-rate schedule goes on where it was.
    """
    steps_done = int(model.optimizer.iterations.numpy())
    compile_model(model, config, steps_per_epoch, task)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(steps_done)
    trainable = sum(int(keras.ops.size(variable)) for variable in model.trainable_variables)
    log.info(
        "epoch %d: trainable layers changed, recompiled (%d trainable weights, step %d)",
        epoch + 1,
        trainable,
        steps_done,
    )


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int, task: Task = CLASSIFICATION) -> None:
    """Compile with the task's loss and metrics (workflow/models/task.py); XLA and eager mode from config."""
    loss, metrics = task.loss_and_metrics()
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=loss,
        metrics=metrics,
        jit_compile=xla_for(config),
        run_eagerly=config.run_eagerly,
        steps_per_execution=steps_per_execution(config),
    )


def xla_for(config: TrainConfig) -> bool:
    """Whether to compile with XLA under the current strategy and precision policy (`use_xla`)."""
    policy, distributed = keras.mixed_precision.global_policy().name, tf.distribute.has_strategy()
    chosen = use_xla(config.jit_compile, policy, distributed)
    if chosen != config.jit_compile:
        log.warning("train.jit_compile: XLA off: %s under %s fails in Keras 3.15 (keras-team/keras#21366)",
                    policy, type(tf.distribute.get_strategy()).__name__)  # fmt: skip
    return chosen


def steps_per_execution(config: TrainConfig) -> int:
    """The configured batches per call without a strategy; 1 under any tf.distribute strategy.

    Under MirroredStrategy, Keras 3.15's multi-step loop fails to run ("You must feed a value for
    placeholder tensor ... while/cond/Placeholder", tests/test_distribute.py), also with one replica
    (on the H200; the replica count was the test until then), so a strategy gets one batch per call.
    """
    return 1 if tf.distribute.has_strategy() else config.steps_per_execution


class EpochSummaries(keras.callbacks.Callback):
    """Per-epoch scalars for TensorBoard, in train/ and validation/ as Keras's callback writes them.

    Not keras.callbacks.TensorBoard: it has end-of-batch hooks even with update_freq="epoch", and
    any such hook makes Keras wait for every step and convert its logs (with it and an end-of-batch
    checkpoint hook, fit ran at 0.90 of a plain model.fit on LeNet-5, benchmarks/training_overhead.py).
    No hook here runs per batch.
    """

    def __init__(self, folder: pathlib.Path) -> None:
        super().__init__()
        self.writers = {part: tf.summary.create_file_writer(str(folder / part)) for part in ("train", "validation")}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self.writers[part].as_default():
                tf.summary.scalar(f"epoch_{name}", float(value), step=epoch)
        for writer in self.writers.values():
            writer.flush()


class EpochLogger(keras.callbacks.Callback):
    """One progress line per epoch in the job log, with wall time and examples/s."""

    def __init__(self, epochs: int, examples_per_epoch: int) -> None:
        super().__init__()
        self.epochs, self.examples_per_epoch = epochs, examples_per_epoch
        self.seconds: list[float] = []
        self.examples: list[int] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        seconds = time.monotonic() - self._started
        self.seconds.append(seconds)
        self.examples.append(self.examples_per_epoch)
        metrics = " ".join(f"{key}={float(value):.4f}" for key, value in sorted((logs or {}).items()))
        log.info(
            "epoch %d/%d %s %.1fs %.0f examples/s",
            epoch + 1,
            self.epochs,
            metrics,
            seconds,
            self.examples_per_epoch / max(seconds, 1e-9),
        )


def save_outputs(
    model: keras.Model,
    history: dict[str, list[float]],
    seconds: list[float],
    info: dict[str, Any],
    model_path: str,
    history_path: str,
    info_path: str,
) -> None:
    """model.keras, history.json and train.json, each atomically."""
    with atomic_path(model_path) as temporary:
        model.save(temporary)
    per_epoch = {key: [float(value) for value in values] for key, values in history.items()}
    per_epoch["seconds"] = [round(value, 3) for value in seconds]
    write_json(history_path, per_epoch)
    write_json(info_path, info)
