"""Config loading: defaults, validation errors that name key and value, and the per-step slices."""

from __future__ import annotations

import copy
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml
from helpers import MINIMAL, REPO, copy_repository, planned_jobs, snakemake, with_change

from workflow.config import settings as cfg
from workflow.deploy import formats
from workflow.deploy.gate import NEXT_TO_THE_MODEL


def test_defaults_are_filled_everywhere():
    """A minimal config gains every default of the schema, nested ones included."""
    loaded = cfg.load_config(MINIMAL)

    experiment = loaded["experiments"]["exp"]
    assert experiment["seeds"] == [0]
    assert experiment["train"]["optimizer"] == {
        "name": "adam",
        "learning_rate": 0.001,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    assert experiment["model"] == {"name": "mlp", "hidden_units": [128], "dropout": 0.0, "init_from": None}
    assert experiment["parity"]["budgets"]["float32"] == {
        "max_abs_diff": 1e-4, "min_top1_agreement": 1.0, "max_accuracy_drop": None}  # fmt: skip
    assert experiment["parity"]["budgets"]["int8"]["max_accuracy_drop"] == 0.005
    assert experiment["deploy"] == {"seed": None, "model_name": None, "version": 1, "publish_anyway": False,
                                    "reason": None}  # fmt: skip
    assert experiment["target"] is None
    assert loaded["datasets"]["digits"]["shards"] == {"train": 4, "validation": 1, "test": 1}


def test_the_input_is_not_modified():
    """load_config works on a copy, so Snakemake's own config dict stays as the user wrote it."""
    raw = copy.deepcopy(MINIMAL)

    cfg.load_config(raw)

    assert raw == MINIMAL


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("experiments.exp.train", {"epochs": -1}, "experiments.exp.train.epochs: -1"),
        ("experiments.exp.train", {"epochs": "ten"}, "experiments.exp.train.epochs: 'ten'"),
        ("experiments.exp.train", {"batch_size": 1.5}, "experiments.exp.train.batch_size: 1.5"),
        ("experiments.exp.train", {"epochz": 3}, "'epochz' was unexpected"),
        ("experiments.exp.model", {"name": "resnet9000"}, "experiments.exp.model.name: 'resnet9000'"),
        ("experiments.exp.model", {"name": "mlp", "filters": [3]}, "'filters' was unexpected"),
        ("experiments.exp.dataset", "nope", "experiments.exp.dataset: 'nope' is not a key of datasets"),
        ("experiments.exp.train", {"strategy": "horovod"}, "experiments.exp.train.strategy: 'horovod'"),
        ("datasets.digits.tfds_name", "../etc", "datasets.digits.tfds_name: '../etc'"),
        ("experiments.exp.convert", {"tflite": {"variants": ["int4"]}}, "'int4'"),
        ("experiments.exp.train", {"optimizer": {"learning_rate": 0}}, "learning_rate: 0"),
        ("experiments.exp.train", {"in_memory": "sometimes"}, "in_memory: 'sometimes'"),
        ("experiments.exp.model", {"name": "mlp", "init_from": {"path": 3}}, "init_from.path: 3"),
    ],
)
@pytest.mark.parametrize("experiments", [1, cfg.COMPILED_VALIDATION_FROM], ids=["jsonschema", "compiled"])
def test_bad_values_are_refused_naming_key_and_value(path, value, expected, experiments):
    """Each bad value raises ConfigError whose message contains the key path and the value, also in a
    config large enough for the compiled validators (the faulty experiment among valid copies)."""
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load_config(with_copies(with_change(path, value), experiments - 1))

    assert expected in str(caught.value)


def with_copies(config: dict, copies: int) -> dict:
    """`config` plus `copies` valid copies of MINIMAL's experiment."""
    for index in range(copies):
        config["experiments"][f"copy{index:04d}"] = copy.deepcopy(MINIMAL["experiments"]["exp"])
    return config


@pytest.mark.parametrize("name", ["a/b", "..", "../up", "x y", "", "-dash"])
@pytest.mark.parametrize("experiments", [1, cfg.COMPILED_VALIDATION_FROM], ids=["jsonschema", "compiled"])
def test_unsafe_experiment_names_are_refused(name, experiments):
    """Experiment names become folders: '/', '..', spaces and empty names are refused by name."""
    bad = copy.deepcopy(MINIMAL)
    bad["experiments"] = {name: bad["experiments"]["exp"]}
    bad = with_copies(bad, experiments - 1)

    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load_config(bad)

    assert repr(name) in str(caught.value)
    assert "experiments" in str(caught.value)


def test_unknown_top_level_key_lists_allowed_keys():
    """A misspelt top-level key is refused, and the message lists what is allowed."""
    bad = {**copy.deepcopy(MINIMAL), "experiment": {}}

    with pytest.raises(cfg.ConfigError, match="allowed keys: datasets, envmodules, experiments, report"):
        cfg.load_config(bad)


def test_piecewise_schedule_needs_one_factor_per_boundary():
    """A piecewise schedule with 2 boundaries and 1 factor is refused with both lists shown."""
    bad = with_change(
        "experiments.exp.train", {"schedule": {"name": "piecewise", "boundaries": [2, 4], "factors": [0.1]}}
    )

    with pytest.raises(cfg.ConfigError, match=r"boundaries=\[2, 4\] and factors=\[0.1\]"):
        cfg.load_config(bad)


def test_yaml_with_python_tag_is_refused(tmp_path):
    """A YAML file with a Python object tag is refused by the safe loader, never executed."""
    evil = tmp_path / "evil.yaml"
    evil.write_text("datasets: !!python/object/apply:os.system ['touch pwned']\n")

    with pytest.raises(cfg.ConfigError, match="evil.yaml"):
        cfg.load_yaml(evil)

    assert not (tmp_path / "pwned").exists()


def test_default_config_is_valid(repo):
    """configs/default.yaml loads and names two experiments on one dataset."""
    loaded = cfg.load_config(cfg.load_yaml(repo / "configs" / "default.yaml"))

    assert cfg.dataset_names(loaded) == ["digits"]
    assert len(cfg.runs(loaded)) == 2


def test_only_the_calibrated_variants_see_the_calibration_size():
    """representative_examples changes int8's and integer_only's settings only (one tflite job converts all)."""
    base = cfg.format_params(cfg.load_config(MINIMAL), "exp", "tflite")
    changed = cfg.format_params(
        cfg.load_config(with_change("experiments.exp.convert", {"tflite": {"representative_examples": 7}})),
        "exp",
        "tflite",
    )

    assert sorted(base["variants"]) == ["dynamic_range", "float16", "float32", "int8", "integer_only"]
    for variant in ("float32", "float16", "dynamic_range"):
        assert base["variants"][variant] == changed["variants"][variant] == {}
    for variant in ("int8", "integer_only"):
        assert changed["variants"][variant] == {"representative_examples": 7} != base["variants"][variant]


def test_parity_budgets_cover_exactly_the_produced_formats():
    """Without TF.js and with two TFLite variants, the gate gets exactly those two budgets."""
    loaded = cfg.load_config(
        with_change(
            "experiments.exp.convert", {"tflite": {"variants": ["float32", "int8"]}, "tfjs": {"enabled": False}}
        )
    )

    assert sorted(cfg.gate_params(loaded, "exp")["budgets"]) == ["float32", "int8"]
    assert cfg.converted_models(loaded, "exp") == {"tflite": ["float32", "int8"]}  # no tfjs job, no tfjs input
    # A format with nothing to write gets no job (an empty tflite folder was converted before).
    none = cfg.load_config(with_change("experiments.exp.convert", {"tflite": {"variants": []}}))
    assert cfg.converted_models(none, "exp") == {"tfjs": ["tfjs"]}
    assert cfg.conversion_message(none, "exp") == "parity of exp: SavedModel against tfjs"


def test_the_schema_and_the_formats_agree():
    """Each deployment format of workflow/deploy/formats.py has its `convert.<name>` section and a budget for each model
    it writes, and the schema has no section or budget of a format that is not in the list."""
    schema = cfg.load_schema()["$defs"]
    budgets = schema["parity"]["properties"]["budgets"]["properties"]

    assert set(schema["convert"]["properties"]) == set(formats.BY_NAME)
    assert set(budgets) == {model for fmt in formats.FORMATS for model in fmt.models}
    variants = schema["convert"]["properties"]["tflite"]["properties"]["variants"]["items"]["enum"]
    assert tuple(variants) == formats.BY_NAME["tflite"].models
    # Every format's name is kept out of the published folder's model name, and each has its rule.
    assert set(formats.BY_NAME) <= set(NEXT_TO_THE_MODEL)
    rules = "".join(path.read_text() for path in (pathlib.Path(__file__).parent.parent / "rules").glob("*.smk"))
    for fmt in formats.FORMATS:
        assert f"\nrule {fmt.name}:\n" in rules and f'directory(f"{{RUN}}/{fmt.name}")' in rules, fmt.name


# A made-up format that republishes the SavedModel as it is: what a new format takes, and nothing more.
ECHO_ENTRY = """
FORMATS += (
    Format(name="echo", models=("echo",), chosen=lambda section: ["echo"] if section["enabled"] else [],
           params=lambda section, models: {}, cannot_take=lambda model, convert: {}, parity_inputs=(),
           runtime="workflow.deploy.echo"),
)
BY_NAME = {fmt.name: fmt for fmt in FORMATS}
RUNTIME_MODULES = tuple(fmt.runtime for fmt in FORMATS)
SKIP_KEYS = tuple(key for fmt in FORMATS for key in fmt.skip_keys())
"""
ECHO_MODULE = """
import shutil
from workflow.deploy.converted import ConvertedModel, bytes_on_disk
from workflow.deploy.export import predict_saved_model
def convert(saved_model_dir, output_dir):
    shutil.copytree(saved_model_dir, output_dir)
def converted_models(folder, inputs, example):
    predict = lambda chunk: predict_saved_model(folder, chunk)
    return [ConvertedModel("echo", predict, bytes_on_disk(folder), lambda: 0.0)]
"""
ECHO_RULE = """
rule echo:
    input:
        saved_model=f"{RUN}/saved_model",
    output:
        directory(f"{RUN}/echo"),
    params:
        code=code("workflow.deploy.echo"),
    log:
        log_path("echo", "{exp}/seed{seed}"),
    script:
        "../scripts/echo.py"
"""


def test_a_new_format_is_its_entry_its_module_its_rule_and_its_schema_section(tmp_path):
    """Added to a copy of the repository as those four pieces (and the rule's script), a format is planned for
    every run, measured by parity, judged by the gate with its own budget and published: nothing else changes."""
    folder = copy_repository(tmp_path / "repo")
    with (folder / "workflow/deploy/formats.py").open("a") as handle:
        handle.write(ECHO_ENTRY)
    (folder / "workflow/deploy/echo.py").write_text(ECHO_MODULE)
    with (folder / "rules/convert.smk").open("a") as handle:
        handle.write(ECHO_RULE)
    (folder / "scripts/echo.py").write_text("from workflow.deploy.echo import convert\n"
                                            "convert(snakemake.input.saved_model, snakemake.output[0])\n")  # fmt: skip
    schema = (folder / "configs/schema.yaml").read_text()
    budget = '          tfjs: {$ref: "#/$defs/budget"'
    section = "      tfjs:\n        type: object\n"
    assert budget in schema and section in schema
    limits = "{max_abs_diff: 0.0, min_top1_agreement: 1.0, max_accuracy_drop: 0.0}"
    schema = schema.replace(budget, f'          echo: {{$ref: "#/$defs/budget", default: {limits}}}\n' + budget)
    echo = "      echo:\n        type: object\n        default: {}\n"
    echo += "        properties: {enabled: {type: boolean, default: true}}\n"
    (folder / "configs/schema.yaml").write_text(schema.replace(section, echo + section, 1))

    result = snakemake(folder, "-n")
    planned = planned_jobs(result)
    budgets = subprocess.run(
        [sys.executable, "-c", "from workflow.config import settings as s; c = s.load_config(s.load_yaml("
         "'configs/default.yaml')); print(sorted(s.gate_params(c, 'digits_mlp')['budgets']))"],
        cwd=folder, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(folder)},
    ).stdout  # fmt: skip

    assert planned["echo"] == planned["tflite"] == planned["parity"] == 2, planned
    assert (
        "parity of digits_mlp: SavedModel against float32, float16, dynamic_range, int8, integer_only, tfjs, echo"
        in (result.stdout + result.stderr)
    )
    assert "'echo'" in budgets and "'tfjs'" in budgets, budgets
    # publish's copies come from the list too: the echo folder is an input of the publish job.
    publish = (result.stdout + result.stderr).split("rule publish:", 1)[1].split("output:", 1)[0]
    assert "results/runs/digits_mlp/seed0/echo" in publish or "results/runs/digits_cnn/seed0/echo" in publish, publish


def test_key_order_does_not_change_a_slice():
    """Two configs that differ only in key order give slices with the same repr (what Snakemake compares)."""
    forward = cfg.load_config(with_change("experiments.exp.train", {"epochs": 3, "batch_size": 8}))
    backward = cfg.load_config(with_change("experiments.exp.train", {"batch_size": 8, "epochs": 3}))

    assert repr(cfg.train_params(forward, "exp")) == repr(cfg.train_params(backward, "exp"))


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ({"workers": 2, "strategy": "mirrored"}, "2 workers need strategy multi_worker_mirrored"),
        ({"workers": 2, "nodes": 3}, "train.nodes: moved to experiments.exp.resources.train.nodes"),
        ({"workers": 2, "in_memory": True}, "in_memory: true holds the split in one process"),
    ],
)
def test_worker_settings_are_checked(train, expected):
    """Several workers need a multi-worker strategy, no more nodes than workers, and a streamed split."""
    with pytest.raises(cfg.ConfigError, match=expected):
        cfg.load_config(with_change("experiments.exp.train", train))


def test_more_nodes_than_workers_is_refused():
    config = with_change("experiments.exp.train", {"workers": 2})
    config["experiments"]["exp"]["resources"] = {"train": {"nodes": 3}}
    with pytest.raises(cfg.ConfigError, match=r"resources.train.nodes: 3 nodes for 2 workers"):
        cfg.load_config(config)


def test_train_resources_follow_the_experiment():
    """GPUs, model, partition and tasks reach the Slurm resources; the mpi resource only for several workers."""
    loaded = cfg.load_config(
        with_change("experiments.exp", {"dataset": "digits", "model": {"name": "mlp"}, "train": {"workers": 2},
                                        "resources": {"train": {"partition": "gpu", "gpus": 1, "gpu_model": "a100"}}})
    )  # fmt: skip

    resources = cfg.train_resources(loaded, "exp")

    assert resources["slurm_partition"] == "gpu" and resources["gpu"] == 1 and resources["gpu_model"] == "a100"
    assert resources["tasks"] == 2 and resources["mpi"] == "srun"
    assert resources["slurm_extra"] == "--signal=TERM@120"
    assert cfg.train_resources(cfg.load_config(MINIMAL), "exp")["mpi"] is None


def test_a_partial_budget_keeps_the_formats_other_defaults():
    """Setting one limit of int8's budget keeps int8's default for the others."""
    loaded = cfg.load_config(with_change("experiments.exp.parity", {"budgets": {"int8": {"max_abs_diff": 0.1}}}))

    assert loaded["experiments"]["exp"]["parity"]["budgets"]["int8"] == {
        "max_abs_diff": 0.1, "min_top1_agreement": None, "max_accuracy_drop": 0.005}  # fmt: skip


def test_publish_anyway_needs_a_reason_and_a_known_seed():
    """deploy.publish_anyway without a reason, or a deploy.seed not in seeds, is refused by name."""
    with pytest.raises(cfg.ConfigError, match="reason"):
        cfg.load_config(with_change("experiments.exp.deploy", {"publish_anyway": True}))
    with pytest.raises(cfg.ConfigError, match=r"experiments.exp.deploy.seed: 7 is not one of seeds \[0\]"):
        cfg.load_config(with_change("experiments.exp.deploy", {"seed": 7}))


@pytest.mark.parametrize("differ", [False, True], ids=["same", "differ"])
def test_each_train_job_gets_its_experiments_resources_in_the_plan(differ, tmp_path):
    """A dry run: two experiments' train jobs ask for their own partition and GPUs when the experiments
    differ, and for the shared ones when they agree (then plain values in the rule: rules/common.smk)."""
    config = cfg.load_yaml(REPO / "configs" / "default.yaml")
    gpu = {"train": {"partition": "gpu", "gpus": 1, "gpu_model": "a100", "runtime": 90}}
    config["experiments"]["digits_cnn"]["resources"] = gpu
    if not differ:
        config["experiments"]["digits_mlp"]["resources"] = copy.deepcopy(gpu)
    (tmp_path / "resources.yaml").write_text(yaml.safe_dump(config))

    planned = snakemake(REPO, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "--until", "train",
                        "--configfile", str(tmp_path / "resources.yaml"))  # fmt: skip

    assert planned.returncode == 0, planned.stderr[-3000:]
    jobs = (planned.stdout + planned.stderr).split("rule train:")[1:]
    asked = {re.search(r"exp=(\w+)", job).group(1): re.search(r"resources: (.*)", job).group(1) for job in jobs}
    assert "slurm_partition=gpu" in asked["digits_cnn"] and "gpu=1" in asked["digits_cnn"], asked
    assert "gpu_model=a100" in asked["digits_cnn"] and "runtime=90" in asked["digits_cnn"], asked
    if differ:
        assert "slurm_partition" not in asked["digits_mlp"] and "gpu=0" in asked["digits_mlp"], asked
        assert "gpu_model" not in asked["digits_mlp"] and "runtime=60" in asked["digits_mlp"], asked
    else:
        assert asked["digits_mlp"] == asked["digits_cnn"], asked
