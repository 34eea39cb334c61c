"""The whole DAG through snakemake on the embedded default, then the caching contract by dry runs.

The repository is copied to a temporary folder and run there (jobs import the copy through
PYTHONPATH), so a test can edit a workflow/ module without touching the checkout. The side
environments are built once per machine in the shared cache (workflow/infra/envs.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest
import yaml
from helpers import CHROMIUM_ARGS, STEP_RULES, copy_repository, planned_jobs, require_tool, snakemake

from workflow.deploy.gate import gate, publish

pytestmark = pytest.mark.dag
RUNS = ("digits_mlp/seed0", "digits_cnn/seed0")


def tf_version() -> str:
    from importlib import metadata

    return metadata.version("tensorflow")


def dry_run_with(folder: pathlib.Path, change) -> dict[str, int]:
    """Jobs a dry run plans after applying `change` to a copy of the default config."""
    config = yaml.safe_load((folder / "configs" / "default.yaml").read_text())
    change(config)
    path = folder / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return planned_jobs(snakemake(folder, "-n", "--configfile", str(path), "--replace-workflow-config"))


def test_every_output_is_there(finished):
    """Each step wrote its files: model, history, metrics with verdict, SavedModel, 4 TFLite, TF.js, parity, report."""
    for run in RUNS:
        folder = finished / "results" / "runs" / run
        for name in (
            "model.keras",
            "history.json",
            "train.json",
            "metrics.json",
            "manifest.json",
            "export.json",
            "parity.json",
        ):
            assert (folder / name).is_file(), name
        assert (folder / "saved_model" / "saved_model.pb").is_file()
        assert sorted(p.name for p in (folder / "tflite").glob("*.tflite")) == [
            "dynamic_range.tflite",
            "float16.tflite",
            "float32.tflite",
            "int8.tflite",
            "integer_only.tflite",
        ]
        assert (folder / "tfjs" / "model.json").is_file()
        assert list((folder / "tensorboard").rglob("events.out.tfevents.*"))
        history = json.loads((folder / "history.json").read_text())
        train = json.loads((folder / "train.json").read_text())
        assert len(history["loss"]) == train["params"]["train"]["epochs"]
        assert {"tensorflow", "keras", "tensorflow-datasets", "python"} <= set(train["versions"])
        assert train["replicas"] == 1 and train["examples_per_second"] > 0


def test_metrics_meet_the_targets_and_parity_holds(finished):
    """Both default experiments pass their target; float32 and TF.js match the SavedModel to 1e-4; both
    are blessed and published in the TF Serving layout."""
    for run in RUNS:
        folder = finished / "results" / "runs" / run
        metrics = json.loads((folder / "metrics.json").read_text())
        parity = json.loads((folder / "parity.json").read_text())
        assert metrics["examples"] == 360
        assert metrics["verdict"]["passed"], metrics["verdict"]["because"]
        assert np.array(metrics["confusion_matrix"]).sum() == 360
        verdict = json.loads((folder / "deploy/verdict.json").read_text())
        assert verdict["blessed"] and verdict["publish"], verdict
        assert set(parity["formats"]) == {"float32", "float16", "dynamic_range", "int8", "integer_only", "tfjs"}
        assert parity["formats"]["tfjs"]["max_abs_diff"] < 1e-4
        assert parity["formats"]["float32"]["top1_agreement"] == 1.0
        assert parity["test_examples"] == 360 and parity["golden_examples"] == 128
        assert parity["saved_model"]["test_accuracy"] == metrics["accuracy"]
        for entry in parity["formats"].values():
            assert entry["accuracy_drop"] == pytest.approx(metrics["accuracy"] - entry["test_accuracy"])
            assert entry["bytes"] > 0
    for experiment in ("digits_mlp", "digits_cnn"):
        deploy = finished / "results/deploy" / experiment
        published = json.loads((deploy / "publish.json").read_text())
        assert published["published"] and published["run"] == f"{experiment}/seed0"
        assert (deploy / experiment / "1" / "saved_model.pb").is_file()
        assert (deploy / experiment / "1" / "variables" / "variables.index").is_file()
        assert sorted(path.name for path in (deploy / "tflite").iterdir()) == [
            "dynamic_range.tflite", "float16.tflite", "float32.tflite", "int8.tflite",
            "integer_only.tflite"]  # fmt: skip
        assert (deploy / "tfjs" / "model.json").is_file()


def test_report_lists_every_run(finished):
    """Markdown, CSV and HTML tables hold one row per run and a summary row per experiment, with verdicts."""
    report = finished / "results" / "report"
    markdown = (report / "reproduction.md").read_text()
    page = (report / "reproduction.html").read_text()
    rows = (report / "reproduction.csv").read_text().strip().splitlines()

    assert len(rows) == 1 + len(RUNS)
    assert "| digits_mlp | 0 | digits | mlp |" in markdown
    assert "| digits_cnn | 0 | digits | cnn |" in markdown
    assert re.search(r"\| digits_cnn \| 1 \| accuracy \| 0\.9500 \| 0\.9\d+ \| 0\.0000 \| 0\.0\d+ \| pass \|", markdown)
    header = rows[0].split(",")
    assert rows[1].split(",")[header.index("verdict")] == "pass"
    # summary (header + 2 rows), runs (header + a row per run), a deployment table per experiment
    # (header + 7 formats: SavedModel, 5 TFLite, TF.js)
    assert page.count("<tr>") == 1 + 2 + 1 + len(RUNS) + len(RUNS) * (1 + 7)
    assert "id='reproduction-table'" in page


def test_report_figures_are_pngs(finished):
    """One learning-curve figure per experiment and one confusion matrix per run, as real PNG files."""
    figures = finished / "results" / "report" / "figures"
    names = sorted(path.name for path in figures.iterdir() if not path.name.startswith("."))  # .snakemake_timestamp

    assert names == [
        "confusion_digits_cnn_seed0.png",
        "confusion_digits_mlp_seed0.png",
        "curves_digits_cnn.png",
        "curves_digits_mlp.png",
    ]
    for name in names:
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures / name).stat().st_size > 10_000


def test_manifest_records_code_data_and_versions(finished):
    """manifest.json has the resolved config, the git commit field, versions, dataset version and shard sha256."""
    manifest = json.loads((finished / "results/runs/digits_mlp/seed0/manifest.json").read_text())
    spec = json.loads((finished / "results/datasets/digits/shards/spec.json").read_text())

    assert manifest["config"]["experiment"]["model"]["name"] == "mlp"
    assert manifest["config"]["dataset"]["tfds_name"] == "sklearn_digits"
    assert set(manifest["code"]) == {"commit", "dirty"}
    assert manifest["versions"]["tensorflow"] == tf_version()
    assert manifest["dataset"]["name"] == "sklearn_digits" and manifest["dataset"]["version"] == "1.0.0"
    assert manifest["dataset"]["shards"]["test"][0]["sha256"] == spec["splits"]["test"]["shards"][0]["sha256"]
    assert manifest["slurm"] == {"train_job_id": None, "manifest_job_id": None}
    assert manifest["results"]["verdict"]["passed"] is True


def test_export_signature_is_named(finished):
    """saved_model_cli shows a uint8 `images` input and `probabilities`/`class_id` outputs."""
    shown = json.loads((finished / "results/runs/digits_mlp/seed0/export.json").read_text())["saved_model_cli"]

    assert "inputs['images']" in shown and "DT_UINT8" in shown
    assert "outputs['probabilities']" in shown and "outputs['class_id']" in shown
    assert "Method name is: tensorflow/serving/predict" in shown


def test_saved_model_cli_run_gives_the_saved_models_predictions(finished, tmp_path):
    """`saved_model_cli run` on the published model, with 16 test images, returns what the SavedModel predicts."""
    import sys

    from workflow.data.pipeline import load_arrays
    from workflow.deploy.export import predict_saved_model

    published = finished / "results/deploy/digits_cnn/digits_cnn/1"
    images = load_arrays(str(finished / "results/datasets/digits/shards"), "test", limit=16)["images"]
    np.save(tmp_path / "images.npy", images)
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"

    result = subprocess.run(
        [str(cli), "run", "--dir", str(published), "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"images={tmp_path / 'images.npy'}", "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    expected = predict_saved_model(published, {"images": images})
    np.testing.assert_allclose(np.load(tmp_path / "out/probabilities.npy"), expected, atol=1e-6)
    assert np.array_equal(np.load(tmp_path / "out/class_id.npy"), expected.argmax(axis=1))


def test_every_job_left_a_log_and_a_benchmark(finished):
    """Each rule that ran wrote a log and a Snakemake benchmark record (s, max_rss...)."""
    results = finished / "results"
    for rule in STEP_RULES:
        assert list((results / "logs" / rule).rglob("*.log")), rule
        benchmarks = list((results / "benchmarks" / rule).rglob("*.tsv"))
        assert benchmarks, rule
        assert benchmarks[0].read_text().startswith("s\th:m:s\tmax_rss")


def test_training_log_has_one_line_per_epoch(finished):
    """The train job log carries an 'epoch k/N' progress line for every epoch."""
    log = (finished / "results/logs/train/digits_cnn/seed0.log").read_text()
    epochs = yaml.safe_load((finished / "configs/default.yaml").read_text())["experiments"]["digits_cnn"]["train"][
        "epochs"
    ]

    assert len(re.findall(rf"epoch \d+/{epochs} ", log)) == epochs


def test_second_run_does_nothing(finished):
    """After a finished run, a dry run plans no job."""
    assert planned_jobs(snakemake(finished, "-n")) == {}


def test_tflite_setting_reruns_only_tflite_parity_report(finished):
    """Changing the int8 calibration size reconverts int8 only, then parity and report; no retraining."""

    def change(config):
        config["experiments"]["digits_mlp"]["convert"] = {"tflite": {"representative_examples": 100}}

    assert dry_run_with(finished, change) == {"tflite": 1, "parity": 1, "gate": 1, "publish": 1, "report": 1, "all": 1}


def test_learning_rate_reruns_training_onwards_not_data(finished):
    """A new learning rate retrains one experiment and everything after it, not download or tfrecord."""

    def change(config):
        config["experiments"]["digits_cnn"]["train"]["optimizer"]["learning_rate"] = 0.001

    assert dry_run_with(finished, change) == {
        "train": 1,
        "evaluate": 1,
        "manifest": 1,
        "export": 1,
        "tflite": 1,
        "tfjs": 1,
        "parity": 1,
        "gate": 1,
        "publish": 1,
        "report": 1,
        "all": 1,
    }


def test_shard_count_reruns_tfrecord_onwards_not_download(finished):
    """A new shard count re-shards and retrains both experiments, but does not re-download."""

    def change(config):
        config["datasets"]["digits"]["shards"]["train"] = 3

    planned = dry_run_with(finished, change)

    assert "download" not in planned
    assert planned["tfrecord"] == 1 and planned["train"] == 2 and planned["parity"] == 2


def test_unrelated_key_reruns_nothing(finished):
    """An unused dataset entry changes no step's inputs, so nothing reruns."""

    def change(config):
        config["datasets"]["unused"] = {"tfds_name": "mnist", "shards": {"train": 9}}

    assert dry_run_with(finished, change) == {}


def planned_after_editing(finished: pathlib.Path, module_name: str) -> dict[str, int]:
    """The dry run's jobs with a comment added to workflow/<module_name>; the file is put back as it was."""
    module = finished / "workflow" / module_name
    original, stat = module.read_text(), module.stat()
    module.write_text(original + "\n# edited by a test of tests/test_dag.py\n")
    try:
        return planned_jobs(snakemake(finished, "-n"))
    finally:
        module.write_text(original)
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_editing_a_module_reruns_its_steps(finished):
    """Editing workflow/evaluate/metrics.py reruns evaluate and what reads metrics.json (manifest, gate, publish,
    report)."""
    planned = planned_after_editing(finished, "evaluate/metrics.py")

    assert planned == {"evaluate": 2, "manifest": 2, "gate": 2, "publish": 2, "report": 1, "all": 1}


def test_editing_a_builder_the_trainer_reaches_through_the_catalog_reruns_training(finished):
    """The trainer imports the table and forest builders by name from workflow/models/catalog.py (no import statement
    shows them): the train rule names their modules, so editing forests.py reruns training and what follows."""
    planned = planned_after_editing(finished, "models/forests.py")

    assert planned["train"] == 2 and planned["evaluate"] == 2, planned


def test_the_formats_decisions_rerun_parity_and_what_follows_but_no_conversion(finished):
    """workflow/deploy/formats.py (which models each format writes, what a model cannot take) is the DAG's and parity's:
    editing it reruns parity, the gate and what reads them, not the conversions; turning TF.js off drops its
    job from the plan and its model from parity's inputs."""
    planned = planned_after_editing(finished, "deploy/formats.py")

    assert planned == {"parity": 2, "gate": 2, "publish": 2, "report": 1, "all": 1}, planned

    def without_tfjs(config):
        for experiment in config["experiments"].values():
            experiment.setdefault("convert", {})["tfjs"] = {"enabled": False}

    assert dry_run_with(finished, without_tfjs) == {"parity": 2, "gate": 2, "publish": 2, "report": 1, "all": 1}


def test_touching_a_module_without_changing_it_reruns_nothing(finished):
    """The code param is a digest of content: a checkout or `touch` that keeps the bytes reruns nothing."""
    module = finished / "workflow" / "models" / "images.py"
    stat = module.stat()
    module.touch()
    try:
        planned = planned_jobs(snakemake(finished, "-n"))
    finally:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert planned == {}


def test_a_budget_change_reruns_only_gate_and_publish(finished):
    """Budgets are the gate's alone: tightening int8's reruns the gate and publish steps, nothing else."""

    def change(config):
        config["experiments"]["digits_mlp"]["parity"] = {"budgets": {"int8": {"max_abs_diff": 0.0}}}

    assert dry_run_with(finished, change) == {"gate": 1, "publish": 1, "all": 1}


def test_a_broken_budget_is_refused_by_name_and_not_published(finished, tmp_path):
    """A zero int8 budget: the gate names int8 and its margin, and publish leaves only the reasons."""
    run = finished / "results/runs/digits_mlp/seed0"
    budgets = {
        "float32": {"max_abs_diff": 1e-4, "min_top1_agreement": 1.0, "max_accuracy_drop": None},
        "int8": {"max_abs_diff": 0.0, "min_top1_agreement": None, "max_accuracy_drop": None},
    }

    verdict = gate(parity_path=str(run / "parity.json"), metrics_path=str(run / "metrics.json"),
                   verdict_path=str(tmp_path / "verdict.json"), budgets=budgets, publish_anyway=False,
                   reason=None)  # fmt: skip
    published = publish(verdict_path=str(tmp_path / "verdict.json"), saved_model_dir=str(run / "saved_model"),
                        format_dirs={}, output_dir=str(tmp_path / "deploy"), model_name="m",
                        version=1, run="digits_mlp/seed0")  # fmt: skip

    assert not verdict["blessed"] and not verdict["publish"]
    assert re.fullmatch(r"int8: max abs diff [0-9.e-]+ on the golden batch exceeds 0 by [0-9.e-]+",
                        verdict["formats"]["int8"]["reason"])  # fmt: skip
    assert verdict["formats"]["float32"]["reason"] == "float32: within budget"
    assert sorted(path.name for path in (tmp_path / "deploy").iterdir()) == ["publish.json"]
    assert published["refused_because"] == [verdict["formats"]["int8"]["reason"]]


def test_snakemake_report_shows_the_table_in_chromium(finished):
    """`snakemake --report` builds a page; in headless Chromium, opening the Reproduction result shows the table."""
    chromium = require_tool("chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    result = snakemake(finished, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto((finished / "report.html").as_uri())
        page.get_by_text("Reproduction", exact=True).first.click()
        page.locator("tr", has_text="reproduction.html").locator("a[iconname=eye]").click()
        page.wait_for_timeout(500)
        table = next(frame for frame in page.frames if "reproduction.html" in frame.url).locator("#reproduction-table")
        text = table.inner_text(timeout=10_000)
        browser.close()

    assert "digits_cnn" in text and "digits_mlp" in text
    assert text.count("pass") == 2


def test_two_experiments_on_one_dataset_prepare_it_once(tmp_path):
    """digits_mlp and digits_cnn share the digits dataset: one download and one tfrecord job, two trainings."""
    folder = copy_repository(tmp_path / "repo")

    jobs = planned_jobs(snakemake(folder, "-n"))

    assert (jobs["download"], jobs["tfrecord"], jobs["train"]) == (1, 1, 2)


def test_report_lists_size_and_latency_per_format(finished):
    """parity.json and the report give every format's bytes and single-example latency (LiteRT 1 thread, Node)."""
    parity = json.loads((finished / "results/runs/digits_cnn/seed0/parity.json").read_text())
    markdown = (finished / "results/report/reproduction.md").read_text()

    assert parity["saved_model"]["latency_ms"] > 0
    for name, entry in parity["formats"].items():
        assert entry["bytes"] > 0 and entry["latency_ms"] > 0, name
    assert parity["formats"]["int8"]["bytes"] < parity["formats"]["float32"]["bytes"]
    table = markdown.split("## Deployable formats", 1)[1]
    for name in ("saved_model", "float32", "float16", "dynamic_range", "int8", "integer_only", "tfjs"):
        assert f"| digits_cnn | 0 | {name} |" in table, name
