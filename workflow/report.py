"""The reproduction table: every experiment and seed, mean and std across seeds, verdicts, parity.

Writes `reproduction.md` and `reproduction.csv` into the report folder. Each run folder holds
metrics.json, train.json and parity.json (parity only when the run converts models).
"""

from __future__ import annotations

import csv
import io
import pathlib
import statistics
from typing import Any

from workflow.atomic import atomic_path, read_json, write_text

COLUMNS = (
    "experiment",
    "seed",
    "dataset",
    "model",
    "accuracy",
    "error",
    "loss",
    "target",
    "verdict",
    "margin",
    "parity",
    "worst_format",
    "train_seconds",
    "examples_per_second",
)


def write_report(
    *, run_dirs: list[str], output_dir: str, title: str, experiments: dict[str, Any]
) -> list[dict[str, Any]]:
    """Collect every run folder into a table; write Markdown and CSV atomically as one folder."""
    rows = [run_row(pathlib.Path(folder), experiments) for folder in run_dirs]
    with atomic_path(output_dir) as temporary:
        temporary.mkdir()
        write_text(temporary / "reproduction.csv", to_csv(rows))
        write_text(temporary / "reproduction.md", to_markdown(title, rows, summarize(rows)))
    return rows


def run_row(folder: pathlib.Path, experiments: dict[str, Any]) -> dict[str, Any]:
    """One table row from a run folder `results/runs/<experiment>/seed<k>`."""
    experiment, seed = folder.parent.name, int(folder.name.removeprefix("seed"))
    metrics = read_json(folder / "metrics.json")
    train = read_json(folder / "train.json")
    parity = read_json(folder / "parity.json") if (folder / "parity.json").exists() else None
    target = experiments[experiment]["target"]
    verdict = metrics.get("verdict")
    worst = None
    if parity and parity["formats"]:
        worst = max(parity["formats"], key=lambda name: parity["formats"][name]["max_abs_diff"])
    return {
        "experiment": experiment,
        "seed": seed,
        "dataset": experiments[experiment]["dataset"],
        "model": train["params"]["model"]["name"],
        "accuracy": metrics["accuracy"],
        "error": metrics["error"],
        "loss": metrics["loss"],
        "target": f"{target['metric']} {target['value']} ({target['direction']})" if target else "",
        "verdict": ("pass" if verdict["passed"] else "fail") if verdict else "",
        "margin": verdict["margin"] if verdict else "",
        "parity": ("pass" if parity["passed"] else "fail") if parity else "not run",
        "worst_format": f"{worst} {parity['formats'][worst]['max_abs_diff']:.2g}" if worst else "",
        "train_seconds": train["wall_seconds"],
        "examples_per_second": train["examples_per_second"],
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and population std of accuracy and error across the seeds of each experiment."""
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_experiment.setdefault(row["experiment"], []).append(row)
    summary = []
    for experiment, group in by_experiment.items():
        accuracies = [row["accuracy"] for row in group]
        summary.append(
            {
                "experiment": experiment,
                "seeds": len(group),
                "accuracy_mean": statistics.fmean(accuracies),
                "accuracy_std": statistics.pstdev(accuracies),
                "error_mean": 1.0 - statistics.fmean(accuracies),
                "target": group[0]["target"],
                "verdicts": ", ".join(row["verdict"] for row in group if row["verdict"]),
            }
        )
    return summary


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The per-run table as CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def to_markdown(title: str, rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str:
    """Summary across seeds, then the per-run table, as Markdown."""
    lines = [f"# {title}", "", "## Across seeds", ""]
    summary_columns = ("experiment", "seeds", "accuracy_mean", "accuracy_std", "error_mean", "target", "verdicts")
    lines += _table(summary_columns, summary)
    lines += ["", "## Runs", ""]
    lines += _table(COLUMNS, rows)
    return "\n".join(lines) + "\n"


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[column]) for column in columns) + " |" for row in rows]
    return lines
