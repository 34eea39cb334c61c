"""DAG scale: `snakemake -n` wall time and peak memory for 10, 100 and 1000 experiments.

    python benchmarks/dag_scale.py [--sizes 10 100 1000] [--repeats 5] [--sweep]

Each size is a config of N experiments (copies of the default's first experiment, one seed each;
with --sweep, one experiment whose `sweep:` is a random search of N points over its learning rate,
dropout and batch size, expanded by workflow/config/sweep.py while the DAG is built), dry-run by the
project's Snakefile, against a bare Snakefile with the same jobs and edges and trivial shell rules
(bare_workflow.py), measured in turn under /usr/bin/time -v. Target: the project's wall time at
most 1.5 times the bare one's at the largest size (issue "Sweeps": 100 points).
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import re
import sys
import tempfile

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import bare_workflow  # noqa: E402
from harness import BIN, REPO, header, interleaved, run_measured, table  # noqa: E402

from workflow.config.settings import load_config, load_yaml  # noqa: E402

TARGET_RATIO = 1.5


SWEPT = {
    "train.optimizer.learning_rate": {"log_uniform": [0.0001, 0.1]},
    "model.dropout": {"uniform": [0, 0.5]},
    "train.batch_size": {"choice": [16, 32, 64, 128]},
}


def scaled_config(experiments: int, seeds: int = 1, sweep: bool = False) -> dict:
    """The default config with its first experiment copied `experiments` times, or swept over that many points."""
    default = load_yaml(REPO / "configs" / "default.yaml")
    template = next(iter(default["experiments"].values()))
    template = {**copy.deepcopy(template), "seeds": list(range(seeds))}
    if sweep:
        template["sweep"] = {"random": {"points": experiments, "seed": 0, "space": SWEPT}}
        return {"datasets": default["datasets"], "experiments": {"swept": template}}
    return {
        "datasets": default["datasets"],
        "experiments": {f"exp{index:05d}": copy.deepcopy(template) for index in range(experiments)},
    }


def prepare(folder: pathlib.Path, experiments: int, sweep: bool = False) -> dict[str, list[str]]:
    """Config, bare mirror and working folders for one size; the two dry-run commands."""
    config = scaled_config(experiments, sweep=sweep)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    bare = bare_workflow.write(folder / "bare", load_config(copy.deepcopy(config)))
    (folder / "project").mkdir()
    snakemake = str(BIN / "snakemake")
    return {
        "project": [
            snakemake,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(folder / "project"),
            "--configfile",
            str(config_path),
            "--replace-workflow-config",
            "-n",
        ],
        "bare": [snakemake, "-s", str(bare), "--directory", str(folder / "bare"), "-n"],
    }


def without_slurm_client(folder: pathlib.Path) -> dict[str, str]:
    """An environment whose `scontrol` fails at once: the Slurm executor plugin calls it at every Snakemake
    start, and on a machine with Slurm installed but no controller running it waits ~9 s, the same for both
    Snakefiles, which would dilute the ratio (tests/helpers.py without_slurm_client does the same)."""
    (folder / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (folder / "scontrol").chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def job_count(output: pathlib.Path) -> int:
    """The 'total' line of Snakemake's job stats in a dry run's output."""
    match = re.search(r"^total\s+(\d+)\s*$", output.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{output}: no job stats 'total' line in the dry run's output")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="each size as one experiment's random sweep")
    args = parser.parse_args()
    kind = "points of one sweep" if args.sweep else "experiments"
    print(header(f"DAG scale ({kind}): snakemake -n, project Snakefile against a bare one with the same jobs",
                 args.repeats))  # fmt: skip
    rows, ratios = [], {}
    with tempfile.TemporaryDirectory(prefix="dag-scale-") as scratch:
        env = without_slurm_client(pathlib.Path(scratch))
        for size in args.sizes:
            folder = pathlib.Path(scratch) / str(size)
            folder.mkdir()
            commands = prepare(folder, size, args.sweep)
            outputs = {name: folder / f"{name}.out" for name in commands}
            medians = interleaved(
                {
                    name: lambda command=command, output=outputs[name]: run_measured(command, env=env, output=output)
                    for name, command in commands.items()
                },
                args.repeats,
            )
            jobs = {name: job_count(outputs[name]) for name in commands}
            if jobs["project"] != jobs["bare"]:
                raise RuntimeError(
                    f"{size} experiments: the bare Snakefile has {jobs['bare']} jobs, the project {jobs['project']}"
                )
            ratio = medians["project"]["seconds"] / medians["bare"]["seconds"]
            ratios[size] = ratio
            rows.append(
                [
                    size,
                    jobs["project"],
                    medians["project"]["seconds"],
                    medians["bare"]["seconds"],
                    ratio,
                    medians["project"]["peak_mb"],
                    medians["bare"]["peak_mb"],
                    medians["project"]["peak_mb"] / medians["bare"]["peak_mb"],
                ]
            )
    print(
        table(
            ["experiments", "jobs", "project s", "bare s", "time ratio", "project MB", "bare MB", "memory ratio"], rows
        )
    )
    largest = max(ratios)
    verdict = "meets" if ratios[largest] <= TARGET_RATIO else "MISSES"
    print(f"\nat {largest} experiments: time ratio {ratios[largest]:.2f}, {verdict} the target (<= {TARGET_RATIO})")
    sys.exit(0 if ratios[largest] <= TARGET_RATIO else 1)


if __name__ == "__main__":
    main()
