"""A full paper reproduction, end to end, in a clean copy of this checkout.

    python benchmarks/reproduce.py [configs/papers/lenet5_mnist.yaml] [--cores 2] [--keep DIR]

Runs the README's command (`snakemake --configfile CONFIG --cores N`)
in a fresh `git worktree` of HEAD (so the run's manifest records a clean commit), under
/usr/bin/time -v, then prints the reproduction table, the wall time and peak memory, and exits
non-zero when a target is missed. The LeNet-5 config takes about 14 minutes on 2 CPU cores;
its last result is in docs/reproductions.md. Dataset paths in the config are relative to the
repository, so the worktree sits next to it (`../shared` must resolve the same way).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import BIN, REPO, run_measured  # noqa: E402


def reproduction_section(report: pathlib.Path) -> str:
    """The '## Reproduction' table of results/report/reproduction.md."""
    text = report.read_text()
    match = re.search(r"## Reproduction.*?\n\n(\|.*?)(?:\n\n|\Z)", text, re.DOTALL)
    if not match:
        raise RuntimeError(f"{report}: no reproduction table")
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default="configs/papers/lenet5_mnist.yaml")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--keep", type=pathlib.Path, help="worktree folder to create and keep (default: removed)")
    args = parser.parse_args()
    if subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip():
        print("note: the checkout has uncommitted changes; the run uses HEAD without them", file=sys.stderr)
    folder = (args.keep or REPO.parent / f".reproduce-{pathlib.Path(args.config).stem}").resolve()
    if folder.exists():
        sys.exit(f"{folder} exists: remove it or pass another --keep folder")
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), "HEAD"], cwd=REPO, check=True)
    try:
        command = [
            str(BIN / "snakemake"),
            "--configfile",
            args.config,
            "--replace-workflow-config",
            "--cores",
            args.cores,
        ]
        figures = run_measured(
            command, cwd=folder, env={"PYTHONPATH": str(folder)}, output=folder / "run.log", timeout=6 * 3600
        )
        table = reproduction_section(folder / "results/report/reproduction.md")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True)
        print(f"command: {' '.join(command[1:])}  (commit {commit.stdout.strip()}, {args.cores} cores)")
        print(f"wall: {figures['seconds'] / 60:.1f} min, peak memory {figures['peak_mb'] / 1024:.2f} GB\n")
        print(table)
        verdicts = [row.split("|")[8].strip() for row in table.splitlines()[2:]]
        sys.exit(0 if verdicts and all(verdict == "pass" for verdict in verdicts) else 1)
    finally:
        if not args.keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO, check=False)
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
