"""Sweeps: one experiment's `sweep:` section expanded into runs of their own, before the config is checked.

    experiments:
      lenet:
        dataset: mnist
        model: {name: lenet5}
        sweep:
          grid:                                   # every combination
            train.optimizer.learning_rate: [0.1, 0.03, 0.01]
            train.batch_size: [32, 128]
      lenet_random:
        ...
        sweep:
          random: {points: 20, seed: 0, space: {train.optimizer.learning_rate: {log_uniform: [0.0001, 0.1]},
                                                model.dropout: {uniform: [0, 0.5]},
                                                train.batch_size: {choice: [32, 64, 128]}}}

Each point becomes an experiment named from its values (`lenet-learning_rate_0p1-batch_size_32`:
the last part of each key, `.` written `p`), with those values set in a copy of the experiment; its
`seeds` multiply as for any experiment, and the points share the dataset (one download, one set of
shards). A point is an ordinary experiment to the rest of the workflow, so its cache key is its own
config slice: adding a value to a grid, or points to a random search, adds runs and redoes none.
A random search draws point i from its own generator seeded by (seed, i), so the first N points stay
the same when N grows; a draw that repeats an earlier point's values is that point (one run). Keys
are the config's own dotted paths; a key the experiment does not have is refused by the schema check
that follows, named with the sweep it came from.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from typing import Any

import numpy as np

from workflow.config.values import is_number

NAME_LIMIT = 64  # $defs/safe_name in configs/schema.yaml
MAX_POINTS = 10_000  # per sweep, grid or random
SAMPLERS = ("uniform", "log_uniform", "int_uniform", "choice")


class SweepError(ValueError):
    """A sweep section that cannot be expanded; the message names the experiment and the key."""


def expand_sweeps(experiments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The experiments with every swept one replaced by its points, and per sweep its keys and points
    ({name: {"keys": [...], "points": {point name: {key: value}}}}), in the config's order."""
    expanded: dict[str, Any] = {}
    sweeps: dict[str, dict[str, Any]] = {}
    for name, experiment in experiments.items():
        if not isinstance(experiment, dict) or "sweep" not in experiment:
            expanded[name] = experiment
            continue
        base = {key: value for key, value in experiment.items() if key != "sweep"}
        keys, points = sweep_points(name, experiment["sweep"])
        sweeps[name] = {"keys": keys, "points": {}}
        for values in points:
            point = point_name(name, values)
            if point in sweeps[name]["points"]:
                if sweeps[name]["points"][point] == values:
                    continue  # a random search drew the same values again: the same run
                raise SweepError(f"experiments.{name}.sweep: two points get the name {point}; give distinct values")
            if point in expanded or point in experiments:
                raise SweepError(f"experiments.{name}.sweep: the point {point} is also the name of another experiment")
            expanded[point] = with_values(copy.deepcopy(base), values)
            sweeps[name]["points"][point] = values
    return expanded, sweeps


def sweep_points(name: str, sweep: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The swept keys and one {key: value} per point: a grid's combinations or a random search's draws."""
    where = f"experiments.{name}.sweep"
    if not isinstance(sweep, dict) or set(sweep) - {"grid", "random"} or len(sweep) != 1:
        raise SweepError(f"{where}: give either grid (lists of values) or random (points, seed, space)")
    if "grid" in sweep:
        grid = sweep["grid"]
        if not isinstance(grid, dict) or not grid:
            raise SweepError(f"{where}.grid: a mapping of config keys to lists of values")
        for key, values in grid.items():
            check_key(f"{where}.grid", key)
            if not isinstance(values, list) or not values:
                raise SweepError(f"{where}.grid.{key}: a non-empty list of values (got {values!r})")
            if len({repr(value) for value in values}) != len(values):
                raise SweepError(f"{where}.grid.{key}: a value is listed twice ({values!r})")
        size = math.prod(len(values) for values in grid.values())
        if size > MAX_POINTS:  # checked before the combinations are made: a stranger's config cannot stall the DAG
            raise SweepError(f"{where}.grid: {size:,} combinations; at most {MAX_POINTS:,} points per sweep")
        keys = list(grid)
        return keys, [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*grid.values())]
    return random_points(f"{where}.random", sweep["random"])


def random_points(where: str, random: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """`points` draws from `space`; point i from a generator of its own, seeded by (seed, i)."""
    if not isinstance(random, dict) or set(random) - {"points", "seed", "space"} or "points" not in random:
        raise SweepError(f"{where}: points (how many), seed (default 0) and space (key: sampler)")
    points, seed, space = random["points"], random.get("seed", 0), random.get("space")
    if not isinstance(points, int) or isinstance(points, bool) or not 1 <= points <= MAX_POINTS:
        raise SweepError(f"{where}.points: a whole number from 1 to {MAX_POINTS} (got {points!r})")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SweepError(f"{where}.seed: a whole number >= 0 (got {seed!r})")
    if not isinstance(space, dict) or not space:
        raise SweepError(f"{where}.space: a mapping of config keys to samplers ({', '.join(SAMPLERS)})")
    for key, sampler in space.items():
        check_key(f"{where}.space", key)
        check_sampler(f"{where}.space.{key}", sampler)
    keys = list(space)
    drawn = []
    for index in range(points):
        generator = np.random.default_rng([seed, index])
        drawn.append({key: draw(space[key], generator) for key in keys})
    return keys, drawn


def check_key(where: str, key: Any) -> None:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise SweepError(f"{where}: {key!r} is not a config key (dotted, e.g. train.optimizer.learning_rate)")
    if key.split(".")[0] in ("sweep", "seeds", "dataset"):
        raise SweepError(f"{where}.{key}: cannot be swept (seeds multiply on their own; a dataset is its own entry)")


def check_sampler(where: str, sampler: Any) -> None:
    """{uniform: [low, high]}, {log_uniform: [low, high]} (low > 0), {int_uniform: [low, high]} or {choice: [...]}."""
    if not isinstance(sampler, dict) or len(sampler) != 1 or next(iter(sampler)) not in SAMPLERS:
        raise SweepError(f"{where}: one of {', '.join(f'{{{name}: ...}}' for name in SAMPLERS)} (got {sampler!r})")
    kind, arguments = next(iter(sampler.items()))
    if kind == "choice":
        if not isinstance(arguments, list) or not arguments:
            raise SweepError(f"{where}.choice: a non-empty list of values (got {arguments!r})")
        return
    numbers = isinstance(arguments, list) and len(arguments) == 2
    numbers = numbers and all(is_number(v) for v in arguments)
    if not numbers or not all(math.isfinite(v) for v in arguments) or arguments[0] >= arguments[1]:
        raise SweepError(f"{where}.{kind}: [low, high], two finite numbers with low < high (got {arguments!r})")
    if kind == "log_uniform" and arguments[0] <= 0:
        raise SweepError(f"{where}.log_uniform: low must be > 0 (got {arguments[0]!r})")
    if kind == "int_uniform" and not all(isinstance(v, int) for v in arguments):
        raise SweepError(f"{where}.int_uniform: two whole numbers (got {arguments!r})")


def draw(sampler: dict[str, Any], generator: np.random.Generator) -> Any:
    """One value; floats rounded to 4 significant digits, so that names and configs show what ran."""
    kind, arguments = next(iter(sampler.items()))
    if kind == "choice":
        return arguments[int(generator.integers(len(arguments)))]
    if kind == "int_uniform":
        return int(generator.integers(arguments[0], arguments[1], endpoint=True))
    if kind == "log_uniform":
        value = math.exp(generator.uniform(math.log(arguments[0]), math.log(arguments[1])))
    else:
        value = generator.uniform(arguments[0], arguments[1])
    return float(f"{value:.4g}")


def point_name(name: str, values: dict[str, Any]) -> str:
    """`<experiment>-<key>_<value>-...`, with the last part of each key (the whole key where two end
    alike); over the 64 characters a name may have, shortened with a digest of the values."""
    last = [key.split(".")[-1] for key in values]
    labels = [key.replace(".", "_") if last.count(key.split(".")[-1]) > 1 else key.split(".")[-1] for key in values]
    parts = [f"{label}_{value_text(value)}" for label, value in zip(labels, values.values(), strict=True)]
    full = "-".join([name, *parts])
    if len(full) <= NAME_LIMIT:
        return full
    digest = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:8]
    return f"{full[: NAME_LIMIT - 9].rstrip('-_')}-{digest}"


def value_text(value: Any) -> str:
    """A value as name characters: letters, digits, '_' and '-' (0.03 -> 0p03, True -> true)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    text = text.replace(".", "p").replace("+", "")
    return "".join(character if character.isalnum() or character in "_-" else "_" for character in text)


def with_values(experiment: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`experiment` with each dotted key set to its value (mappings on the way are created)."""
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = experiment
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SweepError(f"sweep key {key}: {part} is {child!r}, not a mapping")
            node = child
        node[leaf] = copy.deepcopy(value)
    return experiment
