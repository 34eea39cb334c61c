"""The benchmarks' apparatus: the bare Snakefile mirrors the project's jobs, and light steps stay light.

Speed figures live in benchmarks/ (never asserted here: the machines are noisy); these tests check
that what the benchmarks compare is what they say it is.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, STEP_RULES, planned_jobs, snakemake

sys.path.insert(0, str(REPO / "benchmarks"))

import bare_workflow  # noqa: E402
from dag_scale import scaled_config  # noqa: E402
from step_startup import import_lines, step_scripts  # noqa: E402

from workflow.config.settings import load_config, load_yaml  # noqa: E402


@pytest.mark.parametrize(("experiments", "sweep"), [(None, False), (3, False), (3, True)])
def test_bare_snakefile_has_the_projects_jobs_rule_by_rule(experiments, sweep, tmp_path):
    """Dry runs of the project and its bare mirror plan the same jobs per rule (default, a scaled config, a sweep)."""
    raw = load_yaml(REPO / "configs/default.yaml") if experiments is None else scaled_config(experiments, sweep=sweep)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    bare = bare_workflow.write(tmp_path / "bare", load_config(copy.deepcopy(raw)))
    (tmp_path / "project").mkdir()

    project_jobs = planned_jobs(
        snakemake(
            REPO,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path / "project"),
            "-n",
            "--configfile",
            str(config_path),
            "--replace-workflow-config",
        )
    )
    bare_jobs = planned_jobs(snakemake(REPO, "-s", str(bare), "--directory", str(tmp_path / "bare"), "-n"))

    assert project_jobs == bare_jobs
    assert project_jobs["train"] == (2 if experiments is None else experiments)


def test_step_startup_finds_every_scripted_rule():
    """Every rule that runs a script is measured, with that script's imports."""
    scripts = step_scripts(REPO)

    assert set(STEP_RULES) <= set(scripts)
    assert "from workflow.evaluate.report import write_report" in import_lines(scripts["report"])


@pytest.mark.parametrize("step", ["manifest", "report", "gate", "publish"])
def test_steps_that_need_no_tensorflow_do_not_import_it(step):
    """The small bookkeeping steps start in a fraction of a second: importing them loads no TensorFlow."""
    program = import_lines(step_scripts(REPO)[step]) + "\nimport sys\nprint('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False", f"scripts/{step}.py's imports load TensorFlow"
