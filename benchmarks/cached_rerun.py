"""Cached rerun: `snakemake` on a finished run, against a bare Snakefile's no-op with the same jobs.

    python benchmarks/cached_rerun.py [--workdir .] [--configfile configs/default.yaml] [--repeats 5]

Needs a finished run in `--workdir` (`make run`). The bare Snakefile (bare_workflow.py: the same
jobs and edges, `touch` for commands) is run to completion once in a scratch folder; then both
no-ops (`snakemake --cores 1`, nothing to do) are timed in turn under /usr/bin/time -v.
Target: project/bare wall time at most 1.5.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import bare_workflow  # noqa: E402
from dag_scale import job_count  # noqa: E402
from harness import BIN, REPO, header, interleaved, run_measured, table  # noqa: E402

from workflow.config.settings import load_config, load_yaml  # noqa: E402

TARGET = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=REPO)
    parser.add_argument("--configfile", type=pathlib.Path, default=REPO / "configs" / "default.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    snakemake = str(BIN / "snakemake")
    project = [
        snakemake,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(args.workdir.resolve()),
        "--configfile",
        str(args.configfile.resolve()),
        "--replace-workflow-config",
    ]
    with tempfile.TemporaryDirectory(prefix="cached-rerun-") as scratch:
        folder = pathlib.Path(scratch)
        bare = [
            snakemake,
            "-s",
            str(bare_workflow.write(folder, load_config(load_yaml(args.configfile)))),
            "--directory",
            str(folder),
        ]
        subprocess.run([*bare, "--cores", "2", "--quiet", "all"], check=True, capture_output=True)
        for name, command in (("project", project), ("bare", bare)):
            run_measured([*command, "-n"], output=folder / f"{name}.noop")
            if "Nothing to be done" not in (folder / f"{name}.noop").read_text():
                sys.exit(f"{name}: the run is not finished (a dry run plans jobs): run `make run` first")
            run_measured([*command, "-n", "-F"], output=folder / f"{name}.all")
        jobs = {name: job_count(folder / f"{name}.all") for name in ("project", "bare")}
        if jobs["project"] != jobs["bare"]:
            raise RuntimeError(f"the bare Snakefile has {jobs['bare']} jobs, the project {jobs['project']}")
        print(header(f"Cached rerun: snakemake --cores 1 on a finished run of {jobs['project']} jobs", args.repeats))
        medians = interleaved(
            {
                "project": lambda: run_measured([*project, "--cores", "1"], output=folder / "project.out"),
                "bare": lambda: run_measured([*bare, "--cores", "1"], output=folder / "bare.out"),
            },
            args.repeats,
        )
    ratio = medians["project"]["seconds"] / medians["bare"]["seconds"]
    rows = [[name, figures["seconds"], figures["peak_mb"]] for name, figures in medians.items()]
    print(table(["no-op", "seconds", "peak MB"], rows))
    print(f"\nproject/bare {ratio:.2f} (target <= {TARGET})")
    sys.exit(0 if ratio <= TARGET else 1)


if __name__ == "__main__":
    main()
