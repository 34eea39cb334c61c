"""The reproduction report: every experiment and seed, mean and std across seeds, verdicts, parity.

Writes `reproduction.md`, `reproduction.csv` and `reproduction.html`, plus PNG figures (learning
curves per experiment, a confusion matrix per run). Each run folder holds metrics.json, train.json,
history.json and, when the run converts models, parity.json. The verdict across seeds applies the
target to the mean over seeds (LeNet-5's 0.95% is judged on the mean of 3 seeds).

Every figure says what it was measured on, in its table's heading or its column's label:
- accuracy, error and loss (a regression: RMSE, MAE, R^2 and loss): metrics.json, the evaluate step
  on the whole test split;
- per converted format, from parity.json (workflow/deploy/parity.py): on the whole test split its accuracy
  (a regression: MAE), the change against the SavedModel's, the predictions whose top-1 class
  differs from the SavedModel's (a count out of the split size) and the max abs diff; on the golden
  batch (the split's first `parity.batch_size` examples, which the gate's `max_abs_diff` and
  `min_top1_agreement` budgets judge) the max abs diff and top-1 agreement;
- train time and examples per second: train.json, the training step.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import math
import pathlib
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from workflow.config.values import is_number
from workflow.evaluate.targets import verdict
from workflow.infra.atomic import atomic_path, read_json, write_text
from workflow.models.catalog import FOREST_MODELS
from workflow.models.task import REGRESSION, TASKS, Task

NOT_APPLICABLE = "—"  # the SavedModel row's comparisons with itself, a skipped format's measurements


@dataclass(frozen=True)
class Column:
    """One column of a table: the row's key (the CSV header), the heading a reader sees, how to write it."""

    key: str
    label: str
    kind: str = "text"  # a format_number kind
    optional: bool = False  # left out of a table when no row has a value


SUMMARY_COLUMNS = (
    Column("experiment", "experiment"), Column("seeds", "seeds", "count"), Column("metric", "metric (test split)"),
    Column("paper", "paper", "metric"), Column("mean", "mean over seeds", "metric"),
    Column("std", "std over seeds", "metric"), Column("margin", "margin (mean against the bound)", "metric"),
    Column("verdict", "verdict"), Column("target", "target (paper and tolerance)"), Column("source", "source"),
)  # fmt: skip
_RUN_HEAD = (
    Column("experiment", "experiment"), Column("seed", "seed", "count"), Column("dataset", "dataset"),
    Column("model", "model"), Column("examples", "test examples", "count"),
)  # fmt: skip
_RUN_METRICS = {
    "classification": (
        Column("accuracy", "accuracy", "metric"), Column("error", "error", "metric"),
        Column("loss", "loss (cross-entropy)", "metric"),
    ),
    "regression": (
        Column("rmse", "RMSE", "metric"), Column("mae", "MAE", "metric"), Column("r2", "R²", "metric"),
        Column("loss", "loss (MSE)", "metric"),
    ),
}  # fmt: skip
_RUN_JUDGED = (Column("verdict", "verdict"), Column("margin", "margin", "metric"))  # the target: in the summary
_RUN_PARITY = {
    "classification": (
        Column("largest_drop", "largest accuracy drop of a format"),
        Column("most_flipped", "most top-1 flips against the SavedModel"),
        Column("largest_diff", "largest max abs diff against the SavedModel"),
    ),
    "regression": (
        Column("largest_drop", "largest MAE increase of a format"),
        Column("largest_diff", "largest max abs diff against the SavedModel"),
    ),
}  # fmt: skip
_RUN_TAIL = (
    Column("train_seconds", "train time (s)", "quantity"),
    Column("first_epoch_seconds", "first epoch (s): set-up, tracing, compilation", "quantity"),
    Column("steady_examples_per_second", "train examples/s after the first epoch", "quantity"),
)
_FORMAT_HEAD = (
    Column("experiment", "experiment"), Column("seed", "seed", "count"), Column("format", "format"),
    Column("bytes", "size", "bytes"), Column("latency_ms", "latency ms (1 example)", "quantity"),
)  # fmt: skip
_FORMAT_MEASURED = {
    "classification": (
        Column("test_accuracy", "accuracy (whole test split)", "metric"),
        Column("accuracy_change", "accuracy change, pts (whole test split)", "points"),
        Column("flipped", "top-1 flips against the SavedModel (whole test split)"),
        Column("test_max_abs_diff", "max abs diff (whole test split)", "diff"),
        Column("golden_max_abs_diff", "max abs diff (golden batch)", "diff"),
        Column("golden_top1_agreement", "top-1 agreement (golden batch)", "metric"),
    ),
    "regression": (
        Column("test_mae", "MAE (whole test split)", "metric"),
        Column("mae_increase", "MAE increase (whole test split)", "diff"),
        Column("test_max_abs_diff", "max abs diff (whole test split)", "diff"),
        Column("golden_max_abs_diff", "max abs diff (golden batch)", "diff"),
        Column("golden_max_scaled_diff", "max abs diff / std of predictions (golden batch)", "diff"),
    ),
}  # fmt: skip
_FORMAT_TAIL = (
    Column("flex_ops", "TF Select (Flex) ops", optional=True),
    Column("skipped", "skipped or not measured, why", optional=True),
)


def run_columns(task: str) -> tuple[Column, ...]:
    """The runs table's columns for `task`: a classifier's row has no regression columns, nor the reverse."""
    return _RUN_HEAD + _RUN_METRICS[task] + _RUN_JUDGED + _RUN_PARITY[task] + _RUN_TAIL


def format_columns(task: str) -> tuple[Column, ...]:
    """The deployable formats table's columns for `task`."""
    return _FORMAT_HEAD + _FORMAT_MEASURED[task] + _FORMAT_TAIL


def write_report(
    *,
    run_dirs: list[str],
    table_paths: dict[str, str],
    figures_dir: str,
    title: str,
    experiments: dict[str, Any],
    sweeps: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Collect every run folder; write the tables (md, csv, html) and the figures, each atomically.

    `sweeps` (the config's, workflow/config/sweep.py): per sweep a table of its points' values and metric, and a
    figure of the metric against each swept value."""
    runs = [load_run(pathlib.Path(folder)) for folder in run_dirs]
    rows, formats = [], []
    for run in runs:
        with _naming(run["folder"]):
            rows.append(run_row(run, experiments))
            formats += format_rows(run)
    summary = summarize(rows, experiments)
    compared = sweep_tables(summary, rows, sweeps or {}, experiments)
    figures = {**render_figures(runs), **render_sweep_figures(compared, sweeps or {})}
    write_text(table_paths["csv"], to_csv(csv_columns(rows), rows))
    write_text(table_paths["markdown"], to_markdown(title, rows, summary, formats, compared, sweeps))
    write_text(table_paths["html"], to_html(title, rows, summary, formats, figures, compared, sweeps))
    with atomic_path(figures_dir) as temporary:
        temporary.mkdir()
        for name, png in figures.items():
            (temporary / name).write_bytes(png)
    return rows


@contextlib.contextmanager
def _naming(folder: pathlib.Path) -> Iterator[None]:
    """A JSON file without a key the report reads fails naming the run folder, not with a bare KeyError."""
    try:
        yield
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{folder}: metrics.json, train.json or parity.json lacks what the report reads ({error!r})"
        ) from error


def load_run(folder: pathlib.Path) -> dict[str, Any]:
    """The JSON files of one run folder `results/runs/<experiment>/seed<k>`."""
    parity_path = folder / "parity.json"
    return {
        "folder": folder,
        "experiment": folder.parent.name,
        "seed": int(folder.name.removeprefix("seed")),
        "metrics": read_json(folder / "metrics.json"),
        "train": read_json(folder / "train.json"),
        "history": read_json(folder / "history.json"),
        "parity": read_json(parity_path) if parity_path.exists() else None,
    }


def run_row(run: dict[str, Any], experiments: dict[str, Any]) -> dict[str, Any]:
    """One table row per run: test-split metrics, verdict, parity on the whole test split, training speed."""
    metrics, train = run["metrics"], run["train"]
    judged = metrics.get("verdict")
    task = metrics["task"]  # workflow/models/task.py, written by workflow/evaluate/metrics.py
    return {
        "experiment": run["experiment"],
        "seed": run["seed"],
        "task": task,
        "dataset": experiments[run["experiment"]]["dataset"],
        "model": train["params"]["model"]["name"],
        "examples": metrics.get("examples"),
        **{key: metrics.get(key) for key in ("accuracy", "error", "loss", "mse", "rmse", "mae", "r2")},
        "verdict": ("pass" if judged["passed"] else "fail") if judged else "no target",
        "margin": judged["margin"] if judged else None,
        **parity_summary(run["parity"]),
        "train_seconds": train["wall_seconds"],
        # Older train.json files and decision forests (no epochs) lack these: the report shows a dash.
        "first_epoch_seconds": train.get("first_epoch_seconds"),
        "steady_examples_per_second": train.get("steady_examples_per_second"),
    }


def flipped(entry: dict[str, Any], examples: int) -> int:
    """How many of the whole test split's predictions changed top-1 class against the SavedModel.

    parity.json stores the share that agrees (a mean over `examples`), so the count is exact once rounded.
    """
    return round((1.0 - entry["test_top1_agreement"]) * examples)


def parity_summary(parity: dict[str, Any] | None) -> dict[str, str]:
    """The runs table's parity cells, all on the whole test split: the format that lost most accuracy (a
    regression: whose MAE grew most), the one with most flipped top-1 predictions, the largest max abs diff."""
    keys = ("largest_drop", "most_flipped", "largest_diff")
    if parity is None:
        return dict.fromkeys(keys, "not run")
    measured = {name: entry for name, entry in parity["formats"].items() if "test_max_abs_diff" in entry}
    if not measured:
        return dict.fromkeys(keys, "no format measured")
    worst = max(measured, key=lambda name: measured[name]["test_max_abs_diff"])
    cells = {"largest_diff": f"{worst} {format_number(measured[worst]['test_max_abs_diff'], 'diff')}"}
    if TASKS[parity["task"]] is REGRESSION:  # no classes to flip
        worst = max(measured, key=lambda name: measured[name]["mae_increase"])
        increase = measured[worst]["mae_increase"]
        grew = f"{worst} +{format_number(increase, 'diff')}" if increase > 0 else "none: no format's MAE grew"
        return {**cells, "largest_drop": grew, "most_flipped": None}  # type: ignore[dict-item]
    worst = max(measured, key=lambda name: measured[name]["accuracy_drop"])
    drop = measured[worst]["accuracy_drop"]
    # A drop of zero (or a gain) is no loss: say so rather than print a "-0.00 pts" of the best format.
    cells["largest_drop"] = f"{worst} {format_number(-drop, 'points')} pts" if drop > 0 else "none: no format lost"
    examples = parity["test_examples"]
    flips = {name: flipped(entry, examples) for name, entry in measured.items()}
    worst = max(flips, key=flips.__getitem__)
    cells["most_flipped"] = f"{worst} {flips[worst]} of {examples}" if flips[worst] else f"none: 0 of {examples}"
    return cells


def format_rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per deployable format of a run: size, single-example latency, whole-split and golden-batch figures."""
    parity = run["parity"]
    if not parity:
        return []
    reference = parity["saved_model"]
    base = {
        "experiment": run["experiment"],
        "seed": run["seed"],
        "task": parity["task"],
        "test_examples": parity["test_examples"],
        "golden_examples": parity["golden_examples"],
    }
    rows = [{**base, "format": "saved_model", **{key: reference.get(key) for key in _REFERENCE_KEYS}}]
    for name, entry in parity["formats"].items():
        rows.append({**base, "format": name, **_measured(TASKS[parity["task"]], entry, parity["test_examples"])})
    for name, reason in parity.get("skipped", {}).items():  # not converted: the model cannot take the format
        rows.append({**base, "format": name, "skipped": reason})
    return rows


_REFERENCE_KEYS = ("bytes", "latency_ms", "test_accuracy", "test_mae")


def _measured(task: Task, entry: dict[str, Any], examples: int) -> dict[str, Any]:
    """One converted format's cells; parity.json's unprefixed keys are the golden batch's, `test_` the split's."""
    # Only TFLite models have Flex ops; an empty list is left blank so that the column shows only when one has.
    cells: dict[str, Any] = {"bytes": entry["bytes"], "flex_ops": ", ".join(entry.get("flex_ops", [])) or None}
    if "not_measured" in entry:
        return {**cells, "skipped": f"not measured: {entry['not_measured']}"}
    cells.update(
        latency_ms=entry["latency_ms"],
        test_max_abs_diff=entry["test_max_abs_diff"],
        golden_max_abs_diff=entry["max_abs_diff"],
    )
    if task is REGRESSION:
        cells.update(
            test_mae=entry["test_mae"],
            mae_increase=entry["mae_increase"],
            golden_max_scaled_diff=entry["max_scaled_diff"],
        )
    else:
        cells.update(
            test_accuracy=entry["test_accuracy"],
            accuracy_change=-entry["accuracy_drop"],
            flipped=f"{flipped(entry, examples)} of {examples}",
            golden_top1_agreement=entry["top1_agreement"],
        )
    return cells


def summarize(rows: list[dict[str, Any]], experiments: dict[str, Any]) -> list[dict[str, Any]]:
    """Per experiment: mean and population std of the target metric over seeds, and the verdict on the mean."""
    summary = []
    for experiment, group in _by_experiment(rows).items():
        target = experiments[experiment]["target"]
        metric = target["metric"] if target else TASKS[group[0]["task"]].summary_metric
        values = [row[metric] for row in group]
        measured = all(isinstance(value, (int, float)) for value in values)  # a diverged run's metric is null
        mean = statistics.fmean(values) if measured else None
        judged = verdict({metric: mean}, target)
        summary.append({
            "experiment": experiment,
            "seeds": len(group),
            "examples": group[0]["examples"],
            "metric": metric,
            "paper": target["value"] if target else None,
            "mean": mean,
            "std": statistics.pstdev(values) if measured else None,
            "margin": judged["margin"] if judged else None,
            "verdict": ("pass" if judged["passed"] else "fail") if judged else "no target",
            "target": _target_text(target),
            "source": target["source"] if target else None,
        })  # fmt: skip
    return summary


def _target_text(target: dict[str, Any] | None) -> str | None:
    """The bound a mean must reach, as workflow/evaluate/targets.py judges it: 'at least 0.9500' (paper 0.95,
    tolerance 0)."""
    if target is None:
        return None
    if target["direction"] == "higher":
        return f"at least {format_number(float(target['value'] - target['tolerance']))}"
    return f"at most {format_number(float(target['value'] + target['tolerance']))}"


def _by_experiment(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows or runs grouped by experiment, in the order of the config."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault(item["experiment"], []).append(item)
    return grouped


def format_number(value: Any, kind: str = "metric") -> str:
    """A cell as a reader wants it. Kinds:

    metric: 4 significant digits below 1 (a mean error of 0.009467 must not print as the paper's 0.0095,
        nor a margin of -0.00003 as -0.0000 next to "fail"), 5 from 1 up (1.2346, 54.000, 2916.0), whole
        numbers with thousands separators from 10,000; 0 as 0.0000, the precision of an accuracy;
    quantity: 3 significant digits, trailing zeros kept; whole numbers with thousands separators from 100 up
        (3.03 s, 7,207 examples/s);
    bytes: 3 significant digits in B, kB, MB, GB (powers of 1000);
    diff: 3 significant digits, trailing zeros kept (0.0273, 0.0250, 3.58e-07), 0 as 0;
    points: a change of a share in signed percentage points (-0.28, +0.28; 0.00 when none); count, text: as is.
    None (not applicable, not measured) prints as a dash; NaN and infinity as "not a number".
    """
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, (str, bool)) or kind in ("text", "count"):
        return str(value)
    if not math.isfinite(value):
        return "not a number"
    value = value + 0.0  # -0.0 becomes 0.0: no "-0.0000"
    if kind == "metric":
        if value == 0:
            return "0.0000"
        return f"{value:#.4g}" if abs(value) < 1 else f"{value:#.5g}" if abs(value) < 9999.5 else f"{value:,.0f}"
    if kind == "quantity":
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}"
    if kind == "bytes":
        return _bytes(value)
    if kind == "diff":
        return "0" if value == 0 else f"{value:#.3g}"
    if kind == "points":
        points = 100 * value
        # Under 0.005 points (a split of over 20,000 examples) two decimals would round a change to 0.00.
        return "0.00" if points == 0 else f"{points:+.2f}" if abs(points) >= 0.005 else f"{points:+.1g}"
    raise ValueError(f"format_number: unknown kind {kind!r}")


def _bytes(value: float) -> str:
    """A size in the largest unit that keeps it under 1000 once rounded to 3 digits (999.6 kB is 1 MB)."""
    for unit, size in (("B", 1), ("kB", 1e3), ("MB", 1e6)):
        if abs(value) / size < 999.5:
            # A no-break space: a narrow column must not wrap "97.7" and "kB" onto two lines.
            return f"{round(value)}\u00a0B" if size == 1 else f"{value / size:.3g}\u00a0{unit}"
    return f"{value / 1e9:.3g}\u00a0GB"


def shown_columns(columns: tuple[Column, ...], rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """The columns a table shows: optional ones only when some row has a value in them."""
    return tuple(
        column
        for column in columns
        if not column.optional or any(row.get(column.key) not in (None, "") for row in rows)
    )


def csv_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """The CSV's columns: those of each task that has a run (a CSV of classifiers has no rmse nor r2)."""
    columns: dict[str, Column] = {}
    for task in TASKS:
        if any(row["task"] == task for row in rows):
            columns.update({column.key: column for column in run_columns(task) if column.key not in columns})
    return tuple(columns.values())


def to_csv(columns: tuple[Column, ...], rows: list[dict[str, Any]]) -> str:
    """A table as CSV with the rows' raw values (full precision, for programs) under the columns' keys."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[column.key for column in columns], lineterminator="\n",
                            extrasaction="ignore")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _scope_note(formats: list[dict[str, Any]]) -> str:
    """What 'whole test split' and 'golden batch' were for these runs, with their example counts."""
    sizes = {(row["test_examples"], row["golden_examples"]) for row in formats}
    if len(sizes) == 1:
        ((test, golden),) = sizes
        counts = f"the whole test split is {test} examples; the golden batch is its first {golden}"
    else:
        counts = "; ".join(
            f"{experiment}: whole test split {group[0]['test_examples']}, golden batch its first "
            f"{group[0]['golden_examples']}"
            for experiment, group in _by_experiment(formats).items()
        )
    judged = TASKS[formats[0]["task"]].parity_judged
    return (
        f"Each format against the SavedModel ({counts}). The gate judges the {judged} (workflow/deploy/gate.py). "
        "Latency: one example, LiteRT on one thread, TF.js in Node."
    )


def to_markdown(
    title: str,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    formats: Sequence[dict[str, Any]] = (),
    compared: dict[str, list[dict[str, Any]]] | None = None,
    sweeps: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The summary across seeds, each sweep's comparison, the per-run tables and the deployable formats, as Markdown."""
    lines = [f"# {title}", "", "## Reproduction (verdict on the mean over seeds)", ""]
    lines += _markdown_table(SUMMARY_COLUMNS, summary)
    for sweep, points in (compared or {}).items():
        lines += ["", f"## Sweep: {sweep} ({_sweep_scope(points)})", ""]
        lines += _markdown_table(sweep_columns((sweeps or {})[sweep]["keys"]), points)
    for task in TASKS:
        group = [row for row in rows if row["task"] == task]
        if group:
            lines += ["", f"## Runs: {task} ({_RUNS_SCOPE})", ""]
            lines += _markdown_table(run_columns(task), group)
    for task in TASKS:
        group = [row for row in formats if row["task"] == task]
        if group:
            lines += ["", f"## Deployable formats: {task}", "", _scope_note(group), ""]
            lines += _markdown_table(format_columns(task), group)
    return "\n".join(lines) + "\n"


_RUNS_SCOPE = "metrics and parity on the whole test split, time and throughput of training"


def _markdown_table(columns: tuple[Column, ...], rows: list[dict[str, Any]]) -> list[str]:
    columns = shown_columns(columns, rows)
    lines = ["| " + " | ".join(column.label for column in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (format_number(row.get(column.key), column.kind).replace("|", "\\|") for column in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:100%;box-sizing:border-box}"
    "table{border-collapse:collapse;margin-bottom:1.5em;width:100%;font-size:0.8em}"
    "td,th{border:1px solid #bbb;padding:2px 5px;text-align:right;overflow-wrap:break-word}"
    "th{background:#eee;font-weight:600}td.text{text-align:left}"
    ".pass{background:#d4f4d4}.fail{background:#f8d0d0}.note{color:#444;font-size:0.9em}"
    ".figures{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}"
    "figure{margin:0;min-width:0}figure.curves{flex:2 1 520px}figure.confusion{flex:1 1 300px}"
    "figure img{width:100%;height:auto;display:block}figcaption{font-size:0.85em;color:#444}"
    "section.experiment{border-top:2px solid #888;margin-top:1.5em}"
)


def to_html(
    title: str,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    formats: Sequence[dict[str, Any]] = (),
    figures: dict[str, bytes] | None = None,
    compared: dict[str, list[dict[str, Any]]] | None = None,
    sweeps: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A self-contained HTML page: the summary, the runs, then per experiment its verdict, learning curves,
    confusion matrices and deployment table; pass and fail cells are coloured."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        "<h2>Reproduction (verdict on the mean over seeds)</h2>",
        _html_table(SUMMARY_COLUMNS, summary, "reproduction-table"),
    ]
    for sweep, points in (compared or {}).items():
        name = html.escape(sweep)
        parts += [f"<h2 id='sweep-{name}'>Sweep: {name} ({html.escape(_sweep_scope(points))})</h2>"]
        parts.append(_html_table(sweep_columns((sweeps or {})[sweep]["keys"]), points, f"sweep-table-{name}"))
        png = (figures or {}).get(f"sweep_{sweep}.png")
        if png:
            caption = "mean over seeds against each swept value (bars: std over seeds; the star: the best point)"
            parts.append(f"<div class='figures'>{_figure('sweep', png, sweep, None, caption)}</div>")
    for task in TASKS:
        group = [row for row in rows if row["task"] == task]
        if group:
            element_id = "runs-table" if task == "classification" else "runs-table-regression"
            parts += [f"<h2>Runs: {task} ({_RUNS_SCOPE})</h2>", _html_table(run_columns(task), group, element_id)]
    for entry in summary:
        experiment = entry["experiment"]
        mine = [row for row in formats if row["experiment"] == experiment]
        parts.append(_experiment_section(entry, mine, figures or {}))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _experiment_section(entry: dict[str, Any], formats: list[dict[str, Any]], figures: dict[str, bytes]) -> str:
    """One experiment: its verdict, learning curves, a confusion matrix per seed, its deployment table."""
    experiment = entry["experiment"]
    name = html.escape(experiment)
    css = entry["verdict"] if entry["verdict"] in ("pass", "fail") else "note"
    parts = [
        f"<section class='experiment' id='experiment-{name}'><h2>{name}</h2>",
        f"<p class='verdict {css}'>{html.escape(verdict_sentence(entry))}</p><div class='figures'>",
    ]
    curves = f"curves_{experiment}.png"
    if curves in figures:
        caption = "learning curves: train and validation loss and metric, one line per seed"
        parts.append(_figure("curves", figures[curves], experiment, None, caption))
    for figure_name in sorted(figures):
        prefix = f"confusion_{experiment}_seed"
        if figure_name.startswith(prefix):
            seed = figure_name.removeprefix(prefix).removesuffix(".png")
            caption = f"seed {seed}: confusion matrix on the test split (rows true class, columns predicted)"
            parts.append(_figure("confusion", figures[figure_name], experiment, seed, caption))
    parts.append("</div>")
    for task in TASKS:
        group = [row for row in formats if row["task"] == task]
        if group:
            columns = tuple(column for column in format_columns(task) if column.key != "experiment")
            parts += [f"<h3>Deployment: {name}</h3>", f"<p class='note'>{html.escape(_scope_note(group))}</p>"]
            parts.append(_html_table(columns, group, f"formats-{name}"))
    parts.append("</section>")
    return "\n".join(parts)


def _figure(kind: str, png: bytes, experiment: str, seed: str | None, caption: str) -> str:
    """An <img> of a figure as a data URI.

    Embedded, not linked to figures/: `snakemake --report` shows reproduction.html alone inside its own
    page (figures/ is not beside it there), and a copied or mailed page keeps its pictures; the PNGs
    are small (tens of kB), so the page stays light.
    """
    source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    seed_attribute = f" data-seed='{html.escape(seed)}'" if seed is not None else ""
    alt = f"{kind} of {experiment}" + (f" seed {seed}" if seed is not None else "")
    return (
        f"<figure class='{kind}'><img class='{kind}' data-experiment='{html.escape(experiment)}'{seed_attribute} "
        f"alt='{html.escape(alt)}' src='{source}'><figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def verdict_sentence(entry: dict[str, Any]) -> str:
    """The verdict of one experiment in words, saying what was measured and on what."""
    seeds = f"{entry['seeds']} seed{'s' if entry['seeds'] != 1 else ''}"
    measured = f"mean {entry['metric']} {format_number(entry['mean'])} over {seeds} on the test split"
    if entry["examples"] is not None:
        measured += f" ({entry['examples']} examples)"
    if entry["verdict"] == "no target":
        return f"No target configured: {measured}."
    return (
        f"{entry['verdict']}: {measured}; target {entry['target']} (paper {format_number(entry['paper'])}), "
        f"margin {format_number(entry['margin'])} (positive is better). Source: {entry['source']}."
    )


def _html_table(columns: tuple[Column, ...], rows: list[dict[str, Any]], element_id: str) -> str:
    columns = shown_columns(columns, rows)
    head = "".join(f"<th>{html.escape(column.label)}</th>" for column in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            text = format_number(row.get(column.key), column.kind)
            css = text if text in ("pass", "fail") else "text" if column.kind == "text" else ""
            cells.append(f"<td{f' class={css!r}' if css else ''}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table id='{element_id}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def sweep_columns(keys: list[str]) -> tuple[Column, ...]:
    """A sweep's table: the point, each swept key's value, the metric's mean and std over seeds, the best."""
    return (
        Column("experiment", "point"),
        *(Column(f"value:{key}", key) for key in keys),
        Column("seeds", "seeds", "count"),
        Column("mean", "mean over seeds", "metric"),
        Column("std", "std over seeds", "metric"),
        Column("verdict", "verdict"),
        Column("best", "best"),
    )


def _sweep_scope(points: list[dict[str, Any]]) -> str:
    metric = points[0]["metric"] if points else "metric"
    better = "higher" if points and points[0]["higher_is_better"] else "lower"
    return f"{metric} on the test split, mean and std over seeds; {better} is better"


def sweep_tables(
    summary: list[dict[str, Any]], rows: list[dict[str, Any]], sweeps: dict[str, dict[str, Any]], experiments: dict
) -> dict[str, list[dict[str, Any]]]:
    """Per sweep, one row per point: its swept values and the summary's mean and std; the best point marked
    (by the target's direction, or the task's for its summary metric)."""
    summaries = {entry["experiment"]: entry for entry in summary}
    tasks = {row["experiment"]: row["task"] for row in rows}
    tables = {}
    for sweep, entry in sweeps.items():
        points = []
        for point, values in entry["points"].items():
            if point not in summaries:
                continue  # not in this report's runs
            target = experiments[point]["target"]
            higher = target["direction"] == "higher" if target else TASKS[tasks[point]].summary_higher_is_better
            row = {key: summaries[point][key] for key in ("experiment", "seeds", "metric", "mean", "std", "verdict")}
            row.update({f"value:{key}": value for key, value in values.items()}, higher_is_better=higher, best="")
            points.append(row)
        points.sort(key=lambda row: [_sort_key(row[f"value:{key}"]) for key in entry["keys"]])
        measured = [row for row in points if isinstance(row["mean"], (int, float))]
        if measured:
            pick = max if measured[0]["higher_is_better"] else min
            pick(measured, key=lambda row: row["mean"])["best"] = "best"
        tables[sweep] = points
    return tables


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in order, then anything else by its text: a sweep's table reads along each swept value."""
    if is_number(value):
        return (0, value)
    return (1, str(value))


def render_sweep_figures(compared: dict[str, list[dict[str, Any]]], sweeps: dict[str, dict[str, Any]]) -> dict:
    """`sweep_<name>.png`: per swept key, the metric's mean over seeds (bars: std) against the key's values."""
    if not any(compared.values()):
        return {}
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figures = {}
    for sweep, points in compared.items():
        if points:
            figures[f"sweep_{sweep}.png"] = _sweep_png(pyplot, sweep, sweeps[sweep]["keys"], points)
    return figures


def _sweep_png(pyplot: Any, sweep: str, keys: list[str], points: list[dict[str, Any]]) -> bytes:
    figure, axes = pyplot.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.8), squeeze=False)
    measured = [row for row in points if isinstance(row["mean"], (int, float))]
    for axis, key in zip(axes[0], keys, strict=True):
        values = [row[f"value:{key}"] for row in measured]
        numeric = all(is_number(v) for v in values)
        labels = sorted({str(v) for v in values}) if not numeric else []
        xs = values if numeric else [labels.index(str(v)) for v in values]
        axis.errorbar(xs, [row["mean"] for row in measured], yerr=[row["std"] or 0 for row in measured],
                      fmt="o", capsize=3)  # fmt: skip
        for x, row in zip(xs, measured, strict=True):
            if row["best"]:
                axis.plot([x], [row["mean"]], marker="*", markersize=14, color="tab:red", linestyle="none")
        if numeric and values and min(values) > 0 and max(values) >= 10 * min(values):
            axis.set_xscale("log")
        if not numeric:
            axis.set_xticks(range(len(labels)), labels)
        axis.set_xlabel(key)
        axis.set_ylabel(f"{points[0]['metric']} (test split)")
        axis.grid(alpha=0.3)
    figure.suptitle(f"sweep {sweep}: {points[0]['metric']} against each swept value")
    figure.tight_layout()
    return _png(pyplot, figure)


def render_figures(runs: list[dict[str, Any]]) -> dict[str, bytes]:
    """PNG bytes by file name: `curves_<experiment>.png` (every seed) and `confusion_<exp>_seed<k>.png`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figures = {}
    for experiment, group in _by_experiment(runs).items():
        figures[f"curves_{experiment}.png"] = _curves_png(pyplot, experiment, group)
    for run in runs:
        if "confusion_matrix" in run["metrics"]:  # a regression has none
            figures[f"confusion_{run['experiment']}_seed{run['seed']}.png"] = _confusion_png(pyplot, run)
    return figures


def _curves_png(pyplot: Any, experiment: str, group: list[dict[str, Any]]) -> bytes:
    """Loss and accuracy (a regression: MAE) per epoch, train and validation, one line per seed."""
    histories = [run["history"] for run in group]
    second = "mae" if any("mae" in h or "val_mae" in h for h in histories) else "accuracy"
    x_label = curve_steps(group[0]["train"]["params"]["model"]["name"])
    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, ("loss", second), strict=True):
        for run in group:
            for name, style, part in ((key, "-", "train"), (f"val_{key}", "--", "validation")):
                if run["history"].get(name):
                    steps = range(1, len(run["history"][name]) + 1)
                    axis.plot(steps, run["history"][name], linestyle=style, label=f"seed {run['seed']} {part}")
        axis.set_xlabel(x_label)
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize="small")
        else:
            axis.text(0.5, 0.5, f"no {key} curve recorded", ha="center", va="center", transform=axis.transAxes)
    figure.suptitle(f"{experiment}: learning curves")
    figure.tight_layout()
    return _png(pyplot, figure)


def curve_steps(model: str) -> str:
    """The learning curves' x axis: a decision forest's history has a validation loss per tree (YDF's
    training log), every other model one value per epoch."""
    return "trees" if model in FOREST_MODELS else "epoch"


def _confusion_png(pyplot: Any, run: dict[str, Any]) -> bytes:
    """The test split's confusion matrix of one run, with the count in each non-empty cell."""
    confusion = run["metrics"]["confusion_matrix"]
    figure, axis = pyplot.subplots(figsize=(5.5, 5))
    image = axis.imshow(confusion, cmap="Blues")
    for true_class, row in enumerate(confusion):
        for predicted, count in enumerate(row):
            if count:
                axis.text(predicted, true_class, str(count), ha="center", va="center", fontsize=7)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    accuracy = format_number(run["metrics"]["accuracy"])
    axis.set_title(f"{run['experiment']} seed {run['seed']}: test accuracy {accuracy}")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return _png(pyplot, figure)


def _png(pyplot: Any, figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
