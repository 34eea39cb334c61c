"""The reproduction report: every experiment and seed, mean and std across seeds, verdicts, parity.

Writes `reproduction.md`, `reproduction.csv` and `reproduction.html`, plus PNG figures (learning
curves per experiment, a confusion matrix per run). Each run folder holds metrics.json, train.json,
history.json and, when the run converts models, parity.json. The verdict across seeds applies the
target to the mean over seeds (LeNet-5's 0.95% is judged on the mean of 3 seeds).
"""

from __future__ import annotations

import csv
import html
import io
import pathlib
import statistics
from typing import Any

from workflow.atomic import atomic_path, read_json, write_text
from workflow.targets import verdict

COLUMNS = (
    "experiment", "seed", "dataset", "model", "accuracy", "error", "loss", "rmse", "r2", "target", "verdict", "margin",
    "parity", "worst_format", "train_seconds", "examples_per_second",
)  # fmt: skip
FORMAT_COLUMNS = (
    "experiment", "seed", "format", "bytes", "latency_ms", "test_accuracy", "accuracy_drop", "test_mae",
    "mae_increase", "max_abs_diff", "flex_ops", "skipped",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "experiment", "seeds", "metric", "paper", "mean", "std", "margin", "verdict", "source",
)  # fmt: skip


def write_report(
    *, run_dirs: list[str], table_paths: dict[str, str], figures_dir: str, title: str, experiments: dict[str, Any]
) -> list[dict[str, Any]]:
    """Collect every run folder; write the tables (md, csv, html) and the figures, each atomically."""
    runs = [load_run(pathlib.Path(folder)) for folder in run_dirs]
    rows = [run_row(run, experiments) for run in runs]
    summary = summarize(rows, experiments)
    formats = [row for run in runs for row in format_rows(run)]
    write_text(table_paths["csv"], to_csv(COLUMNS, rows))
    write_text(table_paths["markdown"], to_markdown(title, rows, summary, formats))
    write_text(table_paths["html"], to_html(title, rows, summary, formats))
    with atomic_path(figures_dir) as temporary:
        temporary.mkdir()
        write_figures(temporary, runs)
    return rows


def load_run(folder: pathlib.Path) -> dict[str, Any]:
    """The JSON files of one run folder `results/runs/<experiment>/seed<k>`."""
    parity_path = folder / "parity.json"
    return {
        "experiment": folder.parent.name,
        "seed": int(folder.name.removeprefix("seed")),
        "metrics": read_json(folder / "metrics.json"),
        "train": read_json(folder / "train.json"),
        "history": read_json(folder / "history.json"),
        "parity": read_json(parity_path) if parity_path.exists() else None,
    }


def run_row(run: dict[str, Any], experiments: dict[str, Any]) -> dict[str, Any]:
    """One table row per run."""
    metrics, train, parity = run["metrics"], run["train"], run["parity"]
    target = experiments[run["experiment"]]["target"]
    judged = metrics.get("verdict")
    formats = {name: entry for name, entry in (parity or {"formats": {}})["formats"].items() if "max_abs_diff" in entry}
    worst = max(formats, key=lambda name: formats[name]["max_abs_diff"]) if formats else None
    return {
        "experiment": run["experiment"],
        "seed": run["seed"],
        "dataset": experiments[run["experiment"]]["dataset"],
        "model": train["params"]["model"]["name"],
        # a classification has accuracy and error, a regression mse, rmse, mae and r2 (workflow/evaluate.py)
        **{key: metrics.get(key, "") for key in ("accuracy", "error", "loss", "mse", "rmse", "mae", "r2")},
        "target": f"{target['metric']} {target['value']} ({target['direction']})" if target else "",
        "verdict": ("pass" if judged["passed"] else "fail") if judged else "",
        "margin": judged["margin"] if judged else "",
        # Largest test-accuracy drop of a converted format (the gate judges it: deploy/verdict.json).
        "parity": _largest_drop(formats) if formats else "not run",
        "worst_format": f"{worst} {formats[worst]['max_abs_diff']:.2g}" if worst else "",
        "train_seconds": train["wall_seconds"],
        "examples_per_second": train["examples_per_second"],
    }


def format_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per deployable format of a run: size, single-example latency, full test-split accuracy and its drop."""
    parity = run["parity"]
    if not parity:
        return []
    reference = parity["saved_model"]
    change = "mae_increase" if "test_mae" in reference else "accuracy_drop"  # a regression, or classes
    rows = [{"format": "saved_model", change: 0.0, "max_abs_diff": 0.0, "flex_ops": "", **reference}]
    for name, entry in parity["formats"].items():
        flex_ops = ", ".join(entry.get("flex_ops", [])) or "none"
        unmeasured = f"not measured: {entry['not_measured']}" if "not_measured" in entry else ""
        rows.append({**entry, "format": name, "flex_ops": flex_ops, "skipped": unmeasured})
    for name, reason in parity.get("skipped", {}).items():  # not converted: the model cannot take the format
        rows.append({"format": name, "skipped": reason})
    return [
        {"experiment": run["experiment"], "seed": run["seed"], **{key: row.get(key, "") for key in FORMAT_COLUMNS[2:]}}
        for row in rows
    ]


def _largest_drop(formats: dict[str, Any]) -> str:
    """The measured format whose test accuracy dropped most (a regression: whose MAE grew most), and by how much."""
    if any("mae_increase" in entry for entry in formats.values()):
        name = max(formats, key=lambda fmt: formats[fmt]["mae_increase"])
        return f"{name} MAE +{formats[name]['mae_increase']:.3g}"
    name = max(formats, key=lambda fmt: formats[fmt]["accuracy_drop"])
    return f"{name} -{100 * formats[name]['accuracy_drop']:.2f} pts"


def summarize(rows: list[dict[str, Any]], experiments: dict[str, Any]) -> list[dict[str, Any]]:
    """Per experiment: mean and population std of the target metric over seeds, and the verdict on the mean."""
    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_experiment.setdefault(row["experiment"], []).append(row)
    summary = []
    for experiment, group in by_experiment.items():
        target = experiments[experiment]["target"]
        metric = target["metric"] if target else ("accuracy" if group[0]["accuracy"] != "" else "rmse")
        values = [row[metric] for row in group]
        measured = all(isinstance(value, (int, float)) for value in values)  # a diverged run's metric is null
        mean = statistics.fmean(values) if measured else None
        judged = verdict({metric: mean}, target)
        summary.append({
            "experiment": experiment,
            "seeds": len(group),
            "metric": metric,
            "paper": target["value"] if target else "",
            "mean": mean,
            "std": statistics.pstdev(values) if measured else None,
            "margin": judged["margin"] if judged else "",
            "verdict": ("pass" if judged["passed"] else "fail") if judged else "no target",
            "source": target["source"] if target else "",
        })  # fmt: skip
    return summary


def to_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """A table as CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    """Floats of 1 or more with 4 decimals, smaller ones with 4 significant digits: a mean error of
    0.009467 must not print as the paper's 0.0095, nor a margin of -0.00003 as -0.0000 next to "fail"."""
    if not isinstance(value, float):
        return str(value)
    return f"{value:.4f}" if value == 0 or abs(value) >= 1 else f"{value:#.4g}"


def to_markdown(
    title: str, rows: list[dict[str, Any]], summary: list[dict[str, Any]], formats: list[dict[str, Any]] = ()
) -> str:
    """The summary across seeds, the per-run table and the deployable formats, as Markdown."""
    lines = [f"# {title}", "", "## Reproduction (verdict on the mean over seeds)", ""]
    lines += _markdown_table(SUMMARY_COLUMNS, summary)
    lines += ["", "## Runs", ""]
    lines += _markdown_table(COLUMNS, rows)
    if formats:
        lines += ["", "## Deployable formats (size, single-example latency, whole test split)", ""]
        lines += _markdown_table(FORMAT_COLUMNS, list(formats))
    return "\n".join(lines) + "\n"


def _markdown_table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[column]) for column in columns) + " |" for row in rows]
    return lines


def to_html(
    title: str, rows: list[dict[str, Any]], summary: list[dict[str, Any]], formats: list[dict[str, Any]] = ()
) -> str:
    """A self-contained HTML page with both tables; pass and fail cells are coloured."""
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}"
        ".pass{background:#d4f4d4}.fail{background:#f8d0d0}"
    )
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>",
        "<h2>Reproduction (verdict on the mean over seeds)</h2>",
        _html_table(SUMMARY_COLUMNS, summary, "reproduction-table"),
        "<h2>Runs</h2>",
        _html_table(COLUMNS, rows, "runs-table"),
        "<h2>Deployable formats</h2>" if formats else "",
        _html_table(FORMAT_COLUMNS, list(formats), "formats-table") if formats else "",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _html_table(columns: tuple[str, ...], rows: list[dict[str, Any]], element_id: str) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            text = _cell(row[column])
            css = f" class='{text}'" if text in ("pass", "fail") else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table id='{element_id}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_figures(folder: pathlib.Path, runs: list[dict[str, Any]]) -> None:
    """`curves_<experiment>.png` (loss and accuracy per epoch, every seed) and `confusion_<exp>_seed<k>.png`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    by_experiment: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_experiment.setdefault(run["experiment"], []).append(run)
    for experiment, group in by_experiment.items():
        figure, (loss_axis, accuracy_axis) = pyplot.subplots(1, 2, figsize=(10, 4))
        for run in group:
            history = run["history"]  # a decision forest's has val_loss per tree (iteration), no train curves
            for axis, key in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
                for name, style, part in ((key, "-", "train"), (f"val_{key}", "--", "validation")):
                    if history.get(name):
                        steps = range(1, len(history[name]) + 1)
                        axis.plot(steps, history[name], linestyle=style, label=f"seed {run['seed']} {part}")
        for axis, key in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            axis.set_xlabel("epoch (trees, for a decision forest)")
            axis.set_ylabel(key)
            axis.grid(alpha=0.3)
            if axis.lines:
                axis.legend(fontsize="small")
        figure.suptitle(f"{experiment}: learning curves")
        figure.tight_layout()
        figure.savefig(folder / f"curves_{experiment}.png", dpi=100)
        pyplot.close(figure)
    for run in runs:
        if "confusion_matrix" not in run["metrics"]:  # a regression
            continue
        confusion = run["metrics"]["confusion_matrix"]
        figure, axis = pyplot.subplots(figsize=(5.5, 5))
        image = axis.imshow(confusion, cmap="Blues")
        for true_class, row in enumerate(confusion):
            for predicted, count in enumerate(row):
                if count:
                    axis.text(predicted, true_class, str(count), ha="center", va="center", fontsize=7)
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        axis.set_title(f"{run['experiment']} seed {run['seed']}: accuracy {run['metrics']['accuracy']:.4f}")
        figure.colorbar(image, ax=axis, fraction=0.046)
        figure.tight_layout()
        figure.savefig(folder / f"confusion_{run['experiment']}_seed{run['seed']}.png", dpi=100)
        pyplot.close(figure)
