"""Slurm polling: the default DAG through `--profile slurm` against the same DAG run locally.

    python benchmarks/slurm_polling.py [--plugin-defaults] [--cores 2]     (make bench-slurm)

Needs a live Slurm (on this project's machines: `tests/slurm/cluster.sh start`). In one run, side by
side, each in a fresh copy of the repository: `snakemake --cores N` (local), then `snakemake
--profile slurm` (the shipped profile: squeue, first poll 5 s after a change); with
`--plugin-defaults` also the profile with the plugin's own polling (sacct, 40 s). Every line of
Snakemake's output is timestamped, which gives the wall time, the idle tail between "100% done" and
the exit, and the delay from each Slurm job's end (sacct End) to Snakemake's "Finished job".
Figures: the Slurm/local wall-time ratio (reported; on the one-node, 2-core test cluster most of the
difference is each job's own start: a fresh Snakemake in every job, and the jobs queue behind each
other). Targets, from the profile's design (first poll 5 s after a change, +10 s per empty poll):
every job's end noticed within 20 s, and at most 10 s idle after "100% done" (plugin defaults: up to
40 s and more).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
COPIED = ("Snakefile", "rules", "scripts", "workflow", "configs", "envs", "docs", "slurm")
NOTICE_TARGET_S = 20.0
TAIL_TARGET_S = 10.0
FINISHED = re.compile(r"Finished jobid: (\d+)|Finished job (\d+)\.")
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+)")


def copy(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    return folder


def run(folder: pathlib.Path, args: list[str]) -> dict[str, float]:
    """Wall seconds, idle tail after "100%", and the mean and max delay from a Slurm job's end to Snakemake noticing."""
    env = {**os.environ, "PYTHONPATH": str(folder), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    started = time.time()
    process = subprocess.Popen([str(BIN / "snakemake"), *args], cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[tuple[float, str]] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    process.wait()
    ended = time.time()
    if process.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n" + "\n".join(text for _, text in lines[-40:]))
    done = [stamp for stamp, text in lines if "100%) done" in text]
    figures = {"wall_s": ended - started, "tail_s": ended - done[-1] if done else 0.0}
    slurm_ids = {match.group(1): match.group(2) for _, text in lines for match in [SUBMITTED.search(text)] if match}
    if slurm_ids:
        ends = slurm_ends(list(slurm_ids.values()))
        delays = []
        for stamp, text in lines:
            match = FINISHED.search(text)
            job = match and (match.group(1) or match.group(2))
            if job in slurm_ids and slurm_ids[job] in ends:
                delays.append(max(0.0, stamp - ends[slurm_ids[job]]))
        figures["notice_mean_s"] = sum(delays) / len(delays) if delays else 0.0
        figures["notice_max_s"] = max(delays, default=0.0)
        figures["slurm_jobs"] = float(len(slurm_ids))
    return figures


def slurm_ends(ids: list[str]) -> dict[str, float]:
    """Slurm job id -> end time (epoch seconds; sacct has whole seconds)."""
    for _ in range(30):  # slurmdbd records the end with a delay
        text = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(ids), "-o", "JobIDRaw,End"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        ends = {job: time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
                for job, end in (line.split("|") for line in text.split()) if end[:1].isdigit()}  # fmt: skip
        if len(ends) == len(ids):
            return ends
        time.sleep(1)
    return ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", default="2")
    parser.add_argument("--plugin-defaults", action="store_true", help="also run the profile with the plugin's polling")
    args = parser.parse_args()
    if shutil.which("sbatch") is None or subprocess.run(["scontrol", "ping"], capture_output=True).returncode:
        sys.exit("no live Slurm controller (tests/slurm/cluster.sh start)")
    runs = {
        "local": ["--cores", args.cores],
        "profile": ["--profile", "slurm"],
    }
    if args.plugin_defaults:
        runs["plugin defaults"] = ["--profile", "slurm", "--slurm-status-command", "sacct",
                                   "--slurm-init-seconds-before-status-checks", "40"]  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="slurm-polling-") as scratch:
        for name, extra in runs.items():
            print(f"  {name}: snakemake {' '.join(extra)}", file=sys.stderr, flush=True)
            results[name] = run(copy(pathlib.Path(scratch) / name.replace(" ", "_")), extra)
            print(f"  {name}: {results[name]}", file=sys.stderr, flush=True)
    print("| run | wall s | idle after 100% s | Slurm jobs | noticed after job end: mean s | max s | / local |")
    print("|---|---|---|---|---|---|---|")
    local = results["local"]["wall_s"]
    for name, figures in results.items():
        print(f"| {name} | {figures['wall_s']:.0f} | {figures['tail_s']:.1f} | {figures.get('slurm_jobs', 0):.0f} | "
              f"{figures.get('notice_mean_s', 0):.1f} | {figures.get('notice_max_s', 0):.1f} | "
              f"{figures['wall_s'] / local:.2f} |")  # fmt: skip
    ratio = results["profile"]["wall_s"] / local
    profile = results["profile"]
    met = profile.get("notice_max_s", 0) <= NOTICE_TARGET_S and profile["tail_s"] <= TAIL_TARGET_S
    print(f"profile/local wall time: {ratio:.2f}; job end noticed within {profile.get('notice_max_s', 0):.1f} s "
          f"(target {NOTICE_TARGET_S:.0f}), idle after 100%: {profile['tail_s']:.1f} s (target {TAIL_TARGET_S:.0f}): "
          f"{'met' if met else 'MISSED'}")  # fmt: skip
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
