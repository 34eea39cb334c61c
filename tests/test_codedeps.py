"""Code inputs: the workflow/ files a step imports are found without importing them."""

from __future__ import annotations

from workflow.catalog import BUILDER_MODULES
from workflow.codedeps import code_files


def test_train_depends_on_models_and_pipeline_not_on_report():
    """Editing models.py must rerun training; editing report.py must not."""
    files = code_files("workflow.train")

    assert "workflow/models.py" in files
    assert "workflow/pipeline.py" in files
    assert "workflow/shards.py" in files
    assert "workflow/tfrecord.py" not in files  # the writer: it reruns the tfrecord step, not training
    assert "workflow/report.py" not in files
    assert "workflow/evaluate.py" not in files
    # The config loader (and the sweep expansion, the gate's checks it imports) is the DAG's, not the
    # step's: editing it must not rerun every training (it did while train took config_hash from it).
    assert not {"workflow/config.py", "workflow/sweep.py", "workflow/gate.py"} & set(files)
    # Which formats a model converts to is the DAG's and parity's: it reran every training while the
    # table models took two constants from it.
    assert "workflow/formats.py" not in files
    # The builders the trainer reaches through the catalog, which the train rule adds to its digest.
    with_builders = code_files("workflow.train", *BUILDER_MODULES)
    assert {"workflow/tables.py", "workflow/forests.py", "workflow/models.py"} <= set(with_builders)
    assert "workflow/formats.py" not in with_builders


def test_the_train_steps_runtime_defaults_are_the_schemas():
    """workflow/train.py writes out the schema's `runtime` defaults instead of reading them through config.py."""
    from workflow.config import default_runtime
    from workflow.train import RUNTIME_DEFAULTS

    assert default_runtime() == RUNTIME_DEFAULTS


def test_package_init_files_count_and_extras_are_added():
    """Imported packages bring their __init__.py; extra non-Python files can be named."""
    files = code_files("workflow.datasets", extra=("js/tfjs_predict.cjs",))

    assert files == sorted(files)
    assert {"workflow/datasets/__init__.py", "workflow/datasets/digits.py", "workflow/__init__.py"} <= set(files)
    assert "workflow/js/tfjs_predict.cjs" in files


def test_unknown_module_gives_nothing():
    """Modules outside the package are not code inputs."""
    assert code_files("numpy") == []


def test_digest_follows_content_not_mtime(tmp_path, monkeypatch):
    """The `code` param changes when an imported file's bytes change, and only then."""
    import shutil

    from workflow import codedeps

    package = tmp_path / "workflow"
    shutil.copytree(codedeps.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codedeps, "PACKAGE_ROOT", package)
    codedeps._closure.cache_clear()
    monkeypatch.setattr(codedeps, "_closure", codedeps._closure.__wrapped__)  # paths of the copy, uncached
    digest = codedeps.code_digest.__wrapped__  # uncached: the test changes files between calls
    before = digest("workflow.gate")
    (package / "atomic.py").touch()
    assert digest("workflow.gate") == before
    (package / "atomic.py").write_text((package / "atomic.py").read_text() + "\n# edited\n")
    assert digest("workflow.gate") != before
    assert digest("workflow.report") != before
