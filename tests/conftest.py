"""Shared fixtures: the repository root, a finished default run, and real digits shards, made once per session."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A copy of the repository after `snakemake --cores 2` on the default config, shared by every
    test file that looks at a finished run (dry runs and readers only: it must stay finished)."""
    import shutil

    from helpers import copy_repository, snakemake

    for tool, hint in (("node", "apt-get install nodejs"), ("npm", "apt-get install npm")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed for the TF.js steps: {hint}")
    folder = copy_repository(tmp_path_factory.mktemp("dag") / "repo")

    result = snakemake(folder, "--cores", "2")

    assert result.returncode == 0, result.stderr[-6000:]
    return folder


@pytest.fixture(scope="session")
def digits_prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """sklearn_digits prepared by the real tfds download_and_prepare path."""
    from workflow.data.download import prepare

    folder = tmp_path_factory.mktemp("digits")
    manifest = folder / "prepared.json"
    prepare(tfds_name="sklearn_digits", manual_dir=None, data_dir=str(folder / "tfds"), manifest=str(manifest))
    return {"manifest": str(manifest), "folder": str(folder)}


@pytest.fixture(scope="session")
def digits_shards(digits_prepared: dict[str, str]) -> str:
    """The digits dataset as the project's TFRecord shards (train 3, validation 1, test 2)."""
    from workflow.data.tfrecord import convert

    output = pathlib.Path(digits_prepared["folder"]) / "shards"
    convert(
        manifest_path=digits_prepared["manifest"],
        output_dir=str(output),
        shards={"train": 3, "validation": 1, "test": 2},
        validation_percent=10,
    )
    return str(output)


@pytest.fixture()
def train_in_subprocess(digits_shards: str, tmp_path: pathlib.Path):
    """Run workflow.train.trainer.train in a fresh process (strategies and policies are process-global); return
    train.json."""
    import json
    import subprocess

    from helpers import train_command

    def run(params: dict, seed: int = 0, name: str = "run", check: bool = True, **extra: object) -> tuple:
        """(train.json, folder); with check=False (the finished process, folder), for a run meant to fail."""
        folder = tmp_path / name
        folder.mkdir()
        command = train_command(folder, digits_shards, params, seed, **extra)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if not check:
            return result, folder
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((folder / "train.json").read_text()), folder

    return run


@pytest.fixture(scope="session")
def reliability():
    """Faults injected by the tests, for docs/reliability.md: call it with one row per fault.

    With TF_LIFECYCLE_RELIABILITY_TABLE set, the rows are written there as a Markdown table at the end
    of the session (`make reliability` does this and puts the table into docs/reliability.md).
    """
    rows: list[tuple[str, str, str, int]] = []  # fault, where, how it was survived, files lost

    def record(fault: str, where: str, outcome: str, data_lost: int) -> None:
        rows.append((fault, where, outcome, data_lost))

    yield record
    target = os.environ.get("TF_LIFECYCLE_RELIABILITY_TABLE")
    if target and rows:
        lines = ["| fault injected | where | survived how | data lost |", "|---|---|---|---|"]
        lines += [f"| {fault} | {where} | {outcome} | {lost} |" for fault, where, outcome, lost in rows]
        pathlib.Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")
