"""Pick and build the tf.distribute strategy named by `train.strategy`.

`resolve_strategy_name` is pure (it looks only at the environment and device counts it is given),
so the choice `auto` makes is unit-tested without a cluster. `build_strategy` must run before
TensorFlow initialises its devices, because mirrored-on-CPU splits the CPU into logical devices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TypedDict

import keras
import tensorflow as tf

log = logging.getLogger(__name__)
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")


def slurm_tasks(env: Mapping[str, str]) -> int:
    """Tasks in this Slurm job step (1 outside Slurm)."""
    for key in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        if env.get(key, "").isdigit():
            return int(env[key])
    return 1


def resolve_strategy_name(name: str, env: Mapping[str, str], gpus: int, has_tpu: bool) -> str:
    """The concrete strategy for `name`; `auto`: Slurm tasks > 1, then GPUs > 1, then TPU, else default."""
    if name not in STRATEGIES:
        raise ValueError(f"train.strategy: unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    if name != "auto":
        return name
    if slurm_tasks(env) > 1 or "TF_CONFIG" in env:
        return "multi_worker_mirrored"
    if gpus > 1:
        return "mirrored"
    if has_tpu:
        return "tpu"
    return "default"


def build_strategy(
    name: str, devices: int = 1, env: Mapping[str, str] | None = None, tpu: Mapping[str, str | None] | None = None
) -> tf.distribute.Strategy:
    """Create the strategy; `devices` replicas for mirrored (GPUs, or logical CPUs without GPUs)."""
    env = os.environ if env is None else env
    if name in ("auto", "multi_worker_mirrored") and slurm_tasks(env) > 1:
        # Before anything lists GPUs: the resolver may set CUDA_VISIBLE_DEVICES per task.
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=slurm_resolver(env))
    gpus = tf.config.list_physical_devices("GPU")
    has_tpu = bool(env.get("TPU_NAME") or (tpu or {}).get("name"))
    chosen = resolve_strategy_name(name, env, len(gpus), has_tpu)
    log.info("strategy %s -> %s (%d GPUs visible)", name, chosen, len(gpus))
    if chosen == "default":
        return tf.distribute.get_strategy()
    if chosen == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if chosen == "mirrored":
        replicas = mirrored_replicas(name, devices, len(gpus))
        log.info("mirrored over %d %s", replicas, "GPUs" if gpus else "logical CPU devices")
        return tf.distribute.MirroredStrategy(_mirrored_devices(replicas, len(gpus)))
    if chosen == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=_cluster_resolver(env))
    if chosen == "parameter_server":
        if "TF_CONFIG" not in env:
            raise ValueError("train.strategy parameter_server needs TF_CONFIG with chief, worker and ps tasks")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.experimental.ParameterServerStrategy(resolver)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(**tpu_resolver_arguments(tpu or {}, env))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def mirrored_replicas(name: str, devices: int, gpus: int) -> int:
    """How many replicas MirroredStrategy gets: `train.devices`, except that `auto` (which chose mirrored
    because the job sees several GPUs) takes every one of them when `devices` is left at 1; the count
    is in train.json (`replicas`)."""
    return gpus if name == "auto" and devices == 1 and gpus > 1 else devices


def _mirrored_devices(devices: int, gpus: int) -> list[str]:
    if gpus:
        if devices > gpus:
            raise ValueError(f"train.devices: {devices} replicas asked, {gpus} GPUs visible")
        return [f"/gpu:{index}" for index in range(devices)]
    cpus = tf.config.list_physical_devices("CPU")
    if devices > 1:
        # Only possible before the runtime starts; afterwards TensorFlow raises RuntimeError.
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * devices)
    return [f"/cpu:{index}" for index in range(devices)]


def _cluster_resolver(env: Mapping[str, str]) -> tf.distribute.cluster_resolver.ClusterResolver:
    if slurm_tasks(env) > 1:
        return slurm_resolver(env)
    if "TF_CONFIG" not in env:
        raise ValueError(
            "train.strategy multi_worker_mirrored needs several Slurm tasks (train.workers > 1 under "
            "snakemake --profile slurm) or a TF_CONFIG cluster; this process has neither"
        )
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def slurm_port_base(env: Mapping[str, str]) -> int:
    """First port of this job's workers: spread by job id, so two jobs on one node do not collide."""
    job = int(env.get("SLURM_JOB_ID", "0") or 0)
    return 20_000 + (job % 2_500) * 16  # Up to 16 tasks per node per job, ports 20000-59999.


def slurm_resolver(env: Mapping[str, str]) -> tf.distribute.cluster_resolver.SlurmClusterResolver:
    """The cluster of this Slurm job step, one worker per task, on job-specific ports."""
    from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import expand_tasks_per_node

    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    gpus = len([device for device in visible.split(",") if device.strip()])  # nvidia-smi may be absent.
    tasks_per_node = max(expand_tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE", "1")))
    if gpus >= tasks_per_node:
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=slurm_port_base(env), gpus_per_node=gpus, auto_set_gpu=True
        )
    # The resolver places one task per GPU slot; CPU workers get one placeholder slot each.
    return tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=slurm_port_base(env), gpus_per_node=tasks_per_node, gpus_per_task=1, auto_set_gpu=False
    )


def tpu_resolver_arguments(tpu: Mapping[str, str | None], env: Mapping[str, str]) -> dict[str, str | None]:
    """TPUClusterResolver arguments from runtime.tpu, the TPU name falling back to $TPU_NAME."""
    name = tpu.get("name") or env.get("TPU_NAME")
    if not name:
        raise ValueError("train.strategy tpu needs runtime.tpu.name (or TPU_NAME in the environment)")
    return {"tpu": name, "zone": tpu.get("zone"), "project": tpu.get("project")}


class TaskIdentity(TypedDict):
    task_type: str
    task_id: int
    workers: int


def task_identity(strategy: tf.distribute.Strategy) -> TaskIdentity:
    """This process's task type and id in a multi-worker cluster (worker 0 alone otherwise)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return {"task_type": "worker", "task_id": 0, "workers": 1}
    workers = len(resolver.cluster_spec().as_dict().get("worker", []))
    return {"task_type": resolver.task_type, "task_id": int(resolver.task_id), "workers": workers}


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the declared outputs (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)


def work_around_keras_multi_worker(model: keras.Model) -> None:
    """Make Keras 3 fit() run under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras 3.15 fails twice there: its eager "symbolic build" all-reduces a data batch
    (tensorflow/tensorflow#72388), and its step reduces the logged scalars with a mean over axis 0,
    which scalars lack. Without a stored strategy Keras builds while tracing and takes the strategy
    from the scope fit() runs in; the logged values are then averaged over workers with axis=None.
    Both reach into Keras internals: tests/test_distribute.py trains two real workers to catch a
    Keras upgrade that changes them.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as keras_trainer

    model._distribute_strategy = None
    if getattr(keras_trainer.reduce_per_replica, "multi_worker_fixed", False):
        return
    original = keras_trainer.reduce_per_replica

    def reduce_per_replica(values: object, strategy: tf.distribute.Strategy, reduction: str) -> object:
        if reduction in ("auto", "mean") and keras_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.multi_worker_fixed = True  # type: ignore[attr-defined]
    keras_trainer.reduce_per_replica = reduce_per_replica
