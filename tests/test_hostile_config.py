"""Hostile and careless configs (a red team's findings): nothing in a config runs code or lies later.

Each bad config is refused while the DAG is built (a dry run: no job runs) and by
`python -m workflow.config FILE`, with the same message naming the file or key; the two never disagree.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from helpers import MINIMAL, REPO, copy_repository, planned_jobs, snakemake, with_change

from workflow.config import settings as cfg
from workflow.deploy.gate import judge_format
from workflow.evaluate.manifest import check_trained_with
from workflow.evaluate.targets import verdict
from workflow.infra.atomic import write_json


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> pathlib.Path:
    return copy_repository(tmp_path_factory.mktemp("hostile") / "repo")


def checker(*paths: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """`python -m workflow.config FILE...` from the repository."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "workflow.config", *map(str, paths)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120)


def refused_by_both(folder: pathlib.Path, text: str, expected: str, *extra: str) -> str:
    """Write `text` as a config file; the checker and the DAG build both refuse it with `expected`."""
    path = folder / "bad.yaml"
    path.write_text(text)
    checked = checker(path)
    assert checked.returncode == 1 and expected in checked.stderr, checked.stdout + checked.stderr
    result = snakemake(folder, "-n", "--configfile", str(path), "--replace-workflow-config", *extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in output, output[-3000:]
    assert "Job stats" not in output
    return output


# 1. Code from a config file.


def test_a_yte_config_is_refused_and_its_code_runs_only_inside_snakemakes_own_loader(folder, tmp_path):
    """`__use_yte__: true`: the checker refuses it without evaluating; the DAG build refuses it too.
    Snakemake 9 evaluates the expression while loading --configfile, before the workflow exists: the
    test pins that upstream behaviour, which docs/reliability.md describes, so a fix upstream is noticed."""
    marker = tmp_path / "ran"
    text = (
        yaml.safe_dump(MINIMAL)
        + f"__use_yte__: true\nreport:\n  title: ?__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n"
    )

    output = refused_by_both(folder, text, "__use_yte__ makes Snakemake evaluate")

    assert "python -m workflow.config FILE" in output
    assert marker.exists(), "Snakemake no longer evaluates YTE in --configfile: update docs/reliability.md"
    marker.unlink()
    assert checker(folder / "bad.yaml").returncode == 1 and not marker.exists(), "the checker never evaluates"


@pytest.mark.parametrize(
    ("tagged", "tag"),
    [("!!python/name:os.system", "python/name:os.system"), ("!!python/tuple [1, 2]", "python/tuple")],
    ids=["name", "tuple"],
)
def test_python_tags_are_refused_naming_the_tag_and_line(folder, tagged, tag):
    """Snakemake's FullLoader builds these objects; the Snakefile's strict re-read refuses the file by line."""
    text = yaml.safe_dump(MINIMAL) + f"report:\n  title: {tagged}\n"
    output = refused_by_both(folder, text, tag)
    assert f"line {text.count(chr(10))}" in output


# 2. Every pattern matches the whole value; no value holds a line break where one could do harm.

BUILD = {"function": "build_tiny_mobilenet"}


def own_model(code: dict) -> dict:
    return with_change("experiments.exp.model", {"name": "mine", "code": code})


PATTERNED = {  # every `pattern` of configs/schema.yaml: where it applies, and a value it accepts
    "experiment name": (lambda v: {**MINIMAL, "experiments": {v: MINIMAL["experiments"]["exp"]}}, "exp2"),
    "dataset key": (
        lambda v: {
            "datasets": {v: {"tfds_name": "sklearn_digits"}},
            "experiments": {"exp": {"dataset": v, "model": {"name": "mlp"}}},
        },
        "digits2",
    ),  # fmt: skip
    "tfds_name": (lambda v: with_change("datasets.digits.tfds_name", v), "sklearn_digits"),
    "envmodules": (lambda v: with_change("envmodules", {"train": [v]}), "tensorflow/2.21"),
    "deploy.model_name": (lambda v: with_change("experiments.exp.deploy", {"model_name": v}), "digits"),
    "gpu_model": (lambda v: with_change("experiments.exp.resources", {"train": {"gpus": 1, "gpu_model": v}}), "a100"),
    "partition": (lambda v: with_change("experiments.exp.resources", {"train": {"partition": v}}), "gpu"),
    "model.code.file": (lambda v: own_model({"file": v, **BUILD}), "examples/shapes/model.py"),
    "model.code.module": (lambda v: own_model({"module": v, **BUILD}), "examples.shapes.model"),
    "model.code.function": (lambda v: own_model({"file": "examples/shapes/model.py", "function": v}),
                            "build_tiny_mobilenet"),
}  # fmt: skip


def schema_patterns(node: object) -> list[str]:
    if isinstance(node, dict):
        return [
            *([node["pattern"]] if "pattern" in node else []),
            *(p for v in node.values() for p in schema_patterns(v)),
        ]
    if isinstance(node, list):
        return [p for item in node for p in schema_patterns(item)]
    return []


def test_the_table_covers_every_pattern_of_the_schema():
    """A new pattern in the schema must join PATTERNED, so the next test checks it."""
    # $defs/safe_name is the one pattern of both experiment names and dataset keys (and model names).
    assert len(set(schema_patterns(cfg.load_schema()))) == len(PATTERNED) - 1


@pytest.mark.parametrize("where", sorted(PATTERNED))
@pytest.mark.parametrize("ending", ["\n", "\r", "\u2028", " x\n"], ids=["newline", "return", "separator", "word"])
def test_a_trailing_line_break_never_passes_a_pattern(where, ending):
    """Python's `$` matches before a final newline; the loader refuses a line break in any one-line value."""
    build, good = PATTERNED[where]
    cfg.load_config(build(good))
    with pytest.raises(cfg.ConfigError, match="line break|does not match|invalid name|control character"):
        cfg.load_config(build(good + ending))


def test_envmodules_cannot_smuggle_a_shell_command(folder):
    """`module load {names}; {cmd}` under --sdm env-modules: ["x\\n", "touch", "pwned\\n"] is refused before any job."""
    config = with_change("envmodules", {"all": ["x\n", "touch", "pwned\n"]})
    refused_by_both(folder, yaml.safe_dump(config), "line break", "--sdm", "env-modules")
    assert not (folder / "pwned").exists()


# 3. deploy.model_name stays inside the published folder and off its other files.


@pytest.mark.parametrize("name", ["..", ".", "publish.json", "tfjs", "TFLite", "a/b", ".hidden"])
def test_a_model_name_cannot_leave_or_collide_with_the_published_layout(name):
    with pytest.raises(cfg.ConfigError, match="experiments.exp.deploy.model_name"):
        cfg.load_config(with_change("experiments.exp.deploy", {"model_name": name}))


# 4-5. Numbers that are not what the key needs.


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("experiments.exp.train", {"epochs": 2.0}, "experiments.exp.train.epochs: 2.0 is not a whole number"),
        ("experiments.exp.train", {"batch_size": 32.0}, "experiments.exp.train.batch_size: 32.0"),
        ("datasets.digits.shards", {"train": 2.0}, "datasets.digits.shards.train: 2.0"),
        ("experiments.exp.seeds", [1.0], "experiments.exp.seeds[0]: 1.0"),
        ("experiments.exp.model", {"name": "cnn", "filters": [16.0]}, "experiments.exp.model.filters[0]: 16.0"),
        ("experiments.exp.train", {"optimizer": {"learning_rate": math.nan}}, "learning_rate: nan is not a finite"),
        (
            "experiments.exp.target",
            {"metric": "accuracy", "value": 0.9, "source": "x", "tolerance": math.inf},
            "experiments.exp.target.tolerance: inf is not a finite",
        ),  # fmt: skip
        (
            "experiments.exp.parity",
            {"budgets": {"float32": {"min_top1_agreement": math.nan}}},
            "min_top1_agreement: nan",
        ),
    ],
    ids=["epochs", "batch", "shards", "seeds", "filters", "lr-nan", "tolerance-inf", "agreement-nan"],
)
@pytest.mark.parametrize("experiments", [1, cfg.COMPILED_VALIDATION_FROM], ids=["jsonschema", "compiled"])
def test_integer_valued_floats_and_non_finite_numbers_are_refused(path, value, expected, experiments):
    config = with_change(path, value)
    for index in range(experiments - 1):
        config["experiments"][f"copy{index}"] = copy.deepcopy(MINIMAL["experiments"]["exp"])
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load_config(config)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("experiments.exp.deploy", {"model_name": ".."}, "experiments.exp.deploy.model_name"),
        ("experiments.exp.train", {"epochs": 2.0}, "experiments.exp.train.epochs: 2.0 is not a whole number"),
        ("experiments.exp.train", {"optimizer": {"learning_rate": math.nan}}, "learning_rate: nan is not a finite"),
        ("experiments.exp.target", {"metric": "accuracy", "value": 0.9, "source": "x", "tolerance": math.inf},
         "experiments.exp.target.tolerance: inf is not a finite"),
        ("experiments.exp.parity", {"budgets": {"float32": {"min_top1_agreement": math.nan}}},
         "min_top1_agreement: nan"),
        ("datasets.digits.manual_dir", "raw", "datasets.digits.manual_dir: sklearn_digits reads no raw files"),
        ("datasets.digits", {"csv": {"path": "/etc", "label": "y"}}, "datasets.digits.csv.path: /etc is a folder"),
        ("experiments.exp.seeds", ["x" * 10_000], "(10002 characters)"),
    ],
    ids=["model-name", "float-epochs", "lr-nan", "tolerance-inf", "agreement-nan", "manual-dir", "csv-folder", "long"],
)  # fmt: skip
def test_the_checker_and_the_dag_build_refuse_alike(folder, path, value, expected):
    """Items 3, 4, 5, 8 and 12 as files: `python -m workflow.config FILE` and `snakemake -n --configfile FILE`
    refuse each with the same message before any job."""
    refused_by_both(folder, yaml.safe_dump(with_change(path, value)), expected)


def test_results_are_valid_json_and_the_gate_fails_closed_on_nan(tmp_path):
    """NaN and infinity are written as null (valid JSON); a NaN or null measurement never passes a budget or target."""
    write_json(tmp_path / "m.json", {"loss": math.nan, "curve": [1.0, math.inf]})
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail) == {
        "loss": None,
        "curve": [1.0, None],
    }

    budget = {"max_abs_diff": 1e-4, "min_top1_agreement": 1.0, "max_accuracy_drop": 0.005}
    for broken in ({"max_abs_diff": math.nan}, {"max_abs_diff": None}, {"top1_agreement": math.nan},
                   {"accuracy_drop": None, "test_accuracy": None}):  # fmt: skip
        measured = {"max_abs_diff": 0.0, "top1_agreement": 1.0, "accuracy_drop": 0.0, "test_accuracy": 0.9, **broken}
        judged = judge_format("float32", measured, budget)
        assert not judged["within_budget"] and "not a number" in judged["reason"], judged

    target = {"metric": "accuracy", "value": 0.9, "tolerance": 0.0, "direction": "higher", "source": "paper"}
    for value in (math.nan, None):
        assert verdict({"accuracy": value}, target)["passed"] is False


# 6-7. YAML that hides what it holds.


def test_an_alias_bomb_is_refused_fast_with_a_short_message(folder):
    """Nine levels of ten aliases each (10^9 strings when expanded) at a validated key."""
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = yaml.safe_dump(MINIMAL) + "bomb:\n" + "".join(f"  {line}\n" for line in levels) + "report: {title: *a8}\n"

    output = refused_by_both(folder, text, "alias bomb")

    assert len(output) < 20_000


def test_a_key_written_twice_is_refused_naming_both_lines(folder):
    base = yaml.safe_dump(MINIMAL)
    first = base.count("\n") + 1
    text = base + "report:\n  title: first\nreport:\n  title: second\n"
    refused_by_both(folder, text, f"key 'report' is written twice in one mapping (lines {first} and {first + 2})")


# 8, 12. Settings that would be ignored or that fail with an unclear message.


def test_messages_name_the_key_and_say_what_is_wrong(tmp_path):
    cases = [
        (
            with_change("datasets.digits.manual_dir", "raw"),
            "datasets.digits.manual_dir: sklearn_digits reads no raw files",
        ),
        ({"datasets": {False: {"tfds_name": "mnist"}}, "experiments": {}}, "read as the boolean False"),
        (
            with_change("datasets.digits", {"csv": {"path": "/etc", "label": "y"}}),
            "datasets.digits.csv.path: /etc is a folder",
        ),
        (
            with_change("experiments.exp", {"dataset": "digits", "model": {"name": "mlp"}, "seeds": ["x" * 10_000]}),
            "(10002 characters)",
        ),  # fmt: skip
    ]
    for config, expected in cases:
        with pytest.raises(cfg.ConfigError) as caught:
            cfg.load_config(config)
        assert expected in str(caught.value) and len(str(caught.value)) < 1000, str(caught.value)[:2000]

    long_name = tmp_path / "long.yaml"
    long_name.write_text(f"experiments:\n  {'x' * 10_000}: {{dataset: digits}}\n")
    result = checker(long_name)
    assert result.returncode == 1 and "longer than 1024 characters" in result.stderr, result.stderr[-2000:]


# 9. A missing or unfetchable pretrained source fails by name before any job.


@pytest.mark.parametrize(
    ("init_from", "expected"),
    [
        ({"path": "missing/model.keras"}, "init_from.path: missing/model.keras does not exist"),
        ({"path": "/etc/passwd"}, "must be a .keras or .weights.h5 file"),
        ({"hub": "file:///etc/passwd"}, "file:// is not fetched"),
        ({"hub": "ftp://example.org/m.tar.gz"}, "ftp:// is not fetched"),
        ({"hub": "workflow/../configs"}, "not a complete SavedModel"),  # a folder through .., wherever the clone is
        ({"hub": "/etc"}, "not a complete SavedModel"),
    ],
    ids=["path", "not-a-model", "file-url", "ftp", "dotdot", "etc"],
)
def test_a_pretrained_source_that_is_not_there_is_refused_by_key(init_from, expected):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load_config(with_change("experiments.exp.model", {"name": "mlp", "init_from": init_from}))
    assert f"experiments.exp.model.init_from.{next(iter(init_from))}" in str(caught.value)
    assert expected in str(caught.value)


def test_after_a_finished_run_a_changed_config_with_a_missing_source_is_refused_and_nothing_changes(finished, tmp_path):
    """The red team's sequence on a real finished run: training changed and init_from pointed at nothing.
    The dry run and the real run fail by key before any job, and the finished manifest stays as it was;
    with the training change alone, train is planned again (and the manifest after it), not the manifest alone."""
    manifest = finished / "results/runs/digits_mlp/seed0/manifest.json"
    before = manifest.read_bytes()
    config = yaml.safe_load((finished / "configs/default.yaml").read_text())
    experiment = config["experiments"]["digits_mlp"]
    experiment["train"].update(epochs=3, optimizer={"name": "adam", "learning_rate": 0.5})
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    experiment["model"]["init_from"] = {"path": "missing/model.keras"}
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(config))

    for args in (["-n"], ["--cores", "1"]):
        result = snakemake(finished, *args, "--configfile", str(missing))
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert "experiments.digits_mlp.model.init_from.path: missing/model.keras does not exist" in output
        assert "Job stats" not in output, output[-3000:]
    assert manifest.read_bytes() == before
    planned = planned_jobs(snakemake(finished, "-n", "--configfile", str(changed)))
    assert planned.get("train") == 1 and planned.get("manifest") == 1, planned


def test_a_manifest_never_describes_a_model_its_config_did_not_make():
    trained = {"model": {"name": "mlp"}, "train": {"epochs": 30, "optimizer": {"learning_rate": 0.002}}}
    check_trained_with("train.json", trained, copy.deepcopy(trained))
    configured = {"model": {"name": "mlp"}, "train": {"epochs": 3, "optimizer": {"learning_rate": 0.5}}}
    with pytest.raises(ValueError, match=r"train.epochs: trained 30, configured 3.*learning_rate: trained 0.002"):
        check_trained_with("train.json", trained, configured)


def test_the_dry_run_lists_every_planned_step_for_an_empty_results_folder(folder):
    """Every step's outputs are targets (rules/common.smk): the default plans its 24 jobs."""
    jobs = planned_jobs(snakemake(folder, "-n"))
    assert sum(jobs.values()) == 24 and jobs["train"] == 2, jobs
