"""Static gates: snakemake --lint, ruff and mypy are clean, and every rule has a log and a benchmark."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
from helpers import without_slurm_client

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run in the repository; snakemake without the Slurm client's start-up wait (helpers.without_slurm_client)."""
    env = {**os.environ, "PATH": os.pathsep.join([without_slurm_client(), str(BIN), os.environ.get("PATH", "")])}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_snakemake_lint_is_clean():
    """snakemake --lint exits 0 (it exits 1 on any finding)."""
    result = run(sys.executable, "-m", "snakemake", "--lint")

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_ruff_is_clean():
    """ruff check finds nothing in the repository."""
    result = run(str(BIN / "ruff"), "check", ".")

    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_is_clean():
    """mypy finds no type error in the workflow package (settings: pyproject.toml [tool.mypy])."""
    result = run(str(BIN / "mypy"))

    assert result.returncode == 0, result.stdout[-4000:]


ROLES = {"config", "data", "models", "train", "evaluate", "deploy", "infra"}  # docs/architecture.md


def test_the_package_is_in_subpackages_by_role_with_empty_inits():
    """workflow/ holds only its role subpackages, and every __init__.py is empty: a step's code digest takes in
    each package it imports from (workflow/infra/codedeps.py), so code there would rerun every step below it."""
    package = REPO / "workflow"
    top = {path.name for path in package.iterdir() if path.name != "__pycache__"}
    inits = [path for path in package.rglob("__init__.py") if path.read_text().strip()]

    assert top == ROLES | {"__init__.py"}, top ^ (ROLES | {"__init__.py"})
    assert inits == [], [str(path.relative_to(REPO)) for path in inits]
    assert all((package / role / "__init__.py").is_file() for role in ROLES)


MAX_FUNCTION_LINES = 50  # issue "Open the design": a function reads on one screen, or it is cut into sections


def test_no_function_of_the_workflow_package_is_longer_than_a_screen():
    """Every function and method of workflow/, signature and docstring included, is at most MAX_FUNCTION_LINES."""
    import ast

    long = []
    for path in sorted((REPO / "workflow").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")

    assert long == [], "cut these into sections: " + "; ".join(long)


def test_every_rule_has_log_and_benchmark():
    """Each rule except the aggregate `all` declares both log: and benchmark:."""
    rules = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", path.read_text(), flags=re.MULTILINE):
            rules[name] = body

    assert len(rules) >= 11
    missing = [name for name, body in rules.items() if "    log:" not in body or "    benchmark:" not in body]
    assert missing == []


BASE = "datasets: {digits: {tfds_name: sklearn_digits}}\n"


@pytest.mark.parametrize(
    ("experiments", "expected"),
    [
        ("{x: {dataset: digits, model: {name: mlp}, train: {epochs: -3}}}", "experiments.x.train.epochs: -3"),
        ("{x: {dataset: digits, model: {name: mlp}, train: {epochs: ten}}}", "experiments.x.train.epochs: 'ten'"),
        ("{x: {dataset: digits, model: {name: mlp}, trian: {}}}", "'trian' was unexpected"),
        ("{x: {dataset: digits, model: {name: vgg99}}}", "experiments.x.model.name: 'vgg99'"),
        ("{x: {dataset: imagenet, model: {name: mlp}}}", "experiments.x.dataset: 'imagenet' is not a key of datasets"),
        ("{'a/b': {dataset: digits, model: {name: mlp}}}", "'a/b'"),
        ("{'..': {dataset: digits, model: {name: mlp}}}", "'..'"),
        # Snakemake itself loads --configfile with a safe loader: the tag is refused, never run.
        ("{x: {dataset: digits, model: {name: !!python/object/apply:os.getpid []}}}", "not valid JSON or YAML"),
    ],
    ids=[
        "negative-epochs",
        "wrong-type",
        "unknown-key",
        "unknown-model",
        "unknown-dataset",
        "slash",
        "dotdot",
        "python-tag",
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path, experiments, expected):
    """Each bad config stops snakemake while the DAG is built, naming key and value; no job runs."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + f"experiments: {experiments}\n")

    result = run(sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--replace-workflow-config")

    assert result.returncode != 0
    assert expected in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]
    assert "Job stats" not in result.stdout + result.stderr


def test_no_unsafe_loading_anywhere():
    """YAML only through safe loaders, no pickle, Keras models only with safe_mode, no shell rules."""
    folders = ("workflow", "scripts", "rules")
    sources = {
        path: path.read_text()
        for folder in folders
        for path in (REPO / folder).rglob("*.*")
        if path.suffix in (".py", ".smk")
    }
    sources[REPO / "Snakefile"] = (REPO / "Snakefile").read_text()
    for path, text in sources.items():
        assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(", text), f"{path}: YAML must be loaded safely"
        assert not re.search(r"^\s*(import|from) (pickle|dill|cloudpickle)\b", text, re.MULTILINE), f"{path}: pickle"
        assert "safe_mode=False" not in text, f"{path}: Keras models load with safe_mode"
        assert not re.search(r"^\s+shell:", text, re.MULTILINE), (
            f"{path}: rules use script:, config never reaches a shell"
        )
    loads = [text.count("load_model(") for text in sources.values()]
    safe = [text.count("safe_mode=True") for text in sources.values()]
    assert sum(loads) and sum(safe) >= sum(loads), "every keras load_model passes safe_mode=True"


def test_config_checker_names_file_tag_and_line_where_snakemake_does_not(tmp_path):
    """`python -m workflow.config FILE` names the Python tag, the file and the line; a good file passes."""
    bad = tmp_path / "tagged.yaml"
    bad.write_text(BASE + "experiments: {x: {dataset: digits, model: {name: !!python/object/apply:os.getpid []}}}\n")

    result = run(sys.executable, "-m", "workflow.config", str(bad), str(REPO / "configs/default.yaml"))

    assert result.returncode == 1
    assert "python/object/apply:os.getpid" in result.stderr and f'"{bad}", line 2' in result.stderr, result.stderr
    assert "configs/default.yaml: ok (2 experiments, 2 runs)" in result.stdout
