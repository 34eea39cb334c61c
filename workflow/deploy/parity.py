"""Numerical parity: the SavedModel and every converted model on the same test examples (images or rows).

A regression's entries have `test_mae` and `mae_increase` instead of accuracy and its drop, no top-1
agreement, and `max_scaled_diff`: the max abs diff over the standard deviation of the SavedModel's
predictions, which the gate judges against `max_abs_diff` budgets.

Per format, on the golden batch (the first `batch_size` examples of the test split): the largest
absolute difference of output probabilities against the SavedModel and the share of examples
with the same top-1 class; on the whole test split: accuracy next to the SavedModel's, its drop,
top-1 agreement and max abs diff; the file size and single-example latency (workflow/deploy/latency.py).
The step only measures: the deployment gate
(workflow/deploy/gate.py) judges the numbers against the budgets, so a budget change reruns the gate
alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from workflow.data.features import count, take
from workflow.data.pipeline import load_inputs
from workflow.data.shards import read_spec
from workflow.deploy.converted import ConvertedModel, bytes_on_disk
from workflow.deploy.export import predict_saved_model
from workflow.deploy.formats import converted_models
from workflow.deploy.latency import saved_model_latency_ms
from workflow.infra.atomic import write_json
from workflow.models.task import Task, task_of

log = logging.getLogger(__name__)
CHUNK = 1024  # examples per LiteRT / Node call, to bound memory on large test splits


def measure_parity(
    *,
    saved_model_dir: str,
    formats: Mapping[str, str],
    shards_dir: str,
    parity_path: str,
    batch_size: int,
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the test split through the SavedModel and every converted model; write parity.json.

    `formats`: each format's folder by its name, and the other files their runtimes need (workflow/deploy/formats.py);
    `skipped`: formats the model is not converted to, with why (workflow/deploy/formats.py), recorded as they are.
    """
    inputs, labels = load_inputs(shards_dir, "test")
    task = task_of(read_spec(shards_dir))
    golden = min(batch_size, len(labels))
    reference = in_chunks(lambda chunk: predict_saved_model(saved_model_dir, chunk), inputs)
    example = take(inputs, 0, 1)
    report: dict[str, Any] = {
        "task": task.name,
        "golden_examples": golden,
        "test_examples": int(len(labels)),
        "saved_model": {
            **{f"golden_{key}": value for key, value in task.quality(reference[:golden], labels[:golden]).items()},
            **{f"test_{key}": value for key, value in task.quality(reference, labels).items()},
            "bytes": bytes_on_disk(saved_model_dir),
            "latency_ms": saved_model_latency_ms(saved_model_dir, example),
        },
        "formats": {},
        "skipped": dict(skipped or {}),
    }
    for model in converted_models(formats, example):
        entry = format_entry(task, model, inputs, labels, reference, golden, report["saved_model"])
        report["formats"][model.name] = entry
        (log.warning if "not_measured" in entry else log.info)("%s: %s", model.name, entry)
    write_json(parity_path, report)
    return report


def format_entry(
    task: Task,
    model: ConvertedModel,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    reference: np.ndarray,
    golden: int,
    saved_model: dict[str, Any],
) -> dict[str, Any]:
    """parity.json's entry of one converted model: its differences from the SavedModel's `reference`
    outputs on the golden batch and the test split, its size and latency."""
    if model.not_measured:
        return {"bytes": model.bytes, **model.facts, "not_measured": model.not_measured}
    outputs = in_chunks(model.predict, inputs)
    entry = {
        **compare(task, reference[:golden], outputs[:golden], labels[:golden]),
        **{f"test_{key}": value for key, value in compare(task, reference, outputs, labels).items()},
        "bytes": model.bytes,
        "latency_ms": model.latency_ms(),
        **model.facts,
    }
    return {**entry, **task.change(entry, saved_model, reference)}


def in_chunks(predict: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray]) -> np.ndarray:
    total = count(inputs)
    return np.concatenate([predict(take(inputs, start, start + CHUNK)) for start in range(0, total, CHUNK)])


def compare(task: Task, reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Max abs diff of `candidate` against the `reference` outputs, its quality and (classes) top-1 agreement."""
    if candidate.shape != reference.shape:
        raise ValueError(f"output shape {candidate.shape} differs from the SavedModel's {reference.shape}")
    return {
        "max_abs_diff": float(np.abs(candidate - reference).max()),
        **task.agreement(reference, candidate),
        **task.quality(candidate, labels),
    }
