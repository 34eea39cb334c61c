"""A Slurm run's jobs, for people and for the profile (docs/cluster.md).

snakemake-executor-plugin-slurm names every job of a run by the run's UUID (`SLURM run ID: ...` in
Snakemake's log) and puts the rule and wildcards into the job's comment. This module

- lists a run's jobs with their rule, wildcards, state and log, and the last lines of a failed
  job's logs: `python -m workflow.infra.slurm_jobs list [RUN_ID]` (`make slurm-jobs`);
- cancels what a run left queued or running (an interrupted cancellation, a killed head
  process): `python -m workflow.infra.slurm_jobs cancel [RUN_ID]` (`make slurm-cancel`);
- decides, in the Snakemake head process, whether a failed train job is worth resubmitting:
  `retry_guard`, wired to the train rule by slurm/config.yaml's `set-resources`;
- replaces the plugin's failed account guess with what actually happens (`explain_account_guess`).

RUN_ID defaults to the latest run's, read from .snakemake/log/.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import re
import subprocess
import sys
from typing import Any

SLURM_LOGS = pathlib.Path(".snakemake/slurm_logs")
SNAKEMAKE_LOGS = pathlib.Path(".snakemake/log")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
TAIL = 15  # lines of a failed job's log shown by `list`

# What a train log ends with when the trainer stopped on SIGTERM (time limit, preemption, scancel):
# it saved a checkpoint, and a resubmission resumes from it (workflow/train/checkpoint.py, workflow/train/trainer.py).
STOPPED_ON_SIGNAL = ("TrainingInterruptedError", "stopped by SIGTERM", "SIGTERM: saving a checkpoint")


# snakemake-executor-plugin-slurm 2.8, with no `slurm_account`, guesses one by running
# `sacct -nu USER -o Account%256 | tail -1` without a shell: sacct gets `| tail -1` as arguments and
# fails ("sacct: invalid option -- '1'"), on every run of every cluster. Its `--slurm-no-account`
# flag is read nowhere. The jobs then go without `-A`, which is sbatch's own default.
ACCOUNT_GUESS = (
    "No SLURM account given, trying to guess.",
    "No account was given, not able to get a SLURM account via sacct",
)
ACCOUNT_GUESS_FAILED = "Unable to guess SLURM account. Trying to proceed without."
NO_ACCOUNT = (
    "No slurm_account is set: jobs are submitted without -A, so Slurm charges your default account. "
    'To choose one, set default-resources: slurm_account in a site profile (docs/cluster.md, "Site settings").'
)


class _AccountGuessFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(ACCOUNT_GUESS):
            return False
        if message == ACCOUNT_GUESS_FAILED:
            record.msg, record.args = NO_ACCOUNT, ()
        return True


def explain_account_guess() -> None:
    """Drop the plugin's broken account guess from Snakemake's log and say what happens instead.

    The plugin logs through Snakemake's logger (`snakemake.logging`); a guess that works
    ("Guessed SLURM account: ...") is still shown.
    """
    logger = logging.getLogger("snakemake.logging")
    if not any(isinstance(existing, _AccountGuessFilter) for existing in logger.filters):
        logger.addFilter(_AccountGuessFilter())


class NotRetriedError(Exception):
    """A failed job whose error a resubmission would only repeat."""


def retry_guard(wildcards: Any, attempt: int, results: str = "results") -> int:
    """Resource `retry_guard` of the train job: the attempt, or an error when a retry cannot help.

    Snakemake evaluates resources again before it resubmits a failed job (with `attempt` + 1). The
    trainer's log tells the cases apart: a SIGTERM stop (time limit, preemption, plain `scancel`)
    saved a checkpoint, and a log without a Python traceback ends where the job was killed from
    outside (node failure, out of memory, SIGKILL): both are resubmitted. A traceback without a
    SIGTERM stop is a deterministic error (a config the model cannot fit, a damaged input): the
    retry would repeat it after a second queue wait, so the run stops here and says why.
    """
    if attempt <= 1:
        return 1
    log = pathlib.Path(results) / "logs" / "train" / wildcards.exp / f"seed{wildcards.seed}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    # The log is appended to by every attempt: the last traceback is the last failure's.
    last_failure = text[text.rfind("Traceback") :] if "Traceback" in text else ""
    if not last_failure or any(marker in last_failure for marker in STOPPED_ON_SIGNAL):
        return attempt
    tail = "\n".join(f"    {line}" for line in text.splitlines()[-TAIL:])
    raise NotRetriedError(
        f"train {wildcards.exp} seed{wildcards.seed} failed with an error that a retry would repeat "
        f"(not a time limit, preemption, cancellation or node failure), so it is not resubmitted. "
        f"Last lines of {log}:\n{tail}"
    )


def latest_run_id(folder: pathlib.Path = pathlib.Path(".")) -> str | None:
    """The SLURM run ID of the newest Snakemake log in `folder`/.snakemake/log that has one."""
    logs = sorted((folder / SNAKEMAKE_LOGS).glob("*.snakemake.log"), key=lambda path: path.stat().st_mtime)
    for path in reversed(logs):
        match = RUN_ID.search(path.read_text(errors="replace"))
        if match:
            return match.group(1)
    return None


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


def split_comment(comment: str) -> tuple[str, str]:
    """('train', 'digits_cnn/0') from the plugin's 'rule_train_wildcards_digits_cnn_0' comment."""
    name, _, wildcards = comment.partition("_wildcards_")
    for prefix in ("rule_", "group_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name, wildcards


def jobs(run_id: str) -> list[dict[str, str]]:
    """The run's Slurm jobs (allocations), oldest first: id, rule, wildcards, state, partition, elapsed."""
    fields = ["JobIDRaw", "State", "Partition", "Elapsed", "ExitCode", "Comment"]
    text = _run(["sacct", "-X", "-n", "-P", "-S", "now-7days", "--name", run_id, "-o", ",".join(fields)])
    rows = [dict(zip(fields, line.split("|", len(fields) - 1), strict=True)) for line in text.splitlines() if line]
    # Jobs that slurmdbd has not recorded yet are in squeue.
    known = {row["JobIDRaw"] for row in rows}
    queue = _run(["squeue", "-h", "--name", run_id, "-o", "%i|%T|%P|%M|%k"])
    for line in queue.splitlines():
        job_id, state, partition, elapsed, comment = line.split("|", 4)
        if job_id not in known:
            rows.append(dict(zip(fields, [job_id, state, partition, elapsed, "", comment], strict=True)))
    result = []
    for row in rows:
        rule, wildcards = split_comment(row["Comment"])
        result.append({
            "job": row["JobIDRaw"], "rule": rule, "wildcards": wildcards, "state": row["State"],
            "partition": row["Partition"], "elapsed": row["Elapsed"], "exit": row["ExitCode"],
            "log": str(slurm_log(row["JobIDRaw"]) or ""),
        })  # fmt: skip
    return sorted(result, key=lambda row: int(row["job"].split("_")[0]) if row["job"].split("_")[0].isdigit() else 0)


def slurm_log(job_id: str, folder: pathlib.Path = pathlib.Path(".")) -> pathlib.Path | None:
    """The plugin's log of a job (kept for failed jobs only: successful jobs' logs are deleted)."""
    found = list((folder / SLURM_LOGS).glob(f"*/*/{job_id}.log")) + list((folder / SLURM_LOGS).glob(f"*/{job_id}.log"))
    return found[0] if found else None


def tail(path: pathlib.Path, count: int = TAIL) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-count:] if path.is_file() else []


def list_jobs(run_id: str, out: Any = sys.stdout) -> list[dict[str, str]]:
    rows = jobs(run_id)
    print(f"SLURM run ID {run_id}: {len(rows)} job(s)", file=out)
    header = ("JOBID", "RULE", "WILDCARDS", "STATE", "PARTITION", "ELAPSED", "LOG")
    table: list[tuple[str, ...]] = [header]
    table += [
        (row["job"], row["rule"], row["wildcards"], row["state"], row["partition"], row["elapsed"], row["log"])
        for row in rows
    ]
    widths = [max(len(line[index]) for line in table) for index in range(len(header))]
    for cells in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip(), file=out)
    for row in rows:
        if row["state"].split()[0] in ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL") and row["log"]:
            print(f"\n{row['rule']} {row['wildcards']} (job {row['job']}, {row['state']}), last lines of {row['log']}:",
                  file=out)  # fmt: skip
            for line in tail(pathlib.Path(row["log"])):
                print(f"    {line}", file=out)
    return rows


def cancel(run_id: str, out: Any = sys.stdout) -> list[str]:
    """scancel every queued or running job of the run; the ids cancelled."""
    # In submission order (squeue lists by priority and state): ids are numbers, array tasks "123_4".
    ids = sorted(_run(["squeue", "-h", "--name", run_id, "-o", "%i"]).split(), key=_job_order)
    if ids:
        _run(["scancel", "--name", run_id])
    print(f"SLURM run ID {run_id}: cancelled {len(ids)} job(s){': ' + ' '.join(ids) if ids else ''}", file=out)
    return ids


def _job_order(job_id: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[_.]", job_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.infra.slurm_jobs", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("list", "cancel"))
    parser.add_argument("run_id", nargs="?", help="SLURM run ID (default: the latest run's, from .snakemake/log)")
    args = parser.parse_args(argv)
    run_id = args.run_id or latest_run_id()
    if not run_id:
        print("no SLURM run ID given and none in .snakemake/log/*.snakemake.log", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            list_jobs(run_id)
        else:
            cancel(run_id)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
