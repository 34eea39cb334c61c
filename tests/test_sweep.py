"""Sweeps: a grid or a random search over an experiment's keys expands into runs named from their values;
adding a value adds only the new runs (a real run, then a dry run)."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from helpers import REPO, copy_repository, planned_jobs, snakemake

from workflow.config.settings import ConfigError, load_config, load_yaml
from workflow.config.sweep import expand_sweeps, point_name

DEFAULT = load_yaml(REPO / "configs" / "default.yaml")


def with_sweep(sweep: dict) -> dict:
    """The embedded default with digits_mlp swept and digits_cnn left out."""
    config = copy.deepcopy(DEFAULT)
    config["experiments"] = {"digits_mlp": {**config["experiments"]["digits_mlp"], "sweep": sweep}}
    return config


def test_a_grid_is_every_combination_named_from_its_values():
    grid = {"train.optimizer.learning_rate": [0.01, 0.002], "model.dropout": [0, 0.5]}
    config = load_config(with_sweep({"grid": grid}))

    names = list(config["experiments"])
    assert names == [
        "digits_mlp-learning_rate_0p01-dropout_0",
        "digits_mlp-learning_rate_0p01-dropout_0p5",
        "digits_mlp-learning_rate_0p002-dropout_0",
        "digits_mlp-learning_rate_0p002-dropout_0p5",
    ]
    point = config["experiments"]["digits_mlp-learning_rate_0p002-dropout_0p5"]
    assert (point["train"]["optimizer"]["learning_rate"], point["model"]["dropout"]) == (0.002, 0.5)
    assert point["train"]["optimizer"]["name"] == "adam"  # the rest of the experiment as it was
    assert config["sweeps"]["digits_mlp"]["keys"] == ["train.optimizer.learning_rate", "model.dropout"]
    assert config["sweeps"]["digits_mlp"]["points"]["digits_mlp-learning_rate_0p01-dropout_0"] == {
        "train.optimizer.learning_rate": 0.01,
        "model.dropout": 0,
    }


def test_a_random_search_keeps_its_first_points_when_it_grows():
    space = {
        "train.optimizer.learning_rate": {"log_uniform": [0.0001, 0.1]},
        "model.dropout": {"uniform": [0, 0.5]},
        "train.batch_size": {"choice": [16, 32, 64]},
        "train.epochs": {"int_uniform": [2, 9]},
    }
    five = load_config(with_sweep({"random": {"points": 5, "seed": 3, "space": space}}))["sweeps"]["digits_mlp"]
    eight = load_config(with_sweep({"random": {"points": 8, "seed": 3, "space": space}}))["sweeps"]["digits_mlp"]
    other = load_config(with_sweep({"random": {"points": 5, "seed": 4, "space": space}}))["sweeps"]["digits_mlp"]

    assert list(eight["points"])[:5] == list(five["points"]) and len(eight["points"]) == 8
    assert list(other["points"]) != list(five["points"])
    for values in eight["points"].values():
        assert 0.0001 <= values["train.optimizer.learning_rate"] <= 0.1
        assert 0 <= values["model.dropout"] <= 0.5
        assert values["train.batch_size"] in (16, 32, 64) and 2 <= values["train.epochs"] <= 9


def test_a_random_search_that_draws_the_same_point_twice_runs_it_once():
    _, sweeps = expand_sweeps(
        {"x": {"sweep": {"random": {"points": 30, "space": {"train.batch_size": {"choice": [16, 32]}}}}}}
    )

    assert sorted(sweeps["x"]["points"]) == ["x-batch_size_16", "x-batch_size_32"]


def test_long_names_stay_within_the_limit_and_apart():
    values = {f"train.optimizer.very_long_option_name_{index}": 0.123456 for index in range(3)}
    other = {**values, "train.optimizer.very_long_option_name_2": 0.5}

    assert len(point_name("experiment", values)) <= 64
    assert point_name("experiment", values) != point_name("experiment", other)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"grid": {"train.optimizer.learning_rat": [0.1]}}, "'learning_rat' was unexpected"),
        ({"grid": {"train.epochs": [0]}}, "experiments.digits_mlp.sweep made digits_mlp-epochs_0 with train.epochs: 0"),
        ({"grid": {"train.epochs": []}}, "experiments.digits_mlp.sweep.grid.train.epochs: a non-empty list"),
        ({"grid": {"seeds": [[1], [2]]}}, "experiments.digits_mlp.sweep.grid.seeds: cannot be swept"),
        ({"grid": {"model.dropout": [0.1]}, "random": {}}, "give either grid"),
        ({"random": {"points": 3, "space": {"model.dropout": {"normal": [0, 1]}}}}, "random.space.model.dropout"),
        ({"random": {"points": 3, "space": {"model.dropout": {"uniform": [1, 0]}}}}, "low < high"),
        ({"random": {"points": 3, "space": {"train.optimizer.learning_rate": {"log_uniform": [0, 1]}}}}, "> 0"),
        ({"random": {"points": 0, "space": {"model.dropout": {"uniform": [0, 1]}}}}, "random.points"),
        # 10^40 combinations: refused from the list lengths, before any is made
        ({"grid": {f"model.k{index}": list(range(10)) for index in range(40)}}, "at most 10,000 points"),
    ],
    ids=["unknown-key", "bad-value", "empty", "seeds", "both", "sampler", "reversed", "log-zero", "no-points", "huge"],
)
def test_a_bad_sweep_is_refused_naming_the_sweep_and_key(sweep, expected):
    with pytest.raises(ConfigError) as error:
        load_config(with_sweep(sweep))

    assert expected in str(error.value)


def test_adding_a_value_adds_only_the_new_runs_and_tensorboard_shows_the_sweep(tmp_path):
    """Two points trained and evaluated for real, their HParams sessions read back by a real TensorBoard server;
    with a third value the dry run plans that point's training alone (and its evaluation and the sessions)."""
    folder = copy_repository(tmp_path / "repo")
    config = with_sweep({"grid": {"train.optimizer.learning_rate": [0.01, 0.002]}})
    config["experiments"]["digits_mlp"]["train"]["epochs"] = 1
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    hparams = "results/runs/_hparams/digits_mlp"

    ran = snakemake(folder, "--configfile", str(path), "--cores", "2", hparams)
    assert ran.returncode == 0, ran.stderr[-4000:]
    groups = tensorboard_session_groups(folder / "results" / "runs", "train.optimizer.learning_rate", "test/accuracy")
    config["experiments"]["digits_mlp"]["sweep"]["grid"]["train.optimizer.learning_rate"].append(0.0005)
    path.write_text(yaml.safe_dump(config))
    planned = snakemake(folder, "--configfile", str(path), "-n", "--until", "train")
    planned_sessions = snakemake(folder, "--configfile", str(path), "-n", hparams)

    assert planned_jobs(planned) == {"train": 1}
    assert planned_jobs(planned_sessions) == {"train": 1, "evaluate": 1, "hparams": 1}
    assert "digits_mlp-learning_rate_0p0005" in planned.stdout + planned.stderr
    for point, rate in (("digits_mlp-learning_rate_0p01", 0.01), ("digits_mlp-learning_rate_0p002", 0.002)):
        run = folder / "results" / "runs" / point / "seed0"
        assert (run / "model.keras").is_file()
        accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
        assert groups[point]["hparams"] == {"train.optimizer.learning_rate": rate}
        assert groups[point]["metrics"]["test/accuracy"] == pytest.approx(accuracy, rel=1e-6)  # float32 in the event
    assert len(groups) == 2


def tensorboard_session_groups(logdir: pathlib.Path, hparam: str, metric: str) -> dict[str, dict]:
    """`tensorboard --logdir logdir` (a real server, on a free port): its HParams session groups, by name."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", "0", "--reload_interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = None
        for line in server.stdout:  # "TensorBoard 2.21.0 at http://localhost:PORT/ (Press CTRL+C to quit)"
            if match := re.search(r"at (http://\S+/) ", line):
                url = match.group(1)
                break
        assert url, "tensorboard did not start"
        request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "startIndex": 0, "sliceSize": 100,
                   "colParams": [{"hparam": hparam, "includeInResult": True},
                                 {"metric": {"tag": metric, "group": ""}, "includeInResult": True}],
                   "aggregationType": "AGGREGATION_AVG"}  # fmt: skip
        for _ in range(30):  # the server loads the logs in the background
            answer = post_json(f"{url}data/plugin/hparams/session_groups", request)
            if answer.get("totalSize"):
                break
            time.sleep(1)
    finally:
        server.kill()
        server.wait()
    return {
        group["name"]: {
            "hparams": group["hparams"],
            "metrics": {value["name"]["tag"]: value["value"] for value in group["metricValues"]},
        }
        for group in answer["sessionGroups"]
    }


def post_json(url: str, body: dict) -> dict:
    """A POST as TensorBoard's own front end sends it (its XSRF header included)."""
    headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_compare_names_the_keys_that_differ_and_how_each_metric_changed(finished, tmp_path):
    """python -m workflow.evaluate.compare on the default's two runs: model.name differs, accuracy's change is B - A."""
    a, b = (finished / "results" / "runs" / name / "seed0" for name in ("digits_mlp", "digits_cnn"))

    def compare(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "workflow.evaluate.compare", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)

    result = json.loads(compare(str(a), str(b), "--json").stdout)
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (a, b)]

    assert result["config"]["model.name"] == ["mlp", "cnn"]
    assert "seed" not in result["config"] and "train.optimizer.name" not in result["config"]  # equal: not listed
    first, second = metrics[0]["accuracy"], metrics[1]["accuracy"]
    assert result["metrics"]["accuracy"] == [first, second, second - first]
    assert "confusion_matrix" not in result["metrics"]
    text = compare(str(a), str(b)).stdout
    assert "model.name" in text and "->" in text and f"{second - first:+.6g}" in text
    missing = compare(str(a), str(tmp_path))
    assert missing.returncode != 0 and f"{tmp_path}: no train.json" in missing.stderr


def test_the_worked_example_plans_six_points_on_one_dataset(tmp_path):
    """configs/sweeps/lenet5_lr_batch.yaml (docs/sweeps.md): 3 x 2 points, each a training; one download and
    one tfrecord job for all of them."""
    config = str(REPO / "configs" / "sweeps" / "lenet5_lr_batch.yaml")

    planned = snakemake(REPO, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "--configfile", config)

    jobs = planned_jobs(planned)
    assert (jobs["download"], jobs["tfrecord"], jobs["train"], jobs["hparams"], jobs["report"]) == (1, 1, 6, 1, 1)
    assert "lenet5-learning_rate_0p03-batch_size_128" in planned.stdout + planned.stderr
