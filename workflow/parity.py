"""Numerical parity: one golden batch through the SavedModel and every converted model.

Per format: the largest absolute difference of output probabilities against the SavedModel, the
share of examples with the same top-1 class, and accuracy on the batch. A format whose numbers
break its budget fails the step, with the format and the margin in the message.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import numpy as np

from workflow.atomic import write_json
from workflow.convert import predict_tflite
from workflow.export import predict_saved_model
from workflow.pipeline import load_arrays
from workflow.tfjs import predict_tfjs

log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """A converted model differs from the SavedModel by more than its budget allows."""


def check_parity(
    *,
    saved_model_dir: str,
    tflite_paths: list[str],
    tfjs_dir: str | None,
    node_manifest: str | None,
    shards_dir: str,
    parity_path: str,
    batch_size: int,
    budgets: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """Compare every format with the SavedModel on the golden batch; write parity.json or raise."""
    golden = load_arrays(shards_dir, "test", limit=batch_size)
    reference = predict_saved_model(saved_model_dir, golden["images"])
    outputs = {pathlib.Path(path).stem: predict_tflite(path, golden["images"]) for path in tflite_paths}
    if tfjs_dir is not None and node_manifest is not None:
        outputs["tfjs"] = predict_tfjs(tfjs_dir, golden["images"], node_manifest)
    report: dict[str, Any] = {
        "examples": int(len(golden["labels"])),
        "saved_model_accuracy": accuracy(reference, golden["labels"]),
        "formats": {},
    }
    for name, probabilities in outputs.items():
        report["formats"][name] = compare(reference, probabilities, golden["labels"], budgets[name])
        log.info("%s: %s", name, report["formats"][name])
    broken = [f"{name}: {entry['why']}" for name, entry in report["formats"].items() if not entry["within_budget"]]
    report["passed"] = not broken
    if broken:
        raise ParityError("parity budget broken on the golden batch of " + saved_model_dir + ":\n" + "\n".join(broken))
    write_json(parity_path, report)
    return report


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose top-1 class is the label."""
    return float((probabilities.argmax(axis=1) == labels).mean())


def compare(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, budget: dict[str, float]
) -> dict[str, Any]:
    """Max abs diff, top-1 agreement and accuracy of `candidate`, and whether they fit the budget."""
    if candidate.shape != reference.shape:
        raise ParityError(f"output shape {candidate.shape} differs from the SavedModel's {reference.shape}")
    max_abs_diff = float(np.abs(candidate - reference).max())
    agreement = float((candidate.argmax(axis=1) == reference.argmax(axis=1)).mean())
    reasons = []
    if not max_abs_diff <= budget["max_abs_diff"]:  # `not <=` also catches NaN.
        reasons.append(
            f"max abs diff {max_abs_diff:.3g} exceeds {budget['max_abs_diff']:.3g} "
            f"by {max_abs_diff - budget['max_abs_diff']:.3g}"
        )
    if agreement < budget["min_top1_agreement"]:
        reasons.append(
            f"top-1 agreement {agreement:.4f} is below {budget['min_top1_agreement']:.4f} "
            f"by {budget['min_top1_agreement'] - agreement:.4f}"
        )
    return {
        "max_abs_diff": max_abs_diff,
        "top1_agreement": agreement,
        "accuracy": accuracy(candidate, labels),
        "budget": budget,
        "within_budget": not reasons,
        "why": "; ".join(reasons) or "within budget",
    }
