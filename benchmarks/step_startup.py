"""Per-step start-up: the fixed cost each step's process pays before its work, against that work.

    python benchmarks/step_startup.py [--results results] [--repeats 5] [--before DIR]

Each step runs as its own Python process (Snakemake's `script:`). Its start-up is measured as a
fresh interpreter running the step script's import statements (interpreter, TensorFlow and the
rest), median of `--repeats` runs; its total is the median wall time of its jobs in a finished run
(`results/benchmarks/<step>/*.tsv`, written by Snakemake's `benchmark:`), so its work is total
minus start-up. `--before DIR` measures the start-up of another checkout (for example
`git worktree add /tmp/before <commit>`) in the same run, interleaved, and prints both shares.
"""

from __future__ import annotations

import argparse
import ast
import csv
import pathlib
import re
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import REPO, header, interleaved, table, timed  # noqa: E402


def step_scripts(checkout: pathlib.Path) -> dict[str, pathlib.Path]:
    """Rule name -> the script it runs, read from the checkout's rules/*.smk."""
    scripts = {}
    for path in sorted((checkout / "rules").glob("*.smk")):
        for rule, script in re.findall(
            r'(?ms)^rule (\w+):.*?^    script:\n\s+"\.\./(scripts/\w+\.py)"', path.read_text()
        ):
            scripts[rule] = checkout / script
    return scripts


def import_lines(script: pathlib.Path) -> str:
    """The script's import statements, in order, as one program."""
    tree = ast.parse(script.read_text(), filename=str(script))
    lines = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines) or "pass"


def start_up_seconds(program: str, checkout: pathlib.Path) -> dict[str, float]:
    """Wall seconds of a fresh interpreter running `program` with `checkout` first on sys.path."""
    code = f"import sys; sys.path.insert(0, {str(checkout)!r})\n{program}"
    seconds, completed = timed(lambda: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True))
    if completed.returncode != 0:
        raise RuntimeError(f"imports failed in {checkout}:\n{program}\n{completed.stderr[-2000:]}")
    return {"seconds": seconds}


def step_totals(results: pathlib.Path) -> dict[str, tuple[int, float]]:
    """Rule name -> (jobs, median wall seconds) from Snakemake's benchmark files of a finished run."""
    totals = {}
    for folder in sorted(path for path in (results / "benchmarks").iterdir() if path.is_dir()):
        seconds = []
        for tsv in folder.rglob("*.tsv"):
            with open(tsv) as handle:
                seconds += [float(row["s"]) for row in csv.DictReader(handle, delimiter="\t")]
        if seconds:
            totals[folder.name] = (len(seconds), statistics.median(seconds))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=pathlib.Path, default=REPO / "results")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=pathlib.Path, help="another checkout whose start-up to show alongside")
    args = parser.parse_args()
    if not (args.results / "benchmarks").is_dir():
        sys.exit(f"{args.results}/benchmarks not found: finish a run first (make run)")
    totals = step_totals(args.results)
    checkouts = {"now": REPO} | ({"before": args.before.resolve()} if args.before else {})
    scripts = {name: step_scripts(checkout) for name, checkout in checkouts.items()}
    steps = [step for step in totals if all(step in found for found in scripts.values())]
    measures = {"interpreter": lambda: start_up_seconds("pass", REPO)}
    for step in steps:
        for name, checkout in checkouts.items():
            program = import_lines(scripts[name][step])
            measures[f"{step}@{name}"] = lambda program=program, checkout=checkout: start_up_seconds(program, checkout)
    print(header("Per-step start-up against the step's work (default config)", args.repeats))
    medians = interleaved(measures, args.repeats)
    rows = []
    for step in steps:
        jobs, total = totals[step]
        now = medians[f"{step}@now"]["seconds"]
        work = max(total - now, 0.0)
        row = [step, jobs, total, now, work, now / total]
        if args.before:
            before = medians[f"{step}@before"]["seconds"]
            row += [before, before / (work + before)]
        rows.append(row)
    headers = ["step", "jobs", "step s", "start-up s", "work s", "start-up share"]
    if args.before:
        headers += ["start-up s before", "share before"]
    print(table(headers, rows))
    print(
        f"\nbare interpreter: {medians['interpreter']['seconds']:.3f} s; steps' totals from {args.results}/benchmarks"
    )


if __name__ == "__main__":
    main()
