"""`snakemake --profile slurm` against a real one-node Slurm (tests/slurm/cluster.sh): every job a real
Slurm job, the train job on the gpu partition with its A100 request, multi-worker training over
Slurm tasks, failures reported without leftovers, and an interrupted run cancelling its jobs."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from helpers import REPO, copy_repository, snakemake

pytestmark = pytest.mark.slurm
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
FAST_POLL = ("--slurm-init-seconds-before-status-checks", "2")  # the profile polls 5 s after a change
# A --configfile is the whole config (the embedded default applies only without one): the configs
# here name their datasets, and the default DAG is configs/default.yaml with digits_cnn on the gpu partition.
DEFAULT = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
DIGITS = {"digits": DEFAULT["datasets"]["digits"]}
GPU_CNN = copy.deepcopy(DEFAULT)
GPU_CNN["experiments"]["digits_cnn"]["resources"] = {"train": {"partition": "gpu", "gpus": 1, "gpu_model": "a100"}}


def slurm_command(*command: str, timeout: int = 60) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result.stdout


def sacct(since: str) -> list[dict[str, str]]:
    """Jobs (allocations, not steps) submitted since `since`, with the rule name Snakemake put in the comment."""
    fields = ["JobID", "Partition", "State", "ReqTRES", "AllocTRES", "NTasks", "Comment"]
    text = slurm_command("sacct", "-n", "-X", "-P", "-S", since, "-o", ",".join(fields))
    return [dict(zip(fields, line.split("|"), strict=True)) for line in text.strip().splitlines() if line]


def wait_for_sacct(since: str, count: int, timeout: float = 60) -> list[dict[str, str]]:
    """sacct rows once `count` jobs have reached a final state (slurmdbd records with a delay)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sacct(since)
        done = [row for row in rows if row["State"].split()[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")]
        if len(done) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))


@pytest.fixture(scope="session")
def cluster() -> None:
    """Install (once per machine) and start the test cluster; stop it after the session."""
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.fail("the Slurm tests need Debian's slurmctld, slurmd, munge, slurmdbd and mariadb-server")
    result = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"could not start the test Slurm cluster ({CLUSTER} start):\n{result.stderr[-4000:]}")
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The embedded default through `snakemake --profile slurm`, digits_cnn training on the gpu partition."""
    folder = copy_repository(tmp_path_factory.mktemp("slurm") / "repo")
    (folder / "gpu.yaml").write_text(yaml.safe_dump(GPU_CNN))
    since = now()

    result = snakemake(folder, "--profile", "slurm", *FAST_POLL, "--configfile", "gpu.yaml", timeout=1500, slurm=True)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return {"folder": folder, "since": since, "output": result.stdout + result.stderr}


def test_every_job_but_the_localrules_is_a_slurm_job(slurm_run):
    """tfrecord, 2 trains, one grouped job per run for its 7 small steps, and the report: 6 Slurm jobs."""
    rows = wait_for_sacct(slurm_run["since"], 6)

    rules = sorted(row["Comment"].split("_wildcards_")[0] for row in rows)
    assert [row["State"] for row in rows] == ["COMPLETED"] * 6, rows
    assert rules.count("rule_train") == 2
    assert rules.count("rule_tfrecord") == 1 and rules.count("rule_report") == 1
    assert not any(name in " ".join(rules) for name in ("download", "tfjs_env", "node_env", "publish"))  # local
    groups = sorted(name for name in rules if "after_training" in name)  # group id, then its rules
    assert len(groups) == 2, rules
    assert groups[0].startswith("rule_after_training_digits_cnn_seed0")
    assert groups[1].startswith("rule_after_training_digits_mlp_seed0")


def test_a_run_without_an_account_says_so_instead_of_the_plugins_failed_guess(slurm_run):
    output = slurm_run["output"]
    assert "invalid option" not in output and "trying to guess" not in output, output[-3000:]
    assert "No slurm_account is set: jobs are submitted without -A" in output, output[-3000:]


def test_grouped_steps_ask_for_one_step_not_their_sum(slurm_run):
    """The 7 steps of a run's group run in series in one allocation: 1 CPU and 4000 MB, not 7 of each."""
    rows = [row for row in wait_for_sacct(slurm_run["since"], 6) if "after_training" in row["Comment"]]

    assert len(rows) == 2, rows
    for row in rows:
        requested = dict(item.split("=", 1) for item in row["ReqTRES"].split(","))
        assert requested["cpu"] == "1" and requested["mem"] in ("4000M", "4000M+"), row
    log = (slurm_run["folder"] / "results/logs/parity/digits_mlp/seed0.log").read_text()
    assert log, "the grouped parity step wrote no log"


def test_train_job_asked_the_gpu_partition_for_an_a100(slurm_run):
    """digits_cnn's train job ran on partition gpu with one gres/gpu:a100; digits_mlp's stayed on cpu."""
    rows = wait_for_sacct(slurm_run["since"], 6)
    trains = {row["Comment"]: row for row in rows if row["Comment"].startswith("rule_train")}

    cnn = next(row for comment, row in trains.items() if "digits_cnn" in comment)
    mlp = next(row for comment, row in trains.items() if "digits_mlp" in comment)
    assert cnn["Partition"] == "gpu"
    assert "gres/gpu:a100=1" in cnn["AllocTRES"] or "gres/gpu=1" in cnn["AllocTRES"], cnn
    assert mlp["Partition"] == "cpu" and "gpu" not in mlp["AllocTRES"]


def test_slurm_outputs_equal_a_local_run(slurm_run, tmp_path):
    """The Slurm run's metrics equal a local run's of the same config (deterministic training on CPU)."""
    local = copy_repository(tmp_path / "local")
    (local / "gpu.yaml").write_text(yaml.safe_dump(GPU_CNN))
    targets = [f"results/runs/{name}/seed0/metrics.json" for name in ("digits_cnn", "digits_mlp")]

    result = snakemake(local, *targets, "--cores", "2", "--configfile", "gpu.yaml")

    assert result.returncode == 0, result.stderr[-3000:]
    for target in targets:
        remote = json.loads((slurm_run["folder"] / target).read_text())
        here = json.loads((local / target).read_text())
        assert remote["accuracy"] == here["accuracy"] and remote["confusion_matrix"] == here["confusion_matrix"]


def test_two_workers_train_as_two_slurm_tasks(cluster, tmp_path):
    """workers: 2 asks Slurm for 2 tasks; srun starts 2 processes that form one MultiWorkerMirroredStrategy."""
    folder = copy_repository(tmp_path / "repo")
    config = {"datasets": DIGITS, "experiments": {"digits_mw": {
        "dataset": "digits", "model": {"name": "mlp", "hidden_units": [64]},
        "train": {"epochs": 8, "batch_size": 64, "strategy": "multi_worker_mirrored", "workers": 2,
                  "optimizer": {"name": "adam", "learning_rate": 0.01}},
        "resources": {"train": {"cpus": 1}},
    }}}  # fmt: skip
    (folder / "mw.yaml").write_text(yaml.safe_dump(config))
    since = now()

    result = snakemake(folder, "results/runs/digits_mw/seed0/metrics.json", "--profile", "slurm", *FAST_POLL,
                       "--configfile", "mw.yaml", timeout=900, slurm=True)  # fmt: skip

    assert result.returncode == 0, result.stderr[-5000:]
    info = json.loads((folder / "results/runs/digits_mw/seed0/train.json").read_text())
    metrics = json.loads((folder / "results/runs/digits_mw/seed0/metrics.json").read_text())
    assert info["replicas"] == 2
    assert sorted(worker["task_id"] for worker in info["workers"]) == [0, 1]
    assert len({worker["pid"] for worker in info["workers"]}) == 2
    assert info["host"]["slurm_job_id"]
    train_job = next(row for row in wait_for_sacct(since, 2) if row["Comment"].startswith("rule_train"))
    steps = slurm_command("sacct", "-n", "-P", "-j", train_job["JobID"], "-o", "JobID,NTasks,State")
    assert any(line.split("|")[1] == "2" and line.split("|")[2] == "COMPLETED" for line in steps.splitlines()), steps
    assert metrics["accuracy"] > 0.9  # one worker with this config: 0.96


def test_failed_job_is_reported_and_leaves_nothing(slurm_run, reliability):
    """A train job on an altered shard fails as a Slurm job; no model file remains; after a repair a rerun works."""
    folder = slurm_run["folder"]
    shard = folder / "results/datasets/digits/shards/train-00000-of-00002.tfrecord"
    original = shard.read_bytes()
    shard.write_bytes(original[:-100] + bytes(100))
    run = folder / "results/runs/digits_mlp/seed0"
    command = ("results/runs/digits_mlp/seed0/metrics.json", "--profile", "slurm", *FAST_POLL, "--forcerun", "train",
               "--configfile", "gpu.yaml")  # fmt: skip
    since = now()
    try:
        failed = snakemake(folder, *command, timeout=600, slurm=True)
    finally:
        shard.write_bytes(original)

    assert failed.returncode != 0, failed.stderr[-3000:]
    assert "sha256 differs" in (folder / "results/logs/train/digits_mlp/seed0.log").read_text()
    assert not (run / "model.keras").exists() and not list(run.glob(".model.tmp-*"))
    assert any(row["State"].startswith("FAILED") for row in wait_for_sacct(since, 1))
    rerun = snakemake(folder, *command, timeout=900, slurm=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (run / "model.keras").is_file()
    reliability(
        "altered shard under a Slurm train job", "Slurm job train", "job FAILED, no model left; rerun worked", 0
    )


def test_interrupting_snakemake_cancels_its_jobs(cluster, tmp_path):
    """SIGINT to the head snakemake scancels the running train job; nothing stays in squeue; the run says
    it was interrupted (not only Snakemake's "At least one job did not complete successfully")."""
    folder = copy_repository(tmp_path / "repo")
    config = {
        "datasets": DIGITS,
        "experiments": {"digits_long": {"dataset": "digits", "model": {"name": "mlp"}, "train": {"epochs": 5000}}},
    }
    (folder / "long.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": str(folder),
        "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    since = now()
    log = (tmp_path / "snakemake.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "results/runs/digits_long/seed0/metrics.json", "--profile", "slurm",
         *FAST_POLL, "--configfile", "long.yaml"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background start ignores SIGINT
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "rule_train" not in running_comments() and time.monotonic() < deadline:
            assert process.poll() is None, "snakemake ended before its train job ran"
            time.sleep(1)
        assert "rule_train" in running_comments(), "the train job never started"

        process.send_signal(signal.SIGINT)
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    output = (tmp_path / "snakemake.log").read_text()
    assert "snakemake was interrupted (Ctrl-C)" in output and "no job had failed" in output, output[-3000:]

    deadline = time.monotonic() + 60
    while slurm_command("squeue", "-h", "-o", "%i").strip() and time.monotonic() < deadline:
        time.sleep(1)
    assert slurm_command("squeue", "-h", "-o", "%i").strip() == ""
    train = [row for row in wait_for_sacct(since, 3, timeout=30) if row["Comment"].startswith("rule_train")]
    assert train and train[-1]["State"].startswith("CANCELLED"), train


def wait_for_checkpoint(folder: pathlib.Path, experiment: str, epoch: int, process: subprocess.Popen) -> None:
    """Until the train job of `experiment` (seed 0) has checkpointed at `epoch` or later (10 minutes at most)."""
    deadline, state = time.monotonic() + 600, None
    while time.monotonic() < deadline and process.poll() is None:
        states = list((folder / f"results/checkpoints/{experiment}/seed0").glob("*/state.json"))
        state = json.loads(states[0].read_text()) if states else None
        if state and state["epoch"] >= epoch:
            return
        time.sleep(0.5)
    raise AssertionError(f"training never reached epoch {epoch}")


def running_train_job() -> str:
    """The Slurm job id of the running train job."""
    jobs = slurm_command("squeue", "-h", "-t", "R", "-o", "%i %k").split("\n")
    return next(line.split()[0] for line in jobs if "rule_train" in line)


def running_comments() -> str:
    return slurm_command("squeue", "-h", "-t", "R", "-o", "%k")


def test_sigterm_through_slurm_checkpoints_and_the_retry_resumes(cluster, tmp_path, reliability):
    """`scancel --signal=TERM` on a running train job: the trainer saves a checkpoint and exits non-zero, the
    profile's retry resubmits it, training resumes from the checkpoint, and the metrics equal an uninterrupted run's."""
    folder = copy_repository(tmp_path / "repo")
    config = {"datasets": DIGITS, "experiments": {"digits_term": {
        "dataset": "digits", "model": {"name": "mlp", "hidden_units": [512, 512]},  # about 1 s per epoch
        "train": {"epochs": 12, "batch_size": 8, "optimizer": {"name": "adam", "learning_rate": 0.0003}},
    }}}  # fmt: skip
    (folder / "term.yaml").write_text(yaml.safe_dump(config))
    target = "results/runs/digits_term/seed0/metrics.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(folder),
        "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    since = now()
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", target, "--profile", "slurm", *FAST_POLL, "--configfile", "term.yaml"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_checkpoint(folder, "digits_term", 3, process)
        time.sleep(0.3)  # into the epoch (about 1 s), so the SIGTERM checkpoint usually lands mid-epoch
        train_job = running_train_job()
        slurm_command("scancel", "--signal=TERM", train_job)
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, output[-5000:]
    info = json.loads((folder / "results/runs/digits_term/seed0/train.json").read_text())
    # The trainer checks for SIGTERM before each batch: a signal that arrives while an epoch starts
    # is saved at batch 0 (the same state as the epoch's end); tests/test_resume.py pins the batch.
    assert info["attempts"] == 2 and info["resumed_from"]["epoch"] >= 3, info
    log = (folder / "results/logs/train/digits_term/seed0.log").read_text()
    resumed = f"epoch {info['resumed_from']['epoch']}, batch {info['resumed_from']['batch']}"
    assert "resuming from results/checkpoints/digits_term/seed0/" in log and resumed in log, log[-3000:]
    trains = [row for row in wait_for_sacct(since, 2) if row["Comment"].startswith("rule_train")]
    assert [row["State"].split()[0] for row in trains] == ["FAILED", "COMPLETED"], trains

    local = copy_repository(tmp_path / "local")
    (local / "term.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(local, target, "--cores", "2", "--configfile", "term.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (local / target).read_bytes() == (folder / target).read_bytes()
    reliability("scancel --signal=TERM on a running Slurm train job", "Slurm job train",
                "checkpoint saved, profile retry resumed; metrics.json equal to a local run", 0)  # fmt: skip


SITE_PROFILE = {  # what a site puts in ~/.config/snakemake/<name>/config.yaml (docs/cluster.md)
    "default-resources": {"slurm_partition": "cpu", "slurm_account": "tflc_site", "runtime": 30, "mem_mb": 4000,
                          "cpus_per_task": 1},
}  # fmt: skip
SITE_RUNS = {"datasets": DIGITS, "experiments": {
    # About 1 s per epoch on the test machine: time to scancel it mid-training.
    "digits_stop": {"dataset": "digits", "model": {"name": "mlp", "hidden_units": [512, 512]},
                    "train": {"epochs": 12, "batch_size": 8, "optimizer": {"name": "adam", "learning_rate": 0.0003}}},
    # A table model on images: the train job fails on its shards every time. (A CNN too deep for 8x8 digits
    # would be refused before any job: workflow/config/settings.py knows that dataset's image size.)
    "digits_misfit": {"dataset": "digits", "model": {"name": "linear"}, "train": {"epochs": 2}},
}}  # fmt: skip


@pytest.fixture(scope="module")
def site_repo(cluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the repository and a site profile in its own XDG config folder, found by name."""
    root = tmp_path_factory.mktemp("site")
    folder = copy_repository(root / "repo")
    (folder / "site.yaml").write_text(yaml.safe_dump(SITE_RUNS))
    profile = root / "xdg" / "snakemake" / "tfl-site"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text(yaml.safe_dump(SITE_PROFILE))
    env = {
        **os.environ,
        "PYTHONPATH": str(folder),
        "XDG_CONFIG_HOME": str(root / "xdg"),
        "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return {"folder": folder, "env": env}


def site_snakemake(site_repo: dict, *args: str, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", *args, "--profile", "slurm", "--profile", "tfl-site",
               "--configfile", "site.yaml"]  # fmt: skip
    return subprocess.Popen(command, cwd=site_repo["folder"], env=site_repo["env"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


def test_site_profile_and_a_plain_scancel_is_retried(site_repo):
    """The site profile (found by name in the XDG config folder, layered on ./slurm) gives every job its
    account; a plain `scancel` of the running train job (sacct: "CANCELLED by 0") is noticed within
    seconds, resubmitted, and the run finishes instead of waiting forever."""
    folder = site_repo["folder"]
    since = now()
    process = site_snakemake(site_repo, "results/runs/digits_stop/seed0/train.json")
    try:
        wait_for_checkpoint(folder, "digits_stop", 2, process)
        train_job = running_train_job()
        slurm_command("scancel", train_job)  # what users and admins type: no --signal
        output, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, output[-5000:]
    rows = wait_for_sacct(since, 3)
    trains = [row for row in rows if row["Comment"].startswith("rule_train")]
    assert [row["State"].split()[0] for row in trains] == ["CANCELLED", "COMPLETED"], trains
    accounts = slurm_command("sacct", "-n", "-X", "-P", "-S", since, "-o", "JobID,Account").split()
    assert accounts and all(line.endswith("|tflc_site") for line in accounts), accounts
    assert "invalid option" not in output and "trying to guess" not in output, output[-3000:]
    times = slurm_command("sacct", "-n", "-X", "-P", "-j", ",".join(row["JobID"] for row in trains),
                          "-o", "JobID,Submit,End").split()  # fmt: skip
    ended = time.mktime(time.strptime(times[0].split("|")[2], "%Y-%m-%dT%H:%M:%S"))
    resubmitted = time.mktime(time.strptime(times[1].split("|")[1], "%Y-%m-%dT%H:%M:%S"))
    print(f"plain scancel: resubmitted {resubmitted - ended:.0f} s after the cancellation")
    assert resubmitted - ended <= 30  # first poll 5 s after a change, +10 s per empty poll
    info = json.loads((folder / "results/runs/digits_stop/seed0/train.json").read_text())
    assert info["attempts"] == 2 and info["resumed_from"]["epoch"] >= 2, info


def test_a_deterministic_error_is_not_resubmitted(site_repo):
    """A model that cannot fit its data fails once, as one Slurm job: no second queue wait. The error
    shows the log's last lines, and `python -m workflow.infra.slurm_jobs list` names the rule and state."""
    folder = site_repo["folder"]
    since = now()
    process = site_snakemake(site_repo, "results/runs/digits_misfit/seed0/train.json")
    output, _ = process.communicate(timeout=600)

    assert process.returncode != 0, output[-3000:]
    assert "is not resubmitted" in output and "model.name linear: takes a table" in output, output
    assert "results/logs/train/digits_misfit/seed0.log" in output
    trains = [row for row in wait_for_sacct(since, 1) if row["Comment"].startswith("rule_train")]
    assert [row["State"].split()[0] for row in trains] == ["FAILED"], trains
    listing = subprocess.run([sys.executable, "-m", "workflow.infra.slurm_jobs", "list"], cwd=folder,
                             env=site_repo["env"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    line = next(line for line in listing.stdout.splitlines() if line.startswith(trains[0]["JobID"]))
    assert line.split()[1:4] == ["train", "digits_misfit_0", "FAILED"], listing.stdout
    assert "last lines of" in listing.stdout


def test_cancel_command_cancels_what_a_run_left(site_repo):
    """`python -m workflow.infra.slurm_jobs cancel RUN_ID` scancels the run's queued and running jobs, and no other."""
    run_id = "leftover-run"
    ours = [slurm_command("sbatch", "--parsable", "-J", run_id, "-p", "cpu", "--wrap", "sleep 300").strip()
            for _ in range(2)]  # fmt: skip
    other = slurm_command("sbatch", "--parsable", "-J", "another-run", "-p", "cpu", "--wrap", "sleep 300").strip()
    try:
        result = subprocess.run([sys.executable, "-m", "workflow.infra.slurm_jobs", "cancel", run_id],
                                cwd=site_repo["folder"], env=site_repo["env"], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"cancelled 2 job(s): {' '.join(ours)}" in result.stdout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(ours) & set(slurm_command("squeue", "-h", "-o", "%i").split()):
            time.sleep(0.5)
        left = slurm_command("squeue", "-h", "-o", "%i").split()
        assert not set(ours) & set(left) and other in left
    finally:
        subprocess.run(["scancel", *ours, other], check=False)


def test_a_users_own_model_and_dataset_train_and_evaluate_as_slurm_jobs(cluster, tmp_path):
    """examples/shapes/ through the profile: its tfds builder (download, a localrule) and its model and
    augmentation (the train job), and its custom layers loaded by the evaluate job, imported on the node
    from the shared file system (docs/your-own-code.md)."""
    folder = copy_repository(tmp_path / "repo")
    since = now()
    target = "results/runs/shapes_mobilenet/seed0/metrics.json"
    result = snakemake(folder, target, "--profile", "slurm", *FAST_POLL, "--configfile", "examples/shapes/config.yaml",
                       timeout=900, slurm=True)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    comments = [row["Comment"] for row in wait_for_sacct(since, 3)]
    assert any(c.startswith("rule_tfrecord") for c in comments), comments
    assert any(c.startswith("rule_train") for c in comments), comments
    assert any("after_training" in c for c in comments), comments  # evaluate, in the group of small steps
    metrics = json.loads((folder / target).read_text())
    assert metrics["examples"] == 300 and metrics["accuracy"] >= 0.9, metrics


SWEEP_RUNS = {"datasets": DIGITS, "experiments": {"digits_sweep": {
    "dataset": "digits", "model": {"name": "mlp", "hidden_units": [32]},
    "train": {"epochs": 1, "optimizer": {"name": "adam", "learning_rate": 0.01}},
    "sweep": {"grid": {"train.optimizer.learning_rate": [0.1, 0.03, 0.01, 0.003, 0.001],
                       "train.batch_size": [32, 64, 128, 256]}},  # 5 x 4 = 20 points
}}}  # fmt: skip
IN_FLIGHT = 3  # the sweep's profile: `jobs: 3`, below what the 2-CPU test node could run plus queue


def run_watching_the_queue(folder: pathlib.Path, env: dict, stop_after: int | None = None) -> tuple[int, str, int]:
    """The sweep's trainings through the layered profiles, polling squeue: (exit status, output, most of this
    run's jobs seen queued or running at once). `stop_after`: SIGINT once that many trainings have finished."""
    command = [sys.executable, "-m", "snakemake", "--until", "train", "--profile", "slurm", "--profile", "tfl-sweep",
               *FAST_POLL, "--configfile", "sweep.yaml"]  # fmt: skip
    log = folder.parent / f"snakemake-{time.monotonic_ns()}.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        most, deadline = 0, time.monotonic() + 1200
        try:
            while process.poll() is None and time.monotonic() < deadline:
                queued = slurm_command("squeue", "-h", "-o", "%k").split()
                most = max(most, sum(comment.startswith("rule_") for comment in queued))
                if stop_after is not None and len(trained(folder)) >= stop_after:
                    time.sleep(2)  # the job's own snakemake records the training finished just after train.json
                    process.send_signal(signal.SIGINT)
                    stop_after = None
                time.sleep(0.5)
            process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
    return process.returncode, log.read_text(), most


def trained(folder: pathlib.Path) -> dict[str, int]:
    """Point -> train.json's modification time (ns), for every finished training of the sweep."""
    return {path.parent.parent.name: path.stat().st_mtime_ns
            for path in (folder / "results/runs").glob("digits_sweep-*/seed0/train.json")}  # fmt: skip


def test_a_sweep_on_slurm_keeps_its_jobs_bounded_and_resumes_after_an_interruption(cluster, tmp_path):
    """20 points through `--profile slurm` with a site profile of `jobs: 3`: never more than 3 of the run's jobs
    queued or running. Ctrl-C after 6 trainings; the dry run then plans every training not finished and none
    that is, and the second run submits just those and leaves the finished ones' files as they were."""
    folder = copy_repository(tmp_path / "repo")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(SWEEP_RUNS))
    profile = tmp_path / "xdg" / "snakemake" / "tfl-sweep"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text(yaml.safe_dump({"jobs": IN_FLIGHT}))
    env = {**os.environ, "PYTHONPATH": str(folder), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip

    status, output, most = run_watching_the_queue(folder, env, stop_after=6)
    assert status != 0 and "snakemake was interrupted (Ctrl-C)" in output, output[-3000:]
    deadline = time.monotonic() + 60
    while slurm_command("squeue", "-h", "-o", "%i").strip() and time.monotonic() < deadline:
        time.sleep(1)
    finished = trained(folder)
    plan = snakemake(folder, "-n", "--until", "train", "--rerun-incomplete", "--configfile", "sweep.yaml")
    planned = set(re.findall(r"exp=(digits_sweep-[\w-]+)", plan.stdout + plan.stderr))
    kept = {point: mtime for point, mtime in finished.items() if point not in planned}
    since = now()
    status, output, most_again = run_watching_the_queue(folder, env)

    assert status == 0, output[-5000:]
    assert most == most_again == IN_FLIGHT, (most, most_again)  # the bound held, and it was what held them back
    assert 6 <= len(kept) < 20 and len(planned) + len(kept) == 20, (sorted(planned), sorted(kept))
    again = trained(folder)
    assert len(again) == 20
    assert {point: again[point] for point in kept} == kept  # finished trainings untouched
    trains = [row for row in wait_for_sacct(since, len(planned)) if row["Comment"].startswith("rule_train")]
    assert len(trains) == len(planned), trains
    print(f"sweep on Slurm: {len(kept)} of 20 trainings finished before Ctrl-C, {len(trains)} submitted after")
