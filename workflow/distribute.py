"""Pick and build the tf.distribute strategy named by `train.strategy`.

`resolve_strategy_name` is pure (it looks only at the environment and device counts it is given),
so the choice `auto` makes is unit-tested without a cluster. `build_strategy` must run before
TensorFlow initialises its devices, because mirrored-on-CPU splits the CPU into logical devices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

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


def build_strategy(name: str, devices: int = 1, env: Mapping[str, str] | None = None) -> tf.distribute.Strategy:
    """Create the strategy; `devices` replicas for mirrored (GPUs, or logical CPUs without GPUs)."""
    env = os.environ if env is None else env
    gpus = tf.config.list_physical_devices("GPU")
    has_tpu = bool(env.get("TPU_NAME"))
    chosen = resolve_strategy_name(name, env, len(gpus), has_tpu)
    log.info("strategy %s -> %s (%d GPUs visible)", name, chosen, len(gpus))
    if chosen == "default":
        return tf.distribute.get_strategy()
    if chosen == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if chosen == "mirrored":
        return tf.distribute.MirroredStrategy(_mirrored_devices(devices, len(gpus)))
    if chosen == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=_cluster_resolver(env))
    if chosen == "parameter_server":
        if "TF_CONFIG" not in env:
            raise ValueError("train.strategy parameter_server needs TF_CONFIG with chief, worker and ps tasks")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.experimental.ParameterServerStrategy(resolver)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=env.get("TPU_NAME"))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


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
        return tf.distribute.cluster_resolver.SlurmClusterResolver()
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the declared outputs (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0)
