"""Paper configs: LeNet-5 on real MNIST (offline, tfds) through the whole DAG at a reduced budget; dry runs."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest
import yaml
from helpers import REPO, SHARED_MNIST, copy_repository, planned_jobs, require_mnist, snakemake

from workflow.config import settings as cfg

pytestmark = pytest.mark.dag
PAPERS = sorted((REPO / "configs" / "papers").glob("*.yaml"))


@pytest.mark.parametrize("path", PAPERS, ids=lambda path: path.stem)
def test_paper_config_has_a_complete_target(path):
    """Every paper config loads and each experiment has a target with value, tolerance, direction and source."""
    loaded = cfg.load_config(cfg.load_yaml(path))

    for experiment in loaded["experiments"].values():
        target = experiment["target"]
        assert target is not None
        assert {"metric", "value", "tolerance", "direction", "source"} <= set(target)
        assert len(target["source"]) > 20


@pytest.mark.parametrize(("name", "runs"), [("lenet5_mnist", 3), ("keras_mnist_convnet", 1), ("resnet20_cifar10", 3)])
def test_paper_dag_dry_runs(name, runs, tmp_path):
    """Each paper config alone plans one dataset preparation and one chain per seed (in an empty folder)."""
    config = REPO / "configs" / "papers" / f"{name}.yaml"
    result = snakemake(
        REPO, "-n", "--directory", str(tmp_path), "--configfile", str(config), "--replace-workflow-config"
    )

    planned = planned_jobs(result)

    assert planned["download"] == 1 and planned["tfrecord"] == 1
    assert planned["train"] == runs and planned["parity"] == runs and planned["report"] == 1


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """configs/papers/lenet5_mnist.yaml with 1 epoch and 1 seed, from the shared MNIST files, through the whole DAG."""
    mnist = require_mnist()
    folder = copy_repository(tmp_path_factory.mktemp("papers") / "repo")
    config = yaml.safe_load((folder / "configs/papers/lenet5_mnist.yaml").read_text())
    config["datasets"]["mnist_lecun"]["manual_dir"] = str(mnist)
    experiment = config["experiments"]["lenet5_mnist"]
    experiment["seeds"] = [0]
    experiment["train"]["epochs"] = 1
    experiment["train"]["schedule"] = {"name": "constant"}
    (folder / "reduced.yaml").write_text(yaml.safe_dump(config))

    result = snakemake(folder, "--cores", "2", "--configfile", "reduced.yaml", "--replace-workflow-config")

    assert result.returncode == 0, result.stderr[-6000:]
    return folder


def test_lenet5_learns_mnist_in_one_epoch(lenet_run):
    """One epoch of LeNet-5 on the 60,000 MNIST train images: under 5% error on the 10,000 test images (3.2% seen)."""
    metrics = json.loads((lenet_run / "results/runs/lenet5_mnist/seed0/metrics.json").read_text())

    assert metrics["examples"] == 10_000
    assert metrics["error"] < 0.05
    assert metrics["verdict"]["metric"] == "error"


def test_manifest_records_the_raw_mnist_checksums(lenet_run):
    """The run manifest lists the sha256 of each original MNIST file, equal to the files' own digests."""
    manifest = json.loads((lenet_run / "results/runs/lenet5_mnist/seed0/manifest.json").read_text())

    raw = manifest["dataset"]["raw_files"]
    assert sorted(raw) == sorted(path.name for path in SHARED_MNIST.glob("*.gz"))
    for name, entry in raw.items():
        assert entry["sha256"] == hashlib.sha256((SHARED_MNIST / name).read_bytes()).hexdigest()
    assert manifest["dataset"]["name"] == "mnist" and manifest["dataset"]["version"] == "3.0.1"
    assert manifest["dataset"]["splits"] == {"train": 60_000, "test": 10_000}


def test_lenet5_conversions_hold_parity(lenet_run):
    """Every TFLite variant and TF.js stay within their budgets on a 256-image golden batch of MNIST."""
    run = lenet_run / "results/runs/lenet5_mnist/seed0"
    parity = json.loads((run / "parity.json").read_text())
    verdict = json.loads((run / "deploy/verdict.json").read_text())

    assert parity["golden_examples"] == 256
    assert sorted(verdict["formats"]) == ["dynamic_range", "float16", "float32", "int8", "integer_only", "tfjs"]
    assert all(entry["within_budget"] for entry in verdict["formats"].values()), verdict["formats"]
    assert parity["formats"]["tfjs"]["max_abs_diff"] < 1e-4


def test_report_judges_the_mean(lenet_run):
    """The reproduction table names the paper's 0.95% and gives a verdict on the mean error."""
    markdown = (lenet_run / "results/report/reproduction.md").read_text()

    assert "| lenet5_mnist | 1 | error | 0.009500 |" in markdown
    assert "LeCun et al. 1998" in markdown
