"""Code inputs: the workflow/ files a step imports are found without importing them."""

from __future__ import annotations

from workflow.infra.codedeps import code_files
from workflow.models.catalog import BUILDER_MODULES


def test_train_depends_on_models_and_pipeline_not_on_report():
    """Editing models.py must rerun training; editing report.py must not."""
    files = code_files("workflow.train.trainer")

    assert "workflow/models/images.py" in files
    assert "workflow/data/pipeline.py" in files
    assert "workflow/data/shards.py" in files
    assert "workflow/data/tfrecord.py" not in files  # the writer: it reruns the tfrecord step, not training
    assert "workflow/evaluate/report.py" not in files
    assert "workflow/evaluate/metrics.py" not in files
    # The config loader (and the sweep expansion, the gate's checks it imports) is the DAG's, not the
    # step's: editing it must not rerun every training (it did while train took config_hash from it).
    assert not {"workflow/config/settings.py", "workflow/config/sweep.py", "workflow/deploy/gate.py"} & set(files)
    # Which formats a model converts to is the DAG's and parity's: it reran every training while the
    # table models took two constants from it.
    assert "workflow/deploy/formats.py" not in files
    # The builders the trainer reaches through the catalog, which the train rule adds to its digest.
    with_builders = code_files("workflow.train.trainer", *BUILDER_MODULES)
    assert {"workflow/models/tables.py", "workflow/models/forests.py", "workflow/models/images.py"} <= set(
        with_builders
    )
    assert "workflow/deploy/formats.py" not in with_builders


def test_the_train_steps_runtime_defaults_are_the_schemas():
    """workflow/train/trainer.py writes out the schema's `runtime` defaults instead of reading them through the
    config's settings.py."""
    from workflow.config.settings import default_runtime
    from workflow.train.trainer import RUNTIME_DEFAULTS

    assert default_runtime() == RUNTIME_DEFAULTS


def test_package_init_files_count_and_extras_are_added():
    """Imported packages bring their __init__.py; extra non-Python files can be named."""
    files = code_files("workflow.data.download", extra=("deploy/js/tfjs_predict.cjs",))

    assert files == sorted(files)
    assert {"workflow/data/download.py", "workflow/data/datasets/digits.py", "workflow/__init__.py"} <= set(files)
    assert "workflow/deploy/js/tfjs_predict.cjs" in files


def test_unknown_module_gives_nothing():
    """Modules outside the package are not code inputs."""
    assert code_files("numpy") == []


def test_digest_follows_content_not_mtime(tmp_path, monkeypatch):
    """The `code` param changes when an imported file's bytes change, and only then."""
    import shutil

    from workflow.infra import codedeps

    package = tmp_path / "workflow"
    shutil.copytree(codedeps.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codedeps, "PACKAGE_ROOT", package)
    codedeps._closure.cache_clear()
    monkeypatch.setattr(codedeps, "_closure", codedeps._closure.__wrapped__)  # paths of the copy, uncached
    digest = codedeps.code_digest.__wrapped__  # uncached: the test changes files between calls
    before = digest("workflow.deploy.gate")
    (package / "infra/atomic.py").touch()
    assert digest("workflow.deploy.gate") == before
    (package / "infra/atomic.py").write_text((package / "infra/atomic.py").read_text() + "\n# edited\n")
    assert digest("workflow.deploy.gate") != before
    assert digest("workflow.evaluate.report") != before
