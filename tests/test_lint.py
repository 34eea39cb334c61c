"""Static gates: snakemake --lint and ruff are clean, and every rule has a log and a benchmark."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_snakemake_lint_is_clean():
    """snakemake --lint exits 0 (it exits 1 on any finding)."""
    result = run(sys.executable, "-m", "snakemake", "--lint")

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_ruff_is_clean():
    """ruff check finds nothing in the repository."""
    result = run(str(BIN / "ruff"), "check", ".")

    assert result.returncode == 0, result.stdout[-4000:]


def test_every_rule_has_log_and_benchmark():
    """Each rule except the aggregate `all` declares both log: and benchmark:."""
    rules = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", path.read_text(), flags=re.MULTILINE):
            rules[name] = body

    assert len(rules) >= 11
    missing = [name for name, body in rules.items() if "    log:" not in body or "    benchmark:" not in body]
    assert missing == []


def test_bad_config_is_refused_before_any_job(tmp_path):
    """A config with negative epochs stops snakemake while the DAG is built, naming key and value."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "datasets: {digits: {tfds_name: sklearn_digits}}\n"
        "experiments: {x: {dataset: digits, model: {name: mlp}, train: {epochs: -3}}}\n"
    )

    result = run(sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--replace-workflow-config")

    assert result.returncode != 0
    assert "experiments.x.train.epochs: -3" in result.stdout + result.stderr
    assert "Job stats" not in result.stdout + result.stderr
