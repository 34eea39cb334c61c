"""The reproduction report: its numbers come from what their headings say, are written for reading, and
the HTML page shows each experiment's verdict, pictures and deployment table on a laptop screen.

Unit tests build fake run folders (no TensorFlow, no network); the `dag` tests read the finished
default run (digits_mlp and digits_cnn) and open its page in headless Chromium.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import math
import pathlib
import re
import statistics

import numpy as np
import pytest
from helpers import CHROMIUM_ARGS, require_tool

from workflow.evaluate.report import curve_steps, format_number, parity_summary, write_report

RUNS = (("digits_mlp", 0), ("digits_cnn", 0))
# A minus sign on a zero: "-0", "-0.00", "-0.0000" (not "-0.0273", nor an exponent's "e-07").
NEGATIVE_ZERO = re.compile(r"-0(\.0+)?(?![.\d])")


# Tables as a reader sees them.


def _cells(line: str) -> list[str]:
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The table under each '## ' heading, as rows of label -> cell."""
    tables = {}
    for section in text.split("\n## ")[1:]:
        heading, _, body = section.partition("\n")
        lines = [line for line in body.splitlines() if line.startswith("|")]
        labels = _cells(lines[0])
        tables[heading] = [dict(zip(labels, _cells(line), strict=True)) for line in lines[2:]]
    return tables


class _TableParser(html.parser.HTMLParser):
    """Every <table id=...> of a page as rows of header -> cell text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: list[list[str]] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.current = self.tables.setdefault(dict(attrs)["id"], [])
        elif tag == "tr" and self.current is not None:
            self.current.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.current is not None:
            self.current[-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def html_tables(page: str) -> dict[str, list[dict[str, str]]]:
    parser = _TableParser()
    parser.feed(page)
    return {key: [dict(zip(rows[0], row, strict=True)) for row in rows[1:]] for key, rows in parser.tables.items()}


def row_of(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    found = [row for row in rows if all(row[key] == value for key, value in match.items())]
    assert len(found) == 1, f"{len(found)} rows match {match}"
    return found[0]


def close_to(cell: str, value: float) -> bool:
    """Whether a printed number is the value (to its printed precision: 3 significant digits at least)."""
    return math.isclose(float(cell.replace(",", "")), value, rel_tol=5e-3, abs_tol=1e-12)


# Unit tests of the formatting and the tables, on fake run folders.


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (3.027, "quantity", "3.03"),  # train seconds: was 3.0270
        (7207.4, "quantity", "7,207"),  # examples per second: was 7207.4000
        (41.0, "quantity", "41.0"),
        (0.0042965, "quantity", "0.00430"),  # a latency in ms
        (97680, "bytes", "97.7\u00a0kB"),
        (812, "bytes", "812\u00a0B"),
        (999_600, "bytes", "1\u00a0MB"),
        (0.027339041233062744, "diff", "0.0273"),
        (0.02499869465827942, "diff", "0.0250"),
        (3.5762786865234375e-07, "diff", "3.58e-07"),
        (0.0, "diff", "0"),
        (0.9972222222222222, "metric", "0.9972"),
        (0.0095, "metric", "0.009500"),  # the paper's 0.95% error
        (-0.00003, "metric", "-3.000e-05"),  # a failing margin is not "-0.0000"
        (-0.0, "metric", "0.0000"),
        (1.2345678, "metric", "1.2346"),
        (2916.04, "metric", "2916.0"),  # a regression's MSE: not 2916.0400
        (123456.7, "metric", "123,457"),
        (-0.002777777777777768, "points", "-0.28"),  # int8 lost 1 of 360
        (0.002777777777777768, "points", "+0.28"),
        (0.0, "points", "0.00"),
        (-0.0, "points", "0.00"),
        (-1e-5, "points", "-0.001"),  # 1 of 100,000: not rounded away to 0.00
        (None, "metric", "—"),
        (float("nan"), "metric", "not a number"),
        ("pass", "metric", "pass"),
        (3, "count", "3"),
    ],
)
def test_format_number_writes_each_kind_for_reading(value, kind, text):
    assert format_number(value, kind) == text


def test_format_number_never_writes_a_negative_zero():
    """Tiny negative values and -0.0 of every kind print without a minus on a zero."""
    values = [-0.0, -1e-12, -1e-7, -4e-5, -0.00049, -0.004, -0.0049]
    for kind in ("metric", "quantity", "bytes", "diff", "points"):
        printed = [format_number(value, kind) for value in values]
        assert not [text for text in printed if NEGATIVE_ZERO.search(text)], (kind, printed)


def test_format_number_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind 'percent'"):
        format_number(0.5, "percent")


def test_parity_summary_says_no_format_lost_instead_of_minus_zero():
    """When no format lost accuracy the cell says so (it printed 'dynamic_range -0.00 pts')."""
    entry = {"max_abs_diff": 0.01, "test_max_abs_diff": 0.012, "test_top1_agreement": 1.0, "accuracy_drop": 0.0}
    parity = {
        "task": "classification",
        "test_examples": 360,
        "saved_model": {"test_accuracy": 0.97},
        "formats": {"dynamic_range": entry},
    }

    cells = parity_summary(parity)

    assert cells == {
        "largest_drop": "none: no format lost",
        "most_flipped": "none: 0 of 360",
        "largest_diff": "dynamic_range 0.0120",  # the whole split's, not the golden batch's 0.01
    }


def test_learning_curves_count_trees_only_for_a_forest():
    """The x label said "epoch (trees, for a decision forest)" on a CNN."""
    assert [curve_steps(model) for model in ("cnn", "mlp", "gradient_boosted_trees", "random_forest")] == [
        "epoch", "epoch", "trees", "trees"]  # fmt: skip


def _write_run(root: pathlib.Path, experiment: str, files: dict[str, dict]) -> str:
    folder = root / "runs" / experiment / "seed0"
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))
    return str(folder)


def _classifier_files() -> dict[str, dict]:
    """A 3-class run whose int8 model needs Flex ops (not measured) and whose TF.js conversion was skipped."""
    measured = {"max_abs_diff": 0.004, "top1_agreement": 1.0, "accuracy": 0.9, "test_max_abs_diff": 0.006,
                "test_top1_agreement": 0.99, "test_accuracy": 0.89, "bytes": 20_480, "latency_ms": 0.012,
                "flex_ops": [], "accuracy_drop": 0.01}  # fmt: skip
    return {
        "metrics.json": {
            "task": "classification",
            "examples": 100,
            "accuracy": 0.9,
            "error": 0.1,
            "loss": 0.31,
            "confusion_matrix": [[30, 2, 1], [3, 30, 0], [1, 3, 30]],
            "verdict": None,
        },  # fmt: skip
        "train.json": {
            "params": {"model": {"name": "mlp"}},
            "wall_seconds": 12.345,
            "examples_per_second": 700.1,
            "first_epoch_seconds": 1.5,
            "steady_examples_per_second": 812.5,
        },
        "history.json": {
            "loss": [1.0, 0.5],
            "val_loss": [1.1, 0.6],
            "accuracy": [0.6, 0.9],
            "val_accuracy": [0.6, 0.8],
        },
        "parity.json": {
            "task": "classification",
            "golden_examples": 32,
            "test_examples": 100,
            "saved_model": {"golden_accuracy": 0.9, "test_accuracy": 0.9, "bytes": 50_000, "latency_ms": 0.2},
            "formats": {
                "float32": measured,
                "int8": {"bytes": 9_000, "flex_ops": ["DenseBincount"], "not_measured": "no Flex delegate in Python"},
            },
            "skipped": {"tfjs": "the converter does not support op Bucketize"},
        },  # fmt: skip
    }


def _regression_files() -> dict[str, dict]:
    """A regression run (diabetes-like): RMSE, MAE, R^2, and MAE increases per format."""
    measured = {"max_abs_diff": 0.25, "mae": 40.0, "test_max_abs_diff": 0.5, "test_mae": 43.5, "bytes": 4_096,
                "latency_ms": 0.01, "flex_ops": [], "mae_increase": 0.29, "max_scaled_diff": 0.0049}  # fmt: skip
    verdict = {"passed": True, "metric": "rmse", "value": 54.0, "bound": 60.0, "margin": 6.0, "because": "made up"}
    return {
        "metrics.json": {
            "task": "regression",
            "examples": 89,
            "mse": 2916.0,
            "rmse": 54.0,
            "mae": 43.21,
            "r2": 0.4567,
            "loss": 2916.0,
            "verdict": verdict,
        },  # fmt: skip
        "train.json": {
            "params": {"model": {"name": "linear"}},
            "wall_seconds": 2.0,
            "examples_per_second": 1000.0,
            "first_epoch_seconds": 0.75,
            "steady_examples_per_second": 1234.5,
        },
        "history.json": {"loss": [9000.0, 3000.0], "val_loss": [9500.0, 3100.0], "mae": [80.0, 45.0]},
        "parity.json": {
            "task": "regression",
            "golden_examples": 64,
            "test_examples": 89,
            "saved_model": {"golden_mae": 40.0, "test_mae": 43.21, "bytes": 30_000, "latency_ms": 0.3},
            "formats": {"int8": measured},
            "skipped": {},
        },  # fmt: skip
    }


@pytest.fixture()
def mixed_report(tmp_path: pathlib.Path) -> dict:
    """write_report over a classifier without target and a regression with one (fake JSON, real figures)."""
    run_dirs = [_write_run(tmp_path, "cls", _classifier_files()), _write_run(tmp_path, "reg", _regression_files())]
    experiments = {
        "cls": {"dataset": "blobs", "target": None, "seeds": [0]},
        "reg": {"dataset": "diabetes", "seeds": [0], "target": {"metric": "rmse", "value": 60, "tolerance": 0.0,
                                                                 "direction": "lower", "source": "made up"}},
    }  # fmt: skip
    paths = {name: str(tmp_path / f"reproduction.{name}") for name in ("md", "csv", "html")}
    write_report(run_dirs=run_dirs, table_paths={"markdown": paths["md"], "csv": paths["csv"], "html": paths["html"]},
                 figures_dir=str(tmp_path / "figures"), title="mixed", experiments=experiments)  # fmt: skip
    return {name: pathlib.Path(path).read_text() for name, path in paths.items()} | {"folder": tmp_path}


def test_each_task_gets_its_own_columns_and_no_empty_cells(mixed_report):
    """A classifier's row has no RMSE/R^2 columns; a regression's shows them with its figures."""
    tables = markdown_tables(mixed_report["md"])
    runs = {heading.split(" (")[0]: rows for heading, rows in tables.items() if heading.startswith("Runs")}
    classifier, regression = runs["Runs: classification"][0], runs["Runs: regression"][0]

    assert not {"RMSE", "MAE", "R²", "loss (MSE)"} & set(classifier)
    assert {"accuracy": classifier["accuracy"], "verdict": classifier["verdict"]} == {
        "accuracy": "0.9000",
        "verdict": "no target",
    }
    assert not {"accuracy", "error", "loss (cross-entropy)"} & set(regression)
    assert (regression["RMSE"], regression["MAE"], regression["R²"], regression["loss (MSE)"]) == (
        "54.000", "43.210", "0.4567", "2916.0")  # fmt: skip
    assert regression["largest MAE increase of a format"] == "int8 +0.290"
    assert regression["largest max abs diff against the SavedModel"] == "int8 0.500"  # whole split, not golden 0.25
    steady = regression["train examples/s after the first epoch"]
    assert (regression["train time (s)"], steady, regression["first epoch (s): set-up, tracing, compilation"]) == (
        "2.00", "1,234", "0.750")  # fmt: skip
    for heading, rows in tables.items():
        for row in rows:
            assert all(row.values()), f"empty cell in '{heading}': {row}"
    header = mixed_report["csv"].splitlines()[0].split(",")
    assert {"accuracy", "rmse", "r2"} <= set(header)  # one CSV holds both kinds of run


def test_regression_and_skipped_formats_are_labelled(mixed_report):
    """Regression formats show MAE and scaled diffs; Flex ops and skipped formats get their columns and reasons."""
    tables = markdown_tables(mixed_report["md"])
    formats = tables["Deployable formats: regression"]
    classes = tables["Deployable formats: classification"]

    int8 = row_of(formats, format="int8")
    assert (int8["MAE (whole test split)"], int8["MAE increase (whole test split)"]) == ("43.500", "0.290")
    assert (int8["max abs diff (whole test split)"], int8["max abs diff (golden batch)"]) == ("0.500", "0.250")
    assert int8["max abs diff / std of predictions (golden batch)"] == "0.00490"
    flex = row_of(classes, format="int8")
    assert flex["TF Select (Flex) ops"] == "DenseBincount"
    assert flex["skipped or not measured, why"] == "not measured: no Flex delegate in Python"
    assert (
        row_of(classes, format="tfjs")["skipped or not measured, why"] == "the converter does not support op Bucketize"
    )
    float32 = row_of(classes, format="float32")
    assert float32["top-1 flips against the SavedModel (whole test split)"] == "1 of 100"
    assert (float32["accuracy change, pts (whole test split)"], float32["size"]) == ("-1.00", "20.5\u00a0kB")
    page = mixed_report["html"]
    assert "id='runs-table-regression'" in page and "id='formats-reg'" in page
    assert "img class='confusion' data-experiment='cls'" in page
    assert "data-experiment='reg' data-seed" not in page  # a regression has no confusion matrix
    figures = sorted(path.name for path in (mixed_report["folder"] / "figures").iterdir())
    assert figures == ["confusion_cls_seed0.png", "curves_cls.png", "curves_reg.png"]


def test_a_run_folder_missing_a_key_names_the_folder(tmp_path):
    files = _classifier_files()
    del files["parity.json"]["test_examples"]
    folder = _write_run(tmp_path, "cls", files)

    with pytest.raises(ValueError, match=re.escape(folder) + ".*'test_examples'"):
        write_report(run_dirs=[folder], table_paths={"markdown": str(tmp_path / "r.md"), "csv": str(tmp_path / "r.csv"),
                     "html": str(tmp_path / "r.html")}, figures_dir=str(tmp_path / "figures"), title="t",
                     experiments={"cls": {"dataset": "d", "target": None, "seeds": [0]}})  # fmt: skip


# The finished default run.


def _read(finished: pathlib.Path, experiment: str, seed: int, name: str) -> dict:
    return json.loads((finished / f"results/runs/{experiment}/seed{seed}/{name}").read_text())


# Formats-table column -> (parity.json key, kind): the unprefixed keys are the golden batch's
# (workflow/deploy/parity.py).
FROM_PARITY = {
    "accuracy (whole test split)": ("test_accuracy", "metric"),
    "max abs diff (whole test split)": ("test_max_abs_diff", "diff"),
    "max abs diff (golden batch)": ("max_abs_diff", "diff"),
    "top-1 agreement (golden batch)": ("top1_agreement", "metric"),
    "latency ms (1 example)": ("latency_ms", "quantity"),
}
FLIPS = "top-1 flips against the SavedModel (whole test split)"
CHANGE = "accuracy change, pts (whole test split)"


def _check_format_row(row: dict[str, str], entry: dict, examples: int) -> None:
    """One format's cells against its parity.json entry: each from the split its label names."""
    scoped = {label for label in row if "golden batch" in label or "whole test split" in label}
    assert scoped <= set(FROM_PARITY) | {FLIPS, CHANGE}, f"columns this test does not check: {scoped}"
    for label, (key, kind) in FROM_PARITY.items():
        assert row[label] == format_number(entry[key], kind), label
        assert close_to(row[label], entry[key]), label
    assert row[CHANGE] == format_number(-entry["accuracy_drop"], "points")
    assert abs(float(row[CHANGE]) + 100 * entry["accuracy_drop"]) <= 0.005  # printed to 2 decimals
    flips = round((1 - entry["test_top1_agreement"]) * examples)
    assert row[FLIPS] == f"{flips} of {examples}"
    assert row["size"] == format_number(entry["bytes"], "bytes")


@pytest.mark.dag
def test_finished_report_takes_each_figure_from_what_its_heading_says(finished):
    """Markdown and HTML deployment tables: the whole-split max abs diff is parity.json's whole-split value,
    the golden-batch one the golden batch's; flips are counted out of the split; the runs table likewise."""
    report = finished / "results/report"
    markdown = markdown_tables((report / "reproduction.md").read_text())
    page = html_tables((report / "reproduction.html").read_text())
    formats = markdown["Deployable formats: classification"]
    differing = []
    for experiment, seed in RUNS:
        parity = _read(finished, experiment, seed, "parity.json")
        examples = parity["test_examples"]
        for name, entry in parity["formats"].items():
            for row in (row_of(formats, experiment=experiment, seed=str(seed), format=name),
                        row_of(page[f"formats-{experiment}"], seed=str(seed), format=name)):  # fmt: skip
                _check_format_row(row, entry, examples)
            shown = row_of(formats, experiment=experiment, format=name)
            print(f"{experiment} {name}: golden {shown['max abs diff (golden batch)']} of {parity['golden_examples']}, "
                  f"whole split {shown['max abs diff (whole test split)']}, flips {shown[FLIPS]}")  # fmt: skip
            if entry["max_abs_diff"] != entry["test_max_abs_diff"]:
                differing.append(name)
    # Otherwise this run could not tell a golden-batch figure from a whole-split one.
    assert differing, "no format's golden-batch max abs diff differs from its whole-split one"
    _check_runs_and_summary(finished, markdown, page)


def _check_runs_and_summary(finished: pathlib.Path, markdown: dict, page: dict) -> None:
    """Runs table (whole test split) and summary against metrics.json, parity.json and train.json."""
    heading = next(heading for heading in markdown if heading.startswith("Runs: classification"))
    assert "whole test split" in heading
    for experiment, seed in RUNS:
        metrics, train = (
            _read(finished, experiment, seed, "metrics.json"),
            _read(finished, experiment, seed, "train.json"),
        )
        parity = _read(finished, experiment, seed, "parity.json")
        formats, examples = parity["formats"], parity["test_examples"]
        worst = max(formats, key=lambda name: formats[name]["test_max_abs_diff"])
        flips = {name: round((1 - entry["test_top1_agreement"]) * examples) for name, entry in formats.items()}
        most = max(flips, key=flips.__getitem__)
        dropped = max(formats, key=lambda name: formats[name]["accuracy_drop"])
        drop = formats[dropped]["accuracy_drop"]
        diff = format_number(formats[worst]["test_max_abs_diff"], "diff")
        expected = {
            "test examples": str(examples),
            "accuracy": format_number(metrics["accuracy"]),
            "largest max abs diff against the SavedModel": f"{worst} {diff}",
            "most top-1 flips against the SavedModel": (
                f"{most} {flips[most]} of {examples}" if flips[most] else f"none: 0 of {examples}"
            ),
            "largest accuracy drop of a format": (
                f"{dropped} {format_number(-drop, 'points')} pts" if drop > 0 else "none: no format lost"
            ),
            "train time (s)": format_number(train["wall_seconds"], "quantity"),
            "train examples/s after the first epoch": format_number(train["steady_examples_per_second"], "quantity"),
        }
        assert metrics["examples"] == examples
        for rows in (markdown[heading], page["runs-table"]):
            row = row_of(rows, experiment=experiment, seed=str(seed))
            assert {label: row[label] for label in expected} == expected
        print(experiment, {label: expected[label] for label in list(expected)[2:5]})
        summary = row_of(markdown["Reproduction (verdict on the mean over seeds)"], experiment=experiment)
        assert summary["mean over seeds"] == format_number(statistics.fmean([metrics["accuracy"]]))


@pytest.mark.dag
def test_finished_report_numbers_are_written_for_reading(finished):
    """No "-0.00"; no 4-decimal 3.0270 s or 7207.4000 examples/s; the verdict says what it was measured on."""
    report = finished / "results/report"
    markdown = (report / "reproduction.md").read_text()
    page = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (report / "reproduction.html").read_text())
    runs = next(rows for heading, rows in markdown_tables(markdown).items() if heading.startswith("Runs"))

    for name, text in (("markdown", markdown), ("html", page)):
        assert not NEGATIVE_ZERO.search(text), (name, NEGATIVE_ZERO.search(text).group())
        assert not re.search(r"(?<![\d.])\d{2,}\.\d{4}", text), (name, re.search(r"(?<![\d.])\d{2,}\.\d{4}", text))
    for row in runs:
        steady = row["train examples/s after the first epoch"]
        print(row["experiment"], row["train time (s)"], "s,", steady, "examples/s after the first epoch")
        seconds = row["train time (s)"]  # 3 significant digits, or a whole number from 100 s up
        assert re.fullmatch(r"\d{3}|\d{1,3}(,\d{3})+", seconds) or len(seconds.replace(".", "").lstrip("0")) == 3
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", steady), steady
    for experiment, seed in RUNS:
        examples = _read(finished, experiment, seed, "metrics.json")["examples"]
        assert re.search(rf"pass: mean accuracy 0\.9\d+ over 1 seed on the test split \({examples} examples\)", page)


@pytest.mark.dag
def test_finished_report_classifier_rows_have_no_regression_columns(finished):
    """Two classifiers: no RMSE, MAE or R^2 column in any table nor in the CSV, and no empty cell."""
    report = finished / "results/report"
    tables = markdown_tables((report / "reproduction.md").read_text())
    header = (report / "reproduction.csv").read_text().splitlines()[0].split(",")

    assert not [heading for heading in tables if "regression" in heading]
    for heading, rows in tables.items():
        assert not {"RMSE", "MAE", "R²", "loss (MSE)", "MAE (whole test split)"} & set(rows[0]), heading
        for row in rows:
            assert all(row.values()), f"empty cell in '{heading}': {row}"
    assert not {"rmse", "r2", "mse", "mae"} & set(header), header
    assert {"accuracy", "verdict", "largest_diff", "train_seconds"} <= set(header)


LAPTOP = {"width": 1366, "height": 768}
IMAGES_JS = """() => [...document.images].map(image => {
    const box = image.getBoundingClientRect();
    return {kind: image.className, experiment: image.dataset.experiment, seed: image.dataset.seed ?? null,
            complete: image.complete, natural: image.naturalWidth, src: image.src,
            left: box.left + window.scrollX, top: box.top + window.scrollY, width: box.width, height: box.height};
})"""
LAYOUT_JS = """() => ({scroll: document.documentElement.scrollWidth, viewport: window.innerWidth,
    overflowing: [...document.querySelectorAll('table, figure, p, h1, h2, h3')]
        .filter(element => element.getBoundingClientRect().right > window.innerWidth).map(element => element.id
                                                                                         || element.tagName),
    sections: [...document.querySelectorAll('section.experiment')].map(section => ({id: section.id,
        verdict: section.querySelector('p.verdict')?.textContent ?? null,
        table: section.querySelector('table')?.id ?? null}))})"""


def _image_in_screenshot(screenshot, image: dict, png: bytes) -> tuple[float, float]:
    """The screenshot's region under an <img>: its spread of grey levels, and its correlation with the PNG
    (both shrunk 4 times, so that the browser's and PIL's resampling of thin lines do not matter)."""
    from PIL import Image

    box = (round(image["left"]), round(image["top"]), round(image["left"] + image["width"]),
           round(image["top"] + image["height"]))  # fmt: skip
    region = screenshot.crop(box).convert("L")
    source = Image.open(io.BytesIO(png)).convert("RGBA")
    flat = Image.new("RGBA", source.size, "white")  # as the page's white background shows it
    flat.alpha_composite(source)
    small = (region.width // 4, region.height // 4)
    shown = np.asarray(region.resize(small, Image.BOX), np.float64)
    expected = np.asarray(flat.convert("L").resize(small, Image.BOX), np.float64)
    return float(np.asarray(region, np.float64).std()), float(np.corrcoef(shown.ravel(), expected.ravel())[0, 1])


@pytest.mark.dag
def test_html_report_in_chromium_fits_a_laptop_and_shows_each_experiments_pictures(finished, tmp_path):
    """At 1366x768 the page has no horizontal scroll; per experiment a verdict, a loaded learning-curve and
    confusion-matrix image (the figures/ PNGs) and a deployment table; the full-page screenshot shows them."""
    chromium = require_tool("chromium", "apt-get install chromium")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    report = finished / "results/report"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=LAPTOP)
        page.goto((report / "reproduction.html").as_uri(), wait_until="load")
        layout, images = page.evaluate(LAYOUT_JS), page.evaluate(IMAGES_JS)
        shot = page.screenshot(full_page=True)
        browser.close()
    (tmp_path / "reproduction.png").write_bytes(shot)
    screenshot = Image.open(io.BytesIO(shot)).convert("RGB")
    print(f"scrollWidth {layout['scroll']} <= viewport {layout['viewport']}; screenshot {screenshot.size} "
          f"in {tmp_path / 'reproduction.png'}")  # fmt: skip

    assert layout["scroll"] <= LAPTOP["width"] and layout["overflowing"] == [], layout
    assert sorted((section["id"], section["table"]) for section in layout["sections"]) == sorted(
        (f"experiment-{experiment}", f"formats-{experiment}") for experiment, _ in RUNS
    )
    assert all(section["verdict"].startswith("pass: mean accuracy") for section in layout["sections"])
    wanted = {("curves", experiment, None) for experiment, _ in RUNS}
    wanted |= {("confusion", experiment, str(seed)) for experiment, seed in RUNS}
    assert {(image["kind"], image["experiment"], image["seed"]) for image in images} == wanted
    for image in images:
        name = (f"confusion_{image['experiment']}_seed{image['seed']}.png" if image["kind"] == "confusion"
                else f"curves_{image['experiment']}.png")  # fmt: skip
        png = (report / "figures" / name).read_bytes()
        assert image["complete"] and image["natural"] > 0, name
        assert base64.b64decode(image["src"].split(",", 1)[1]) == png, f"{name}: the page shows another picture"
        assert image["left"] + image["width"] <= LAPTOP["width"] and image["width"] >= 300, (name, image)
        spread, correlation = _image_in_screenshot(screenshot, image, png)
        shown = f"{image['width']:.0f}x{image['height']:.0f} at ({image['left']:.0f}, {image['top']:.0f})"
        print(f"{name}: natural width {image['natural']}, shown {shown}; grey std {spread:.1f}, r {correlation:.3f}")
        assert spread > 10 and correlation > 0.9, name


def test_a_sweep_gets_a_table_of_its_values_with_the_best_marked_and_a_figure(tmp_path):
    """Three points of a learning-rate sweep, two seeds each: mean and std per point, the best one marked, and
    sweep_<name>.png (the metric against the swept value) among the figures and in the page."""
    accuracies = {"lr-learning_rate_0p1": (0.80, 0.84), "lr-learning_rate_0p01": (0.90, 0.94),
                  "lr-learning_rate_0p001": (0.86, 0.86)}  # fmt: skip
    run_dirs, experiments, points = [], {}, {}
    for point, values in accuracies.items():
        for seed, accuracy in enumerate(values):
            files = _classifier_files()
            files["metrics.json"].update(accuracy=accuracy, error=1 - accuracy)
            folder = tmp_path / "runs" / point / f"seed{seed}"
            folder.mkdir(parents=True)
            for name, content in files.items():
                (folder / name).write_text(json.dumps(content))
            run_dirs.append(str(folder))
        experiments[point] = {"dataset": "blobs", "target": None, "seeds": [0, 1]}
        points[point] = {"train.optimizer.learning_rate": float(point.split("_")[-1].replace("p", "."))}
    sweeps = {"lr": {"keys": ["train.optimizer.learning_rate"], "points": points}}
    paths = {name: str(tmp_path / f"reproduction.{name}") for name in ("md", "csv", "html")}

    tables = {"markdown": paths["md"], "csv": paths["csv"], "html": paths["html"]}
    write_report(run_dirs=run_dirs, table_paths=tables, figures_dir=str(tmp_path / "figures"), title="sweep",
                 experiments=experiments, sweeps=sweeps)  # fmt: skip

    tables = markdown_tables(pathlib.Path(paths["md"]).read_text())
    heading = next(heading for heading in tables if heading.startswith("Sweep: lr"))
    assert "accuracy on the test split" in heading and "higher is better" in heading
    rows = {row["point"]: row for row in tables[heading]}
    assert rows["lr-learning_rate_0p01"]["train.optimizer.learning_rate"] == "0.01"
    assert (rows["lr-learning_rate_0p01"]["mean over seeds"], rows["lr-learning_rate_0p01"]["std over seeds"]) == (
        "0.9200", "0.02000")  # fmt: skip
    assert [point for point, row in rows.items() if row["best"] == "best"] == ["lr-learning_rate_0p01"]
    png = tmp_path / "figures" / "sweep_lr.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = pathlib.Path(paths["html"]).read_text()
    assert "id='sweep-table-lr'" in page and "class='sweep' data-experiment='lr'" in page
