"""The deployment gate: bless a run, or say exactly why not, and publish only what is blessed.

A run is blessed when every converted format fits its budget (parity.json against
`parity.budgets`) and the evaluate step's verdict against the paper target passed (or there is no
target). `deploy.publish_anyway` with a `deploy.reason` publishes a run that is not blessed; the
verdict records both, so nobody mistakes it for a blessed one.

Published layout, results/deploy/<experiment>/ (what TF Serving's --model_base_path expects, plus
the other formats):
    <model_name>/<version>/saved_model.pb, variables/
    <format>/           each format's folder as its step wrote it (workflow/deploy/formats.py):
                        tflite/<variant>.tflite; tfjs/model.json, *.bin, index.html
    publish.json        what was published, from which run, and the verdict
A run that is not blessed leaves only publish.json, with the reasons.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
from typing import Any

from workflow.deploy.formats import FORMATS
from workflow.infra.atomic import atomic_path, read_json, write_json

log = logging.getLogger(__name__)
# What publish writes beside the model folder: a deploy.model_name equal to one (compared
# case-insensitively, for the file systems a published folder may be copied to) is refused.
NEXT_TO_THE_MODEL = ("publish.json", *(fmt.name for fmt in FORMATS))
# Snakemake marks every directory output with this empty file; a published folder holds only what
# its reader loads (TF Serving reads every file of a version folder; the TF.js page its own files).
SNAKEMAKE_MARKERS = shutil.ignore_patterns(".snakemake_timestamp")


def _fails(value: float | None, limit: float, at_most: bool) -> bool:
    """Whether `value` breaks `limit`; a missing (null) or NaN measurement always does: the gate fails closed."""
    if value is None or not _known(value):
        return True
    return value > limit if at_most else value < limit


def judge_format(name: str, measured: dict[str, Any], budget: dict[str, float | None]) -> dict[str, Any]:
    """One format against its budget: within or not, and one reason naming each broken limit and its margin."""
    if "not_measured" in measured:
        return {"within_budget": False, "reason": f"{name}: not measured: {measured['not_measured']}"}
    broken = []
    limit = budget["max_abs_diff"]
    # A regression's difference is in standard deviations of the SavedModel's predictions (workflow/deploy/parity.py).
    diff, unit = (
        (measured["max_scaled_diff"], " standard deviations")
        if "max_scaled_diff" in measured
        else (measured.get("max_abs_diff"), "")
    )
    if limit is not None and _fails(diff, limit, at_most=True):
        by = f" by {diff - limit:.3g}" if diff is not None and _known(diff) else ""
        broken.append(f"max abs diff {_number(diff, '.3g')}{unit} on the golden batch exceeds {limit:.3g}{by}")
    limit = budget["min_top1_agreement"]
    agreement = measured.get("top1_agreement")
    if limit is not None and "top1_agreement" in measured and _fails(agreement, limit, at_most=False):
        by = f" by {limit - agreement:.4f}" if agreement is not None and _known(agreement) else ""
        broken.append(f"top-1 agreement {_number(agreement, '.4f')} on the golden batch is below {limit:.4f}{by}")
    limit = budget["max_accuracy_drop"]
    drop = measured.get("accuracy_drop")
    if limit is not None and "accuracy_drop" in measured and _fails(drop, limit, at_most=True):
        points = f"{100 * drop:.2f}" if drop is not None and _known(drop) else "an unknown number of"
        broken.append(
            f"test accuracy {_number(measured.get('test_accuracy'), '.4f')} is {points} points below the "
            f"SavedModel's, more than the {100 * limit:.2f} allowed"
        )
    return {"within_budget": not broken, "reason": f"{name}: " + ("; ".join(broken) or "within budget")}


def _known(value: float | None) -> bool:
    return value is not None and value == value  # noqa: PLR0124  (NaN is not equal to itself)


def _number(value: float | None, spec: str) -> str:
    """A measurement for a reason, or 'not a number' for null and NaN."""
    return format(value, spec) if _known(value) else "not a number"


def judge(
    parity: dict[str, Any], metrics: dict[str, Any], budgets: dict[str, dict[str, float | None]]
) -> dict[str, Any]:
    """The verdict of one run: per format and for the paper target, and whether it is blessed."""
    formats = {name: judge_format(name, parity["formats"][name], budget) for name, budget in sorted(budgets.items())}
    missing = sorted(set(budgets) - set(parity["formats"]))
    if missing:
        raise ValueError(f"parity.json has no measurement for {', '.join(missing)}")
    target = metrics.get("verdict")
    if target is None:
        target_reason = "no paper target configured"
        target_passed = True
    else:
        target_passed = bool(target["passed"])
        margin = f"margin {target['margin']:+.4g}" if target["margin"] is not None else target["because"]
        target_reason = f"paper target: {'met' if target_passed else 'missed'} ({margin})"
    blessed = target_passed and all(entry["within_budget"] for entry in formats.values())
    return {
        "blessed": blessed,
        "formats": formats,
        "skipped": parity.get("skipped", {}),  # formats the model is not converted to, and why
        "target": {"passed": target_passed, "reason": target_reason},
    }


def gate(
    *,
    parity_path: str,
    metrics_path: str,
    verdict_path: str,
    budgets: dict[str, dict[str, float | None]],
    publish_anyway: bool,
    reason: str | None,
) -> dict[str, Any]:
    """Write deploy/verdict.json for one run."""
    verdict = judge(read_json(parity_path), read_json(metrics_path), budgets)
    verdict["override"] = {"publish_anyway": publish_anyway, "reason": reason} if publish_anyway else None
    verdict["publish"] = verdict["blessed"] or publish_anyway
    level = logging.INFO if verdict["blessed"] else logging.WARNING
    log.log(level, "%s: %s", "blessed" if verdict["blessed"] else "NOT blessed", verdict_path)
    for entry in [*verdict["formats"].values(), verdict["target"]]:
        log.log(level, "  %s", entry["reason"])
    write_json(verdict_path, verdict)
    return verdict


def model_name_problem(model_name: str) -> str | None:
    """Why `model_name` cannot be the TF Serving folder under results/deploy/<experiment>/, or None.

    The config refuses it at DAG build (the schema's pattern keeps out '/', '.' and '..' already);
    publish checks again, since it is also called directly.
    """
    if pathlib.PurePath(model_name).name != model_name or model_name in (".", ".."):
        return f"{model_name!r} would leave the published folder"
    if model_name.lower() in NEXT_TO_THE_MODEL:
        return f"{model_name!r} is taken by the published layout (it also holds {', '.join(NEXT_TO_THE_MODEL)})"
    return None


def publish(
    *,
    verdict_path: str,
    saved_model_dir: str,
    format_dirs: dict[str, str],
    output_dir: str,
    model_name: str,
    version: int,
    run: str,
) -> dict[str, Any]:
    """Copy a blessed (or overridden) run into the TF Serving layout under `output_dir`, atomically.

    `format_dirs`: the folder of each format the run was converted to, by the format's name.
    """
    problem = model_name_problem(model_name)
    if problem:
        raise ValueError(f"deploy.model_name: {problem}")
    verdict = read_json(verdict_path)
    record: dict[str, Any] = {"run": run, "published": verdict["publish"], "verdict": verdict, "files": []}
    with atomic_path(output_dir) as temporary:
        temporary.mkdir()
        if verdict["publish"]:
            shutil.copytree(saved_model_dir, temporary / model_name / str(version), ignore=SNAKEMAKE_MARKERS)
            for name, folder in sorted(format_dirs.items()):
                if name not in NEXT_TO_THE_MODEL:
                    raise ValueError(f"{name!r} is not a deployment format ({', '.join(NEXT_TO_THE_MODEL[1:])})")
                shutil.copytree(folder, temporary / name, ignore=SNAKEMAKE_MARKERS)
            record["files"] = sorted(
                path.relative_to(temporary).as_posix() for path in temporary.rglob("*") if path.is_file()
            )
            if not verdict["blessed"]:
                log.warning("publishing %s although it is NOT blessed: %s", run, verdict["override"]["reason"])
        else:
            reasons = [entry["reason"] for entry in verdict["formats"].values() if not entry["within_budget"]]
            if not verdict["target"]["passed"]:
                reasons.append(verdict["target"]["reason"])
            log.warning("not publishing %s: %s", run, "; ".join(reasons))
            record["refused_because"] = reasons
        write_json(temporary / "publish.json", record)
    return record
