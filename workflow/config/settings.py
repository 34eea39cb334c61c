"""Load, default and validate the workflow config, and cut the slice each step gets as `params`.

The Snakefile calls `load_config(config)` once while the DAG is built, so a bad config is refused
before any job runs, with the key path and the bad value in the message. This module imports no
TensorFlow: it runs on every `snakemake` invocation, dry runs included.
"""

from __future__ import annotations

import copy
import functools
import json
import pathlib
import urllib.parse
from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
import yaml

from workflow.config import usercode
from workflow.config.plainyaml import ConfigError, check_plain, has_line_break, load_plain_yaml, shown
from workflow.config.sweep import SweepError, expand_sweeps
from workflow.deploy import formats
from workflow.deploy.gate import model_name_problem
from workflow.deploy.savedmodel import check_saved_model
from workflow.models import catalog
from workflow.train import hub

__all__ = ["ConfigError", "load_config", "load_yaml", "check_config_files"]
SCHEMA_PATH = pathlib.Path(__file__).resolve().parent.parent.parent / "configs" / "schema.yaml"


def load_schema(path: pathlib.Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the JSON Schema (YAML syntax, safe loader)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_yaml(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a config file as plain data (workflow/config/plainyaml.py): no code, no tags, no key twice."""
    return load_plain_yaml(path)


def check_config_files(paths: list[Any]) -> None:
    """Read again, strictly, the config files Snakemake has loaded (its loader runs YTE and keeps the
    last of two equal keys): refuse what it should not have accepted, naming the file and line."""
    for path in paths:
        load_plain_yaml(path)


COMPILED_VALIDATION_FROM = 100  # experiments from which compiling the schema validators pays off


def load_config(
    raw: dict[str, Any], schema: dict[str, Any] | None = None, command_line: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a validated copy of `raw` with every default filled; raise ConfigError otherwise.

    `command_line` is Snakemake's parse of `--config` (already merged into `raw`): its values below
    the top level are strings, which are read as YAML where the schema wants a number, boolean,
    list or mapping (`typed_overrides`).
    """
    schema = schema or load_schema()
    check_plain(raw)  # before anything walks it: an alias bomb is refused in milliseconds
    config = copy.deepcopy(dict(raw))
    if command_line:
        check_plain(dict(command_line), "--config")
        typed_overrides(config, dict(command_line), schema)
    sweeps: dict[str, dict[str, Any]] = {}
    if isinstance(config.get("experiments"), dict):  # anything else: the schema check names it
        try:
            config["experiments"], sweeps = expand_sweeps(config["experiments"])
        except SweepError as error:
            raise ConfigError(str(error)) from error
    _check_moved_keys(config)
    # One validator per schema, shared by all experiments; compiled ones only for a config with many
    # experiments (compiling costs ~0.1 s per schema; checking one experiment with jsonschema ~1.8 ms).
    compiled = len(config.get("experiments") or {}) >= COMPILED_VALIDATION_FROM
    validators: dict[tuple[str, int], Any] = {}
    try:
        _validate(config, schema, schema, "", validators, compiled)
        _check_experiments(config, schema, validators, compiled)
    except ConfigError as error:
        raise ConfigError(f"{error}{_sweep_origin(str(error), sweeps)}") from error
    config["sweeps"] = sweeps  # the report compares each sweep's points (workflow/config/sweep.py)
    return config


def _check_experiments(
    config: dict[str, Any], schema: dict[str, Any], validators: dict[tuple[str, int], Any], compiled: bool
) -> None:
    """What the schema cannot say of a valid config: models, augmentation, datasets, schedules, workers."""
    for name, experiment in config["experiments"].items():
        _check_model(name, experiment["model"], schema, validators, compiled)
        _check_augmentation(name, experiment["train"]["augment"])
        if experiment["dataset"] not in config["datasets"]:
            known = ", ".join(sorted(config["datasets"]))
            raise ConfigError(
                f"experiments.{name}.dataset: {experiment['dataset']!r} is not a key of datasets (known: {known})"
            )
        _check_schedule(name, experiment["train"]["schedule"])
        _check_workers(name, experiment["train"], experiment["resources"]["train"]["nodes"])
        _check_deploy(name, experiment)
        _check_cnn_fits(name, experiment["model"], config["datasets"][experiment["dataset"]])
        _check_init_from(name, experiment["model"]["init_from"], config["experiments"])
    for key, entry in config["datasets"].items():
        _check_dataset(key, entry)


def _sweep_origin(message: str, sweeps: dict[str, dict[str, Any]]) -> str:
    """' (experiments.X.sweep made P with key: value, ...)' when `message` names a point P of a sweep."""
    for sweep, entry in sweeps.items():
        for point, values in entry["points"].items():
            if f"experiments.{point}." in message or f"experiments.{point}:" in message:
                swept = ", ".join(f"{key}: {value!r}" for key, value in values.items())
                return f" (experiments.{sweep}.sweep made {point} with {swept})"
    return ""


def _check_model(
    name: str, model: dict[str, Any], schema: dict[str, Any], validators: dict[tuple[str, int], Any], compiled: bool
) -> None:
    """A built-in model's options against `$defs/model_<name>`; a model of the user's own against their function."""
    where = f"experiments.{name}.model"
    if model.get("code"):
        if model["name"] in catalog.MODELS:
            raise ConfigError(f"{where}.name: {model['name']} is a built-in model; give your own model another name")
        options = {key: value for key, value in model.items() if key not in ("name", "code", "init_from")}
        _check_code(model["code"], f"{where}.code", usercode.MODEL_BUILDER, options)
        try:
            usercode.declared_skips(model["code"], formats.SKIP_KEYS)
        except usercode.UserCodeError as error:
            raise ConfigError(f"{where}.code: {error}") from None
        return
    if model["name"] not in catalog.MODELS:
        known = ", ".join(catalog.MODELS)
        raise ConfigError(
            f"{where}.name: {model['name']!r} is not a built-in model (known: {known}); for a model of your "
            f"own, name its builder with {where}.code (docs/your-own-code.md)"
        )
    init_from = model.pop("init_from", None)  # validated with the whole config
    _validate(model, schema["$defs"][f"model_{model['name']}"], schema, where, validators, compiled)
    model["init_from"] = init_from


def _check_augmentation(name: str, augment: dict[str, Any]) -> None:
    where = f"experiments.{name}.train.augment"
    if augment.get("code"):
        _check_code(augment["code"], f"{where}.code", usercode.AUGMENTATION, augment["options"])
    elif augment["options"]:
        raise ConfigError(f"{where}.options: options are for your own augmentation; add {where}.code or remove them")


def _check_code(
    ref: dict[str, Any], where: str, leading: tuple[str, ...] = (), options: dict[str, Any] | None = None
) -> None:
    try:
        usercode.check(ref, where, leading, options)
    except usercode.UserCodeError as error:
        raise ConfigError(str(error)) from None


def typed_overrides(config: dict[str, Any], command_line: dict[str, Any], schema: dict[str, Any]) -> None:
    """Give `--config` values their types, in `config`, where the schema asks for something other than text.

    Snakemake reads `--config 'experiments={digits_mlp: {train: {epochs: 3}}}'` with YAML's base
    loader, so every nested value is a string ('3'). Each string at a key whose schema does not
    allow a string is read again as plain YAML (3, 0.01, true, null, [16, 32]); where the schema
    allows a string it stays one, so a title '2024' stays text. Model options follow the schema of
    the experiment's model (`$defs/model_<name>`).
    """
    for name, value in command_line.items():
        if name in config:
            config[name] = _typed(config[name], value, schema["properties"].get(name, {}), schema, [name])


def _typed(current: Any, given: Any, schema: dict[str, Any], root: dict[str, Any], path: list[str]) -> Any:
    schema = _resolve(schema, root)
    if isinstance(given, dict) and isinstance(current, dict):
        if path[0] == "experiments" and len(path) == 3 and path[2] == "model":
            schema = {**schema, **(_own_model_schema(current) or root["$defs"].get(f"model_{current.get('name')}", {}))}
        for key, value in given.items():
            if key in current:
                current[key] = _typed(current[key], value, _sub_schema(schema, key) or {}, root, [*path, key])
        return current
    if isinstance(given, list) and given == current:
        items = _sub_schema(schema, None) or {}
        return [_typed(item, item, items, root, [*path, str(index)]) for index, item in enumerate(given)]
    if isinstance(given, str) and given == current and not _allows_text(schema, root):
        try:
            return yaml.safe_load(given)
        except yaml.YAMLError as error:
            raise ConfigError(f"--config {'.'.join(path)}: {shown(given)} is not a YAML value: {error}") from None
    return current


def _own_model_schema(model: dict[str, Any]) -> dict[str, Any] | None:
    """For `--config` typing: a model of the user's own takes text where its function's default is text."""
    if not isinstance(model.get("code"), dict):
        return None
    try:
        defaults = usercode.option_defaults(model["code"])
    except usercode.UserCodeError:
        return None  # load_config names the problem
    not_text = {"type": ["number", "boolean", "array", "object", "null"]}
    typed = {key: {"type": "string"} if isinstance(value, str) else not_text for key, value in defaults.items()}
    return {"properties": typed}


def _allows_text(schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """Whether a value at this schema may be a string (a type string, or an enum/const of strings)."""
    schema = _resolve(schema, root)
    types = _types(schema)
    if "string" in types or any(isinstance(item, str) for item in schema.get("enum", [])):
        return True
    if isinstance(schema.get("const"), str):
        return True
    branches = [*schema.get("oneOf", ()), *schema.get("anyOf", ())]
    return any(_allows_text(branch, root) for branch in branches) or (
        not types and not branches and "enum" not in schema
    )


def _validate(
    instance: dict[str, Any],
    schema: dict[str, Any],
    root: dict[str, Any],
    prefix: str,
    validators: dict[tuple[str, int], Any],
    compiled: bool,
) -> None:
    """Fill defaults, then validate; on a failure jsonschema says what and where.

    `validators` holds one validator per schema for the whole load (keyed by kind and id: the
    schema objects outlive it). With `compiled`, fastjsonschema checks first (0.3 s instead of
    1.8 s for 1000 experiments) and only a config with an error pays for the jsonschema pass that
    lists every error.
    """
    fill_defaults(instance, schema, root)
    if compiled:
        if ("compiled", id(schema)) not in validators:
            validators["compiled", id(schema)] = _compiled(json.dumps(_with_defs(schema, root), sort_keys=True))
        try:
            validators["compiled", id(schema)](instance)
        except fastjsonschema.JsonSchemaValueException:
            pass
        else:
            check_exact(instance, schema, root, prefix or "config")
            return
    if ("jsonschema", id(schema)) not in validators:
        validators["jsonschema", id(schema)] = jsonschema.Draft202012Validator(_with_defs(schema, root))
    errors = sorted(validators["jsonschema", id(schema)].iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("\n".join(_describe(error, prefix) for error in errors[:10]))
    check_exact(instance, schema, root, prefix or "config")


def check_exact(instance: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> None:
    """What JSON Schema lets through and this workflow must not: floats at integer keys, line breaks.

    JSON Schema counts 2.0 as an integer (and both validators follow it), but a float epoch count or
    seed breaks later without naming the key. Python's `re` lets `$` match before a final newline,
    so a schema `pattern` alone would pass "name\n"; a string may hold a line break only where
    the schema marks it `x-multiline` (free text), so every pattern matches the whole value.
    """
    schema = _resolve(schema, root)
    types = _types(schema)
    if isinstance(instance, float) and "integer" in types and "number" not in types:
        raise ConfigError(f"{where}: {instance!r} is not a whole number; write it without a decimal point")
    if isinstance(instance, str) and not schema.get("x-multiline") and has_line_break(instance):
        raise ConfigError(f"{where}: {shown(instance)} holds a line break; the value must be one line")
    for branch in (*schema.get("oneOf", ()), *schema.get("anyOf", ()), *schema.get("allOf", ())):
        check_exact(instance, branch, root, where)
    if isinstance(instance, dict):
        for key, value in instance.items():
            sub = _sub_schema(schema, key)
            if sub is not None:
                check_exact(value, sub, root, f"{where}.{key}")
    elif isinstance(instance, list) and _sub_schema(schema, None) is not None:
        for index, value in enumerate(instance):
            check_exact(value, schema["items"], root, f"{where}[{index}]")


def _types(schema: dict[str, Any]) -> list[str]:
    """A schema's `type` as a list (it may be one name or several)."""
    types = schema.get("type", [])
    return [types] if isinstance(types, str) else types


def _sub_schema(schema: dict[str, Any], key: str | None) -> dict[str, Any] | None:
    """The schema of a mapping's `key` (its property, else additionalProperties), or of a list's items for
    key None; None where the schema says nothing. The walks beside validation (check_exact, _typed) use it."""
    if key is None:
        items = schema.get("items")
        return items if isinstance(items, dict) else None
    extra = schema.get("additionalProperties")
    return schema.get("properties", {}).get(key, extra if isinstance(extra, dict) else None)


@functools.lru_cache(maxsize=32)
def _compiled(schema_json: str) -> Callable[[Any], Any]:
    """A fastjsonschema validator (compiling takes ~0.1 s, so equal schemas, as sorted JSON, share one)."""
    return fastjsonschema.compile(json.loads(schema_json), use_default=False)


def _with_defs(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A sub-schema made standalone: the root's $defs, which its $refs point into."""
    return {**schema, "$defs": root["$defs"]}


def _describe(error: jsonschema.ValidationError, prefix: str) -> str:
    """One line per error: `key.path: bad value: what was expected`, the value cut short (plainyaml.shown)."""
    path = ".".join([prefix] * bool(prefix) + [str(part) for part in error.absolute_path])
    where = path or "config"
    message = error.message.replace(repr(error.instance), shown(error.instance))
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{where}: {message} (allowed keys: {', '.join(allowed)})"
    if error.validator == "propertyNames":
        return f"{where}: invalid name {shown(error.instance)}: {error.schema.get('description', '')}".strip()
    return f"{where}: {shown(error.instance)}: {message}"


def fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """Insert schema defaults into `instance` in place, recursing into objects it already has."""
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub_resolved = _resolve(sub, root)
        default = sub.get("default", sub_resolved.get("default"))
        if key not in instance and ("default" in sub or "default" in sub_resolved):
            instance[key] = copy.deepcopy(default)
        elif sub_resolved.get("x-partial-keeps-default") and isinstance(instance.get(key), dict):
            # A partial mapping keeps the default's other keys (one limit of a format's budget).
            for name, value in default.items():
                instance[key].setdefault(name, copy.deepcopy(value))
        if key in instance:
            fill_defaults(instance[key], sub_resolved, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                fill_defaults(value, extra, root)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    if not ref.startswith("#/$defs/"):
        raise ValueError(f"schema: only local $defs references are supported, got {ref}")
    return root["$defs"][ref.removeprefix("#/$defs/")]


def _check_schedule(name: str, schedule: dict[str, Any]) -> None:
    if schedule["name"] == "piecewise" and len(schedule["boundaries"]) != len(schedule["factors"]):
        raise ConfigError(
            f"experiments.{name}.train.schedule: piecewise needs one factor per boundary, got "
            f"boundaries={schedule['boundaries']} and factors={schedule['factors']}"
        )


def _check_init_from(name: str, init_from: dict[str, Any] | None, experiments: dict[str, Any]) -> None:
    """One source; an experiment source exists, has the seed, and does not lead back to `name`."""
    if init_from is None:
        return
    where = f"experiments.{name}.model.init_from"
    sources = [key for key in ("experiment", "path", "hub") if init_from.get(key) is not None]
    if len(sources) != 1:
        raise ConfigError(f"{where}: give exactly one of experiment, path or hub, got {sources or 'none'}")
    if "experiment" not in sources:
        _check_init_source(where, init_from)
        return
    source = init_from["experiment"]
    if source not in experiments:
        raise ConfigError(
            f"{where}.experiment: {source!r} is not an experiment (known: {', '.join(sorted(experiments))})"
        )
    seed = init_from["seed"]
    if seed is not None and seed not in experiments[source]["seeds"]:
        raise ConfigError(f"{where}.seed: {seed} is not one of {source}'s seeds {experiments[source]['seeds']}")
    chain, current = [name], source
    while current is not None:
        if current in chain:
            raise ConfigError(
                f"{where}: experiments initialise from each other in a cycle: {' -> '.join([*chain, current])}"
            )
        chain.append(current)
        parent = (experiments[current]["model"].get("init_from") or {}).get("experiment")
        current = parent if parent in experiments else None


def init_source(config: dict[str, Any], experiment: str) -> dict[str, Any] | None:
    """What an experiment starts from: {"experiment", "seed"} of another run, {"path"}, {"hub"}, or None."""
    init_from = config["experiments"][experiment]["model"]["init_from"]
    if init_from is None:
        return None
    if init_from.get("path") is not None:
        return {"path": init_from["path"]}
    if init_from.get("hub") is not None:
        return {"hub": init_from["hub"]}
    source = init_from["experiment"]
    seed = init_from["seed"] if init_from["seed"] is not None else config["experiments"][source]["seeds"][0]
    return {"experiment": source, "seed": seed}


def hub_handle(config: dict[str, Any], key: str) -> str:
    """The `init_from.hub` handle fetched into results/pretrained/<key> (key: workflow.train.hub.handle_key)."""
    for experiment in config["experiments"]:
        source = init_source(config, experiment) or {}
        if "hub" in source and hub.handle_key(source["hub"]) == key:
            return source["hub"]
    raise ConfigError(f"results/pretrained/{key}: no experiment's model.init_from.hub has this key")


def hub_keys(config: dict[str, Any]) -> list[str]:
    """The results/pretrained/<key> folders the config's hub handles are fetched into."""
    sources = [init_source(config, experiment) or {} for experiment in config["experiments"]]
    return sorted({hub.handle_key(source["hub"]) for source in sources if "hub" in source})


def hub_local_file(handle: str) -> list[str]:
    """A local handle (folder or archive) as the pretrained step's input, so a changed copy refetches; [] for a URL."""
    return [] if hub.is_url(handle) else [handle]


def _check_deploy(name: str, experiment: dict[str, Any]) -> None:
    seed = experiment["deploy"]["seed"]
    if seed is not None and seed not in experiment["seeds"]:
        raise ConfigError(f"experiments.{name}.deploy.seed: {seed} is not one of seeds {experiment['seeds']}")
    problem = model_name_problem(experiment["deploy"]["model_name"] or name)
    if problem:
        raise ConfigError(f"experiments.{name}.deploy.model_name: {problem}")


# Image sizes of datasets known before they are prepared, so that a CNN too deep for them is refused
# before any job (a Slurm user would otherwise wait in the queue to learn it); others are checked by training.
KNOWN_IMAGE_SIZES = {"sklearn_digits": 8, "mnist": 28, "fashion_mnist": 28, "kmnist": 28, "cifar10": 32,
                     "cifar100": 32, "svhn_cropped": 32}  # fmt: skip


def _check_cnn_fits(name: str, model: dict[str, Any], dataset: dict[str, Any]) -> None:
    """The feature map of workflow/models/images.py build_cnn stays at least 1x1 (tests/test_models.py keeps them in
    step): each valid 3x3 convolution takes 2 pixels off, and a 2x2 pool halves a map of 2 or more."""
    size = KNOWN_IMAGE_SIZES.get((dataset.get("tfds_name") or "").split(":")[0])
    if model["name"] != "cnn" or size is None:
        return
    original = size
    for index, _ in enumerate(model["filters"]):
        size -= 2
        if size < 1:
            raise ConfigError(
                f"experiments.{name}.model.filters: {model['filters']} do not fit {dataset['tfds_name']}'s "
                f"{original}x{original} images: conv_{index} would leave a {size}x{size} map (each 3x3 convolution "
                "takes 2 pixels, each 2x2 pool halves); use fewer filter blocks"
            )
        size = size // 2 if size >= 2 else size


# The project's builders whose data ships inside a Python package (workflow/data/datasets/): no raw files.
BUNDLED_BUILDERS = {"sklearn_digits": "scikit-learn", "sklearn_breast_cancer": "scikit-learn",
                    "sklearn_diabetes": "scikit-learn"}  # fmt: skip


def _check_dataset(key: str, entry: dict[str, Any]) -> None:
    """A CSV that is a file; a manual_dir only where the builder reads raw files from one."""
    where = f"datasets.{key}"
    builder = (entry.get("tfds_name") or "").split(":")[0]
    if entry.get("code"):
        _check_code(entry["code"], f"{where}.code")
    if entry["manual_dir"] is not None:
        if entry.get("csv"):
            raise ConfigError(f"{where}.manual_dir: a CSV dataset reads only csv.path; remove manual_dir")
        if builder in BUNDLED_BUILDERS:
            raise ConfigError(
                f"{where}.manual_dir: {builder} reads no raw files (its data ships with "
                f"{BUNDLED_BUILDERS[builder]}), so manual_dir would be ignored; remove it"
            )
        if pathlib.Path(entry["manual_dir"]).is_file():
            raise ConfigError(f"{where}.manual_dir: {entry['manual_dir']} is a file; give the folder of the raw files")
    if entry.get("csv"):
        path = pathlib.Path(entry["csv"]["path"])
        if path.is_dir():
            raise ConfigError(f"{where}.csv.path: {path} is a folder; give the CSV file itself")
        if not path.is_file():
            raise ConfigError(f"{where}.csv.path: {path} does not exist{_relative_to_cwd(path)}")


def _relative_to_cwd(path: pathlib.Path) -> str:
    return "" if path.is_absolute() else f" (relative paths start at the working directory, {pathlib.Path.cwd()})"


def _check_init_source(where: str, init_from: dict[str, Any]) -> None:
    """A local source exists and is what training can load; a hub handle is https or a local SavedModel.

    Checked while the DAG is built: a missing input of a finished train job would make Snakemake
    skip it silently and rerun only what follows, describing a model this config did not make.
    """
    if init_from.get("path") is not None:
        path = pathlib.Path(init_from["path"])
        if not path.exists():
            raise ConfigError(f"{where}.path: {path} does not exist{_relative_to_cwd(path)}")
        if path.is_dir():
            _check_saved_model_folder(f"{where}.path", path)
        elif not path.name.endswith((".keras", ".weights.h5")):
            raise ConfigError(f"{where}.path: {path} must be a .keras or .weights.h5 file or a SavedModel folder")
    handle = init_from.get("hub")
    if handle is None or hub.is_url(handle):
        return
    scheme = urllib.parse.urlparse(handle).scheme
    if len(scheme) > 1:  # one letter is a Windows drive
        raise ConfigError(
            f"{where}.hub: {shown(handle)}: {scheme}:// is not fetched; give an https:// handle or a local "
            "SavedModel folder or .tar.gz"
        )
    path = pathlib.Path(handle)
    if not path.exists():
        raise ConfigError(f"{where}.hub: {path} is neither an https:// handle nor an existing file or folder")
    if path.is_dir():
        _check_saved_model_folder(f"{where}.hub", path)
    elif not path.name.endswith((".tar.gz", ".tgz", ".tar")):
        raise ConfigError(f"{where}.hub: {path} must be a SavedModel folder or a .tar.gz of one")


def _check_saved_model_folder(where: str, path: pathlib.Path) -> None:
    try:
        check_saved_model(path, "give a SavedModel folder (saved_model.pb and variables/)")
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


# Keys that left `train` for `runtime` or `resources` (they never changed the trained weights).
MOVED_FROM_TRAIN = {"checkpoint": "runtime.checkpoint", "steps_per_execution": "runtime.steps_per_execution",
                    "tpu": "runtime.tpu", "nodes": "resources.train.nodes"}  # fmt: skip


def _check_moved_keys(config: dict[str, Any]) -> None:
    """Say where a key of an older config went, instead of only "unexpected key"."""
    for name, experiment in (config.get("experiments") or {}).items():
        train = experiment.get("train") if isinstance(experiment, dict) else None
        moved = sorted(set(train) & set(MOVED_FROM_TRAIN)) if isinstance(train, dict) else []
        for key in moved:
            raise ConfigError(
                f"experiments.{name}.train.{key}: moved to experiments.{name}.{MOVED_FROM_TRAIN[key]} (how and "
                "where training runs, not what it computes: changing it reruns nothing)"
            )


def _check_workers(name: str, train: dict[str, Any], nodes: int) -> None:
    if train["workers"] > 1 and train["strategy"] not in ("auto", "multi_worker_mirrored"):
        raise ConfigError(
            f"experiments.{name}.train.workers: {train['workers']} workers need strategy "
            f"multi_worker_mirrored (or auto), not {train['strategy']!r}"
        )
    if nodes > train["workers"]:
        raise ConfigError(
            f"experiments.{name}.resources.train.nodes: {nodes} nodes for {train['workers']} workers "
            f"(train.workers); every node needs at least one worker"
        )
    if train["workers"] > 1 and train["in_memory"] is True:
        raise ConfigError(
            f"experiments.{name}.train.in_memory: true holds the split in one process; with "
            f"{train['workers']} workers each reads its shards as a stream (use auto or false)"
        )


# The slices below are what each rule passes as `params`: a step reruns when its slice changes
# and only then, so each holds exactly what the step uses. Snakemake compares params by repr(),
# which depends on dict order, so every slice is returned with its keys sorted: reordering keys
# in a YAML file is not a change.


def canonical(value: Any) -> Any:
    """`value` with the keys of every nested dict sorted, so equal configs have equal repr()."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def _sorted_keys(function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(function)
    def wrapper(*args: Any) -> dict[str, Any]:
        return canonical(function(*args))

    return wrapper


def runs(config: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (experiment, seed) pair, sorted: the order of keys in the YAML file is no change."""
    return sorted((name, seed) for name, exp in config["experiments"].items() for seed in exp["seeds"])


def dataset_names(config: dict[str, Any]) -> list[str]:
    """Datasets that some experiment uses (unused entries are not prepared)."""
    used = {exp["dataset"] for exp in config["experiments"].values()}
    return [name for name in config["datasets"] if name in used]


@_sorted_keys
def download_params(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """What the download step uses: the tfds name and where raw files may already lie, or the CSV file."""
    entry = config["datasets"][dataset]
    return {
        "tfds_name": entry.get("tfds_name"),
        "manual_dir": entry["manual_dir"],
        "csv": entry.get("csv"),
        "code": entry.get("code"),
    }


def dataset_code(config: dict[str, Any], dataset: str) -> str:
    """Digest of the user's dataset builder and the files it imports from its folder ("" for none): a
    param of the download step, so that editing them reruns it and what follows."""
    return usercode.digest(config["datasets"][dataset].get("code"))


def train_code(config: dict[str, Any], experiment: str) -> str:
    """Digest of the user's model builder and augmentation, with the files they import ("" for none)."""
    exp = config["experiments"][experiment]
    return usercode.digest(exp["model"].get("code"), exp["train"]["augment"].get("code"))


def csv_file(config: dict[str, Any], dataset: str) -> list[str]:
    """The dataset's CSV file, an input of its download step (editing it reruns the step); [] for tfds data."""
    entry = config["datasets"][dataset]
    return [entry["csv"]["path"]] if entry.get("csv") else []


@_sorted_keys
def tfrecord_params(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """What the tfrecord step uses: shard counts and the validation carve-out."""
    entry = config["datasets"][dataset]
    return {"shards": entry["shards"], "validation_percent": entry["validation_percent"]}


@_sorted_keys
def train_params(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Model and training settings: everything that changes the trained weights."""
    exp = config["experiments"][experiment]
    return {"model": exp["model"], "train": exp["train"]}


def train_runtime(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """How the train step runs (checkpoints, batches per call, TPU): read by the job from the validated
    config, never a param, so that changing it reruns nothing."""
    return copy.deepcopy(config["experiments"][experiment]["runtime"])


def default_runtime() -> dict[str, Any]:
    """The schema's defaults of an experiment's `runtime` section."""
    schema = load_schema()
    runtime: dict[str, Any] = {}
    fill_defaults(runtime, schema["$defs"]["runtime"], schema)
    return runtime


def train_resources(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Slurm resources of the train job (snakemake-executor-plugin-slurm names); not params, so no rerun."""
    exp = config["experiments"][experiment]
    wanted, train = exp["resources"]["train"], exp["train"]
    workers = train["workers"]
    return {
        # None drops the resource (no empty `slurm_partition=` in a dry run): Slurm's default partition.
        "slurm_partition": wanted["partition"],
        "gpu": wanted["gpus"],
        "gpu_model": wanted["gpu_model"] if wanted["gpus"] else None,
        "cpus_per_task": wanted["cpus"],
        "mem_mb": wanted["mem_mb"],
        "runtime": wanted["runtime"],
        "nodes": wanted["nodes"],
        "tasks": workers,
        # With an `mpi` resource the plugin runs the job in the batch step and the trainer starts its
        # workers with its own `srun -n <tasks>` (workflow/train/launch.py). For one worker the resource
        # must be absent (None drops it): the plugin then runs the job inside `srun -n1`, a job step,
        # which is where Slurm's time-limit signal goes; the batch step would not hear it.
        "mpi": "srun" if workers > 1 else None,
        # Without "B:", Slurm signals every job step, not the batch shell: the trainer runs inside
        # the step (the jobstep executor's `srun -n1`, or the trainer's own `srun -n <tasks>`), and
        # on SIGTERM it saves a checkpoint and exits (workflow/train/checkpoint.py). With "B:" only the
        # batch shell would hear it, and it does not pass it on.
        "slurm_extra": f"--signal=TERM@{wanted['signal_seconds']}",
    }


@_sorted_keys
def evaluate_params(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Evaluation batch size and the paper target."""
    exp = config["experiments"][experiment]
    return {"batch_size": exp["evaluate"]["batch_size"], "target": exp["target"]}


def converted_models(config: dict[str, Any], experiment: str) -> dict[str, list[str]]:
    """Format name -> the models the experiment writes for it, formats with none left out
    (workflow/deploy/formats.py)."""
    exp = config["experiments"][experiment]
    return formats.converted(exp["model"], exp["convert"])


def written_models(config: dict[str, Any], experiment: str) -> list[str]:
    """Every converted model of the experiment, by the name parity.json and the budgets use, in FORMATS' order."""
    return [model for models in converted_models(config, experiment).values() for model in models]


def skipped_conversions(config: dict[str, Any], experiment: str) -> dict[str, str]:
    """Format -> why the experiment's model is not converted to it (workflow/deploy/formats.py)."""
    exp = config["experiments"][experiment]
    return formats.skipped_conversions(exp["model"], exp["convert"])


def conversion_message(config: dict[str, Any], experiment: str) -> str:
    """What the parity step compares and what it skips with why: its message in `snakemake -n`."""
    written = written_models(config, experiment)
    lines = [f"parity of {experiment}: SavedModel against {', '.join(written) or 'no converted format'}"]
    lines += [f"  {name} skipped: {reason}" for name, reason in sorted(skipped_conversions(config, experiment).items())]
    return "\n".join(lines)


@_sorted_keys
def format_params(config: dict[str, Any], experiment: str, name: str) -> dict[str, Any]:
    """The settings of format `name`'s rule for the experiment: from its convert.<name> section and the models
    it writes."""
    section = config["experiments"][experiment]["convert"][name]
    return formats.BY_NAME[name].params(section, converted_models(config, experiment).get(name, []))


@_sorted_keys
def parity_params(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Golden-batch size and the conversions skipped (with why): all the parity step measures by."""
    return {
        "batch_size": config["experiments"][experiment]["parity"]["batch_size"],
        "skipped": skipped_conversions(config, experiment),
    }


def envmodules(config: dict[str, Any], rule_name: str) -> list[str]:
    """The modules a step loads under `--sdm env-modules`: those for every step, then its own."""
    modules = config.get("envmodules", {})
    return [*modules.get("all", []), *modules.get(rule_name, [])]


@_sorted_keys
def gate_params(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """The budgets of the formats this experiment produces, and the publish override."""
    exp = config["experiments"][experiment]
    written = written_models(config, experiment)
    deploy = exp["deploy"]
    return {
        "budgets": {model: exp["parity"]["budgets"][model] for model in written},
        "publish_anyway": deploy["publish_anyway"],
        "reason": deploy["reason"],
    }


@_sorted_keys
def publish_params(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Which seed is published, under which TF Serving model name and version."""
    exp = config["experiments"][experiment]
    deploy = exp["deploy"]
    return {
        "seed": exp["seeds"][0] if deploy["seed"] is None else deploy["seed"],
        "model_name": deploy["model_name"] or experiment,
        "version": deploy["version"],
    }


@_sorted_keys
def manifest_params(config: dict[str, Any], experiment: str) -> dict[str, Any]:
    """What produced a run's metrics: dataset entry, model, training, evaluation and target (not conversions)."""
    exp = config["experiments"][experiment]
    produced = {key: exp[key] for key in ("dataset", "model", "train", "evaluate", "target")}
    return {"experiment": produced, "dataset": config["datasets"][exp["dataset"]]}


@_sorted_keys
def report_params(config: dict[str, Any]) -> dict[str, Any]:
    """The report's title, per experiment its dataset and target, and the sweeps with their points."""
    experiments = {
        name: {"dataset": exp["dataset"], "target": exp["target"], "seeds": exp["seeds"]}
        for name, exp in config["experiments"].items()
    }
    sweeps = config.get("sweeps", {})  # the report compares a sweep's points (workflow/config/sweep.py)
    return {"title": config["report"]["title"], "experiments": experiments, "sweeps": sweeps}


def main(argv: list[str] | None = None) -> int:
    """`python -m workflow.config FILE...`: check config files as `--replace-workflow-config` would use them.

    Names the file, key and value of every problem, including the line of a YAML tag, which
    Snakemake's own `--configfile` loader refuses without saying where.
    """
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m workflow.config FILE...", file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        try:
            config = load_config(load_yaml(path))
        except ConfigError as error:
            print(f"{path}: {error}" if not str(error).startswith(str(path)) else str(error), file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: ok ({len(config['experiments'])} experiments, {len(runs(config))} runs)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
