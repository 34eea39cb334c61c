"""How a user points the workflow at their config and overrides keys from the command line (dry runs)."""

from __future__ import annotations

import pytest
from helpers import planned_jobs, snakemake, with_change

pytestmark = pytest.mark.dag


def test_a_configfile_alone_is_the_config(finished):
    """`--configfile` replaces the embedded default: the paper's experiments only, no digits run."""
    result = snakemake(finished, "-n", "--configfile", "configs/papers/lenet5_mnist.yaml")
    jobs = planned_jobs(result)
    output = result.stdout + result.stderr

    assert jobs["train"] == 3 and jobs["download"] == 1, jobs
    planned = [line for line in output.splitlines() if line.strip().startswith(("output:", "wildcards:"))]
    assert planned and not [line for line in planned if "digits" in line], planned
    assert "exp=lenet5_mnist" in output


def test_without_a_configfile_the_default_is_finished(finished):
    assert planned_jobs(snakemake(finished, "-n")) == {}


def test_the_command_line_overrides_a_nested_number_with_its_type(finished):
    """`--config` with nested numbers and a list: typed by the schema, so only digits_mlp's training reruns."""
    override = "experiments={digits_mlp: {train: {epochs: 3, optimizer: {learning_rate: 0.01}}}}"
    jobs = planned_jobs(snakemake(finished, "-n", "--config", override))

    assert jobs["train"] == 1 and "download" not in jobs and "tfrecord" not in jobs, jobs
    changed = planned_jobs(
        snakemake(finished, "-n", "--config", "experiments={digits_cnn: {model: {filters: [8, 16]}}}")
    )
    assert changed["train"] == 1, changed


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("experiments={digits_mlp: {train: {epochs: three}}}", "experiments.digits_mlp.train.epochs: 'three'"),
        ("experiments={digits_mlp: {train: {epochs: 2.0}}}", "epochs: 2.0 is not a whole number"),
        ("experiments={digits_mlp: {train: {epochz: 3}}}", "'epochz' was unexpected"),
    ],
    ids=["text", "float", "unknown-key"],
)
def test_a_bad_command_line_value_is_refused_by_key(finished, override, expected):
    result = snakemake(finished, "-n", "--config", override)
    assert result.returncode != 0 and expected in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def test_a_title_that_looks_like_a_number_stays_text(finished):
    """Where the schema takes text, the command line's text is kept: only the report reruns."""
    assert planned_jobs(snakemake(finished, "-n", "--config", "report={title: 2024}")) == {"report": 1, "all": 1}


@pytest.mark.parametrize(
    "override",
    [
        "experiments={digits_mlp: {runtime: {steps_per_execution: 4}}}",
        "experiments={digits_mlp: {runtime: {checkpoint: {every_epochs: 5, every_steps: 100}}}}",
        "experiments={digits_mlp: {runtime: {tpu: {name: my-tpu, zone: us-central1-b, project: lab}}}}",
        "experiments={digits_mlp: {resources: {train: {partition: gpu, mem_mb: 8000, runtime: 120}}}}",
    ],
    ids=["steps_per_execution", "checkpoint", "tpu", "resources"],
)
def test_how_and_where_training_runs_reruns_nothing(finished, override):
    """`runtime` and `resources` are not the train step's params (Model Garden's trainer/runtime split)."""
    assert planned_jobs(snakemake(finished, "-n", "--config", override)) == {}


def test_the_node_count_is_not_part_of_the_train_steps_params():
    """resources.train.nodes needs several workers (one per node at most), whose finished run is too costly
    for a dry run here: the train step's params, its cache key, are the same for 1 and 2 nodes."""
    from workflow.config import settings as cfg

    def params(nodes: int) -> dict:
        config = with_change("experiments.exp.train", {"workers": 2})
        config["experiments"]["exp"]["resources"] = {"train": {"nodes": nodes}}
        return cfg.train_params(cfg.load_config(config), "exp")

    assert params(1) == params(2) and params(1)["train"]["workers"] == 2


def test_what_training_computes_still_retrains(finished):
    """The counterpart: a `train` key (precision) reruns training and what follows, for that experiment only."""
    jobs = planned_jobs(snakemake(finished, "-n", "--config", "experiments={digits_mlp: {train: {jit_compile: true}}}"))
    assert jobs["train"] == 1 and jobs["evaluate"] == 1, jobs
