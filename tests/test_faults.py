"""Faults injected into the real DAG: every kind of step killed at the worst moment, broken inputs, a
full or read-only results folder, a second snakemake. Nothing may look finished that is not, and
nothing already produced may be lost. Each fault is recorded for docs/reliability.md."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from helpers import copy_repository, planned_jobs, snakemake, without_slurm_client

from workflow.infra.atomic import KILL_BEFORE_RENAME

pytestmark = pytest.mark.dag
RUN = "results/runs/digits_mlp/seed0"
# Each kind of step, killed (SIGKILL) after its output is complete under a temporary name and
# before the rename: in DAG order, so each run gets one step further than the last.
KILLS = [
    ("download", "results/datasets/digits/prepared.json"),
    ("tfrecord", "results/datasets/digits/shards"),
    ("train", f"{RUN}/train.json"),
    ("evaluate", f"{RUN}/metrics.json"),
    ("manifest", f"{RUN}/manifest.json"),
    ("export", f"{RUN}/saved_model"),
    ("tflite", f"{RUN}/tflite"),
    ("tfjs", f"{RUN}/tfjs"),
    ("parity", f"{RUN}/parity.json"),
    ("gate", f"{RUN}/deploy/verdict.json"),
    ("publish", "results/deploy/digits_mlp"),
    ("report", "results/report/reproduction.html"),
]
DECLARED = {  # every declared output of the killed job: none may survive its failure
    "train": [f"{RUN}/model.keras", f"{RUN}/history.json", f"{RUN}/train.json", f"{RUN}/tensorboard"],
    "export": [f"{RUN}/saved_model", f"{RUN}/export.json"],
    "report": ["results/report/reproduction.md", "results/report/reproduction.csv", "results/report/reproduction.html"],
}


def one_run_config(folder: pathlib.Path) -> str:
    """The default config reduced to digits_mlp for 2 epochs."""
    config = yaml.safe_load((folder / "configs/default.yaml").read_text())
    config["experiments"] = {"digits_mlp": {**config["experiments"]["digits_mlp"]}}
    config["experiments"]["digits_mlp"]["train"] = {**config["experiments"]["digits_mlp"].get("train", {}), "epochs": 2}
    # Not the default, so a train.json shows that the job read its runtime from the config (not from params).
    config["experiments"]["digits_mlp"]["runtime"] = {"steps_per_execution": 8}
    (folder / "one.yaml").write_text(yaml.safe_dump(config))
    return "one.yaml"


def digests(root: pathlib.Path) -> dict[str, str]:
    """sha256 of every finished file under results/.

    Logs, benchmarks, checkpoints (consumed by design) and temporaries aside.
    """
    found = {}
    for path in (root / "results").rglob("*"):
        relative = path.relative_to(root).as_posix()
        if (
            path.is_file()
            and ".tmp-" not in relative
            and not relative.startswith(("results/logs", "results/benchmarks", "results/checkpoints"))
        ):
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def leftovers(root: pathlib.Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in (root / "results").rglob("*.tmp-*")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> pathlib.Path:
    return copy_repository(tmp_path_factory.mktemp("faults") / "repo")


def test_each_step_killed_before_its_rename_leaves_nothing_finished(folder, reliability):
    """SIGKILL in each kind of step: the job fails, none of its outputs exist, earlier outputs are
    byte-identical, and the next run completes; at the end no temporary remains."""
    config = one_run_config(folder)
    for rule, output in KILLS:
        before = digests(folder)
        declared = DECLARED.get(rule, [output])
        # Steps may already have run beside an earlier killed one: then force this one again.
        force = ["--forcerun", rule] if (folder / output).exists() else []

        result = snakemake(folder, output, *force, "--cores", "2", "--configfile", config, "--replace-workflow-config",
                           env={KILL_BEFORE_RENAME: output})  # fmt: skip

        text = result.stdout + result.stderr
        assert result.returncode != 0, f"{rule}: the killed run reported success"
        assert re.search(rf"Error in rule {rule}\b", text), f"{rule}: {text[-3000:]}"
        for path in declared:
            assert not (folder / path).exists(), f"{rule}: {path} survived the killed job"
        after = digests(folder)
        mine = tuple(declared)
        lost = [path for path, digest in before.items() if not path.startswith(mine) and after.get(path) != digest]
        assert lost == [], f"{rule}: earlier outputs changed or vanished: {lost}"
        reliability(f"SIGKILL before the rename of {pathlib.Path(output).name}", f"step {rule}",
                    "job failed, its outputs removed; next run redid it", len(lost))  # fmt: skip

    final = snakemake(folder, "--cores", "2", "--configfile", config, "--replace-workflow-config")

    assert final.returncode == 0, final.stderr[-3000:]
    assert leftovers(folder) == []
    assert planned_jobs(snakemake(folder, "-n", "--configfile", config, "--replace-workflow-config")) == {}


def test_a_damaged_shard_fails_training_by_name_and_makes_no_model(folder, reliability):
    """A flipped byte in a finished run's shard: the forced train job names the shard and leaves no model."""
    config = one_run_config(folder)
    assert snakemake(folder, "--cores", "2", "--configfile", config, "--replace-workflow-config").returncode == 0
    assert json.loads((folder / RUN / "train.json").read_text())["steps_per_execution"] == 8
    shard = sorted((folder / "results/datasets/digits/shards").glob("train-*.tfrecord"))[0]
    original = shard.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    try:
        result = snakemake(folder, f"{RUN}/metrics.json", "--cores", "2", "--forcerun", "train",
                           "--configfile", config, "--replace-workflow-config")  # fmt: skip
    finally:
        shard.write_bytes(original)

    assert result.returncode != 0
    log = (folder / "results/logs/train/digits_mlp/seed0.log").read_text()
    assert shard.name in log and "sha256 differs" in log, log[-2000:]
    assert not (folder / RUN / "model.keras").exists()
    reliability("one flipped byte in a TFRecord shard", "step train", f"refused naming {shard.name}; no model", 0)
    # The failed forced retrain left the old metrics, export and verdict newer than a missing model:
    # a plain run must redo the retrain and all that follows, not say "Nothing to be done".
    planned = planned_jobs(snakemake(folder, "-n", "--configfile", config, "--replace-workflow-config"))
    assert {"train", "evaluate", "manifest", "export", "tflite", "parity", "gate", "publish"} <= set(planned), planned
    reliability("a forced retrain that failed (stale outputs after it)", "DAG", "the next run redoes the retrain "
                "and every step after it", 0)  # fmt: skip


def signal_during_training(folder: pathlib.Path, config: str, sent: signal.Signals, *args: str) -> tuple[int, str]:
    """Run snakemake (one core) and send it `sent` once the train job has started; its exit status and stderr."""
    log = folder / "results/logs/train/digits_mlp/seed0.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(folder)}
    env["PATH"] = f"{without_slurm_client()}{os.pathsep}{pathlib.Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    run = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", config, "--replace-workflow-config", *args],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background start ignores SIGINT
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not log.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    ended_early = run.poll() is not None  # then the signal below reaches nothing: say so, with the run's output
    run.send_signal(sent)
    _, stderr = run.communicate(timeout=600)
    assert not ended_early, f"snakemake ended (exit {run.returncode}) before {log} appeared:\n{stderr[-3000:]}"
    return run.returncode, stderr


def test_sigterm_to_snakemake_lets_the_job_finish_and_says_no_job_failed(folder, reliability):
    """After the failed retrain above: SIGTERM to snakemake while train runs. Snakemake lets the job
    finish and stops; the message says that it was asked to stop and that no job failed; the next
    run goes on from there."""
    config = one_run_config(folder)
    returncode, stderr = signal_during_training(folder, config, signal.SIGTERM)

    assert returncode != 0
    assert "asked to stop (SIGTERM)" in stderr and "no job failed" in stderr, stderr[-3000:]
    assert (folder / RUN / "model.keras").exists(), "the running train job was let finish"
    planned = planned_jobs(snakemake(folder, "-n", "--configfile", config, "--replace-workflow-config"))
    assert "train" not in planned and "evaluate" in planned, planned
    reliability("SIGTERM to snakemake during training", "snakemake", "running job finished; said no job failed; "
                "next run went on", 0)  # fmt: skip


def test_a_forced_retrain_interrupted_by_ctrl_c_is_redone_with_every_step_after_it(folder, reliability):
    """A finished run, then `--forcerun train` interrupted (SIGINT, as Ctrl-C sends) while train runs:
    snakemake says so; the old model left behind is marked incomplete, so a plain run refuses to take it
    as finished (Snakemake names the files and --rerun-incomplete) instead of "Nothing to be done", and
    the run with --rerun-incomplete redoes the retrain and every step after it."""
    config = one_run_config(folder)
    plain = ("--configfile", config, "--replace-workflow-config")
    assert snakemake(folder, "--cores", "2", *plain).returncode == 0
    assert planned_jobs(snakemake(folder, "-n", *plain)) == {}

    returncode, stderr = signal_during_training(folder, config, signal.SIGINT, "--forcerun", "train")

    assert returncode != 0
    assert "interrupted (Ctrl-C)" in stderr and "add --rerun-incomplete" in stderr, stderr[-3000:]
    refused = snakemake(folder, "-n", *plain)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "IncompleteFilesException" in output, output[-3000:]
    assert f"{RUN}/model.keras" in output and "--rerun-incomplete" in output
    planned = planned_jobs(snakemake(folder, "-n", "--rerun-incomplete", *plain))
    assert {"train", "evaluate", "manifest", "export", "tflite", "parity", "gate", "publish"} <= set(planned), planned
    assert snakemake(folder, "--cores", "2", "--rerun-incomplete", *plain).returncode == 0
    assert planned_jobs(snakemake(folder, "-n", *plain)) == {}
    reliability("a forced retrain interrupted by Ctrl-C", "snakemake", "said so; the old model is marked incomplete; "
                "--rerun-incomplete redid the retrain and every step after it", 0)  # fmt: skip


def test_a_second_snakemake_on_the_same_results_is_refused(folder, reliability):
    """While one snakemake holds the lock, a second one on the same folder is refused by Snakemake's lock."""
    config = one_run_config(folder)
    locks = folder / ".snakemake" / "locks"
    # A real long-running snakemake: the train step again, with many epochs.
    long = yaml.safe_load((folder / config).read_text())
    long["experiments"]["digits_mlp"]["train"]["epochs"] = 400
    (folder / "long.yaml").write_text(yaml.safe_dump(long))
    env = {**os.environ, "PYTHONPATH": str(folder)}
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", f"{RUN}/metrics.json", "--cores", "1", "--configfile", "long.yaml",
         "--replace-workflow-config"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(locks.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert locks.is_dir() and any(locks.iterdir()), "the first snakemake never took its lock"

        second = snakemake(folder, f"{RUN}/metrics.json", "--cores", "1", "--configfile", "long.yaml",
                           "--replace-workflow-config", timeout=300)  # fmt: skip
    finally:
        first.kill()
        first.wait()
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout + second.stderr
    snakemake(folder, "--unlock", "--configfile", config, "--replace-workflow-config")
    reliability("a second snakemake on the same results folder", "DAG", "refused by Snakemake's lock", 0)
